"""Roll a model package out to an environment's endpoint, check it, or put everything back.

Each environment's serving stack reads the package to serve, and the sha256 of its model
file, from two SSM parameters (CloudFormation parameters of type
``AWS::SSM::Parameter::Value<String>``): the *pointer*. Deploying is two calls made through
the environment's deploy role: write the pointer, then update the serving stack with its
previous template, passing the one CloudFormation role that may change serving resources
only. CloudFormation re-reads the pointer, creates a model (with ``MLCORE_MODEL_SHA256``) and
an endpoint config, and updates the endpoint blue/green; SageMaker rolls that back by itself
when a rollback alarm fires, and CloudFormation then rolls the stack back
(UPDATE_ROLLBACK_COMPLETE).

Whatever went wrong, :func:`restore` ends a failed release: once the serving stack has
settled (the release's own update may still be rolling back), it reads the package the
endpoint actually serves (endpoint -> endpoint config -> model -> model package) and puts the
pointer back on it, so no later deploy of the serving stack brings back a rejected model.

Where a person approves releases (:mod:`.approval`), only a copy approved in that
environment's own registry, with its approval recorded on the model archive, is deployed.

The release state machine calls :func:`handler`; people call the CLI, e.g.::

    python -m pipelines.deploy.release restore --descriptor-parameter \\
        /mlops/<project>/prod/release-target --role-arn <prod deploy role>
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .approval import approval_state, require_recorded
from .promote import promote
from .targets import (
    MODEL_SHA256_ENV,
    MODEL_SHA256_KEY,
    NO_MODEL,
    Environment,
    SessionFactory,
    TargetRef,
    assume_role_session,
)

logger = logging.getLogger(__name__)

_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
_NO_UPDATES = "No updates are to be performed"
StackState = Literal["in_progress", "succeeded", "failed"]


@dataclass(frozen=True)
class Served:
    """The package an endpoint serves (``none`` when there is no endpoint) and its model hash."""

    model_package_arn: str
    model_sha256: str

    @classmethod
    def nothing(cls) -> Served:
        return cls(NO_MODEL, NO_MODEL)


@dataclass(frozen=True)
class DeployResult:
    """A started deploy: ``updating`` is False when the stack already served the package."""

    environment: str
    model_package_arn: str
    served_before: str
    updating: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def serving(env: Environment) -> Served:
    """What the endpoint serves now, read from SageMaker itself rather than from the pointer.

    In an environment without an endpoint (a batch path only), what its batch model is
    built from: the release replaces that model, so it is what the next batch run scores.
    """
    sagemaker = env.client("sagemaker")
    if not env.descriptor.online_endpoint:
        return batch_serving(sagemaker, env.descriptor.batch_model_prefix)
    name = env.descriptor.endpoint_name
    try:
        endpoint = sagemaker.describe_endpoint(EndpointName=name)
    except sagemaker.exceptions.ClientError as exc:
        if "Could not find endpoint" in str(exc):
            return Served.nothing()
        raise
    if endpoint.get("EndpointStatus") == "Failed":
        # A failed endpoint answers no request: nothing is being served.
        return Served.nothing()
    config = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = config["ProductionVariants"]
    if len(variants) != 1:
        raise ValueError(
            f"endpoint {name} has {len(variants)} production variants; the release flow manages "
            "endpoints with exactly one"
        )
    model = sagemaker.describe_model(ModelName=variants[0]["ModelName"])
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    container = containers[0]
    arn = container.get("ModelPackageName")
    if not arn:
        raise ValueError(
            f"endpoint {name} serves model {variants[0]['ModelName']}, which was not created from "
            "a model package: it was changed outside the release flow; redeploy its serving stack"
        )
    sha = container.get("Environment", {}).get(MODEL_SHA256_ENV, NO_MODEL)
    return Served(str(arn), str(sha))


def batch_serving(sagemaker: Any, prefix: str) -> Served:
    """The package of the newest batch model named ``<prefix><version>`` (``none`` if none).

    After a release settles there is one: CloudFormation deletes the replaced model once the
    update completes, and a rolled-back update deletes the one it created.
    """
    models: list[dict[str, Any]] = []
    for page in sagemaker.get_paginator("list_models").paginate(NameContains=prefix):
        models += [m for m in page["Models"] if m["ModelName"].startswith(prefix)]
    if not models:
        return Served.nothing()
    newest = max(models, key=lambda m: m["CreationTime"])
    model = sagemaker.describe_model(ModelName=newest["ModelName"])
    containers = model.get("Containers") or [model.get("PrimaryContainer") or {}]
    arn = containers[0].get("ModelPackageName")
    if not arn:
        raise ValueError(
            f"batch model {newest['ModelName']} was not created from a model package: it was "
            "changed outside the release flow; redeploy its serving stack"
        )
    sha = containers[0].get("Environment", {}).get(MODEL_SHA256_ENV, NO_MODEL)
    return Served(str(arn), str(sha))


def model_sha256_of(env: Environment, model_package_arn: str) -> str:
    """The package's ``model_sha256`` metadata (contract #1). The package must be in ``env``'s
    own registry, Approved there and, where a person approves releases, its approval recorded."""
    account = env.descriptor.cloudformation_role_arn.split(":")[4]
    group = env.descriptor.model_package_group.lower()
    parts = model_package_arn.split(":")
    if len(parts) < 6 or parts[4] != account or not parts[5].startswith(f"model-package/{group}/"):
        raise ValueError(
            f"model package {model_package_arn} is not in {env.ref.environment}'s registry "
            f"({env.descriptor.model_package_group} in {account}): only packages registered "
            "there (its own or promoted copies) are deployed"
        )
    described = env.client("sagemaker").describe_model_package(ModelPackageName=model_package_arn)
    status = described["ModelApprovalStatus"]
    if status != "Approved":
        raise ValueError(
            f"model package {model_package_arn} is {status}, not Approved in "
            f"{env.ref.environment}: only packages approved there are deployed"
        )
    if env.descriptor.release_approval:
        require_recorded(env, described)
    sha = described.get("CustomerMetadataProperties", {}).get(MODEL_SHA256_KEY)
    if not sha:
        raise ValueError(
            f"model package {model_package_arn} has no {MODEL_SHA256_KEY} metadata, so serving "
            "could not verify its model file; retrain it with the current model-build pipeline"
        )
    return str(sha)


def write_pointer(env: Environment, served: Served) -> None:
    """Point the serving stack at ``served`` (the hash first: the ARN is what readers act on)."""
    ssm = env.client("ssm")
    descriptor = env.descriptor
    for name, value in (
        (descriptor.model_sha256_parameter, served.model_sha256),
        (descriptor.model_package_parameter, served.model_package_arn),
    ):
        ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)


def read_pointer(env: Environment) -> Served:
    ssm = env.client("ssm")
    descriptor = env.descriptor
    return Served(
        ssm.get_parameter(Name=descriptor.model_package_parameter)["Parameter"]["Value"],
        ssm.get_parameter(Name=descriptor.model_sha256_parameter)["Parameter"]["Value"],
    )


def deploy(env: Environment, model_package_arn: str) -> DeployResult:
    """Point the environment at ``model_package_arn`` (``none`` removes the endpoint) and start
    the stack update. If the update does not start, the pointer goes back to what is served."""
    state, detail = stack_state(env)
    if state == "in_progress":
        # Another release (or a CI/CD deploy) is updating the stack: touching the pointer now
        # would change what that update's rollback or the next deploy serves.
        raise RuntimeError(
            f"{env.descriptor.stack_name} is busy ({detail}); release again when it is done"
        )
    before = serving(env)
    if model_package_arn == NO_MODEL:
        wanted = Served.nothing()
    else:
        wanted = Served(model_package_arn, model_sha256_of(env, model_package_arn))
    write_pointer(env, wanted)
    try:
        updating = _update_stack(env)
    except Exception:
        write_pointer(env, before)
        raise
    logger.info(
        "%s: %s -> %s (%s)",
        env.ref.environment,
        before.model_package_arn,
        model_package_arn,
        "updating" if updating else "already served",
    )
    return DeployResult(env.ref.environment, model_package_arn, before.model_package_arn, updating)


def stack_state(env: Environment) -> tuple[StackState, str]:
    """Where the serving stack's update stands, with CloudFormation's status and reason."""
    cloudformation = env.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName=env.descriptor.stack_name)["Stacks"][0]
    status: str = stack["StackStatus"]
    detail = f"{status}: {stack.get('StackStatusReason', '')}".rstrip(": ")
    if status.endswith("_IN_PROGRESS"):
        return "in_progress", detail
    if status in {"UPDATE_COMPLETE", "CREATE_COMPLETE"}:
        return "succeeded", detail
    return "failed", detail


def restore(env: Environment, *, reason: str, attempted: str) -> dict[str, Any]:
    """End a failed release: the pointer goes back on the package the endpoint serves.

    While the serving stack is still updating (the release's own update may yet roll back)
    nothing is touched and ``settled`` is False: call again once it has ended. Returns the
    announcement for people: what failed, what is served, where the pointer is.
    """
    name = env.ref.environment
    state, detail = stack_state(env)
    if state == "in_progress":
        return {
            "environment": name,
            "settled": False,
            "message": f"{env.descriptor.stack_name} is still updating ({detail})",
        }
    served = serving(env)
    pointer = read_pointer(env)
    if pointer != served:
        write_pointer(env, served)
        moved = f"its pointer was moved back from {pointer.model_package_arn}"
    else:
        moved = "its pointer already named it"
    message = (
        f"Release of {attempted} to {name} stopped: {reason}. {name} serves "
        f"{served.model_package_arn}; {moved}, so later deploys of the serving stack keep it."
    )
    logger.warning(message)
    return {
        "environment": name,
        "settled": True,
        "serving": served.model_package_arn,
        "message": message,
    }


def _update_stack(env: Environment) -> bool:
    cloudformation = env.client("cloudformation")
    name = env.descriptor.stack_name
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    parameters = [
        {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
        for p in stack.get("Parameters", [])
    ]
    try:
        cloudformation.update_stack(
            StackName=name,
            UsePreviousTemplate=True,
            Parameters=parameters,
            Capabilities=_CAPABILITIES,
            # The deploy role may pass this role only (an IAM condition on cloudformation:RoleArn):
            # without it CloudFormation would reuse the stack's last role, the CDK's admin role.
            RoleARN=env.descriptor.cloudformation_role_arn,
        )
    except cloudformation.exceptions.ClientError as exc:
        if _NO_UPDATES in str(exc):
            return False
        raise
    return True


def handler(
    event: dict[str, Any], context: Any = None, *, sessions: SessionFactory = assume_role_session
) -> dict[str, Any]:
    """Lambda entry point for the release state machine.

    - ``{"action": "promote", "source": {...}, "target": {...}, "model_package_arn": ...}``
      returns the package to deploy in the target (a verified copy, or the package itself in
      the model-build environment);
    - ``{"action": "deploy", "target": {...}, "model_package_arn": ...}`` starts a deploy;
    - ``{"action": "status", "target": {...}}`` reports the serving stack's state;
    - ``{"action": "approval", "target": {...}, "model_package_arn": ..., "requested_at": ...,
      "now": ..., "timeout_seconds": ...}`` reports a person's decision on the target's copy;
    - ``{"action": "restore", "target": {...}, "error": ..., "model_package_arn": ...}``
      puts the pointer back on what is served once the stack has settled and returns the
      announcement (``settled`` False: call again later).
    """
    action = event.get("action")
    actions = ("promote", "deploy", "status", "approval", "restore")
    if action not in actions:
        raise ValueError(f"action must be one of {', '.join(actions)}; got {action!r}")
    env = Environment.open(TargetRef.from_dict(event.get("target")), sessions)
    if action == "status":
        state, detail = stack_state(env)
        return {"state": state, "detail": detail}
    arn = event.get("model_package_arn")
    if not isinstance(arn, str) or not arn:
        raise ValueError(f"{action} needs a model_package_arn; got {arn!r}")
    if action == "approval":
        return approval_state(
            env,
            arn,
            requested_at=str(event["requested_at"]),
            now=str(event["now"]),
            timeout_seconds=int(event["timeout_seconds"]),
        ).to_dict()
    if action == "restore":
        return restore(env, reason=_reason(event.get("error")), attempted=arn)
    if action == "promote":
        source = Environment.open(TargetRef.from_dict(event.get("source")), sessions)
        return promote(source=source, target=env, model_package_arn=arn).to_dict()
    return deploy(env, arn).to_dict()


def _reason(error: Any) -> str:
    """A Step Functions error (``{"Error": ..., "Cause": ...}``) in one line for people."""
    if not isinstance(error, dict):
        return str(error or "unknown error")
    if error.get("Error") in ("States.Timeout", "ApprovalExpired"):
        detail = f": {error['Cause']}" if error.get("Cause") else ""
        return f"nobody approved it in time (approval expired{detail})"
    if error.get("Error") == "Rejected":
        return f"a person rejected it ({error.get('Cause') or 'no reason given'})"
    cause = error.get("Cause", "")
    try:
        parsed = json.loads(cause)
        cause = parsed.get("errorMessage", cause) if isinstance(parsed, dict) else cause
    except (TypeError, json.JSONDecodeError):
        pass
    text = f"{error.get('Error', 'Error')}: {cause}".strip().rstrip(":")
    return text[:600]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy.release", description=__doc__)
    parser.add_argument("action", choices=["deploy", "status", "restore"])
    parser.add_argument(
        "--descriptor-parameter",
        required=True,
        help="the environment's /mlops/<project>/<env>/release-target parameter",
    )
    parser.add_argument("--environment", help="its name (default: from the parameter's path)")
    parser.add_argument("--role-arn", help="its deploy role (default: your own credentials)")
    parser.add_argument("--region")
    parser.add_argument("--model-package-arn", help="deploy: the package to serve (or none)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    environment = args.environment or args.descriptor_parameter.rstrip("/").split("/")[-2]
    ref = TargetRef(environment, args.role_arn, args.region, args.descriptor_parameter)
    env = Environment.open(ref, assume_role_session)
    if args.action == "status":
        state, detail = stack_state(env)
        print(json.dumps({"state": state, "detail": detail}))
        return 0 if state != "failed" else 1
    if args.action == "restore":
        restored = restore(env, reason="restored by hand", attempted="(none)")
        print(json.dumps(restored))
        # Still updating: nothing was touched; run it again when the update has ended.
        return 0 if restored["settled"] else 1
    if not args.model_package_arn:
        parser.error("deploy needs --model-package-arn")
    print(json.dumps(deploy(env, args.model_package_arn).to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
