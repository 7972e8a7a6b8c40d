"""Roll an approved model package out to an environment's endpoint, or back.

Each environment's serving stack reads the model package to serve from an SSM
parameter (a CloudFormation parameter of type ``AWS::SSM::Parameter::Value<String>``).
Deploying is therefore two calls: write the package ARN to the parameter, then update
the serving stack with its previous template, which makes CloudFormation re-read the
parameter, create a model and endpoint config for the new package, and update the
endpoint. The endpoint's deployment config makes that update blue/green with traffic
shifting, and SageMaker rolls it back by itself if a rollback alarm fires; CloudFormation
then rolls the stack back too, and :func:`stack_state` reports the failure.

Rolling back by hand (:func:`rollback`) is the same as deploying the previous package.

The release state machine calls :func:`handler`; people call the CLI::

    python -m pipelines.deploy.release deploy --stack-name churn-prod-serving \\
        --parameter-name /mlops/churn/prod/model-package-arn --model-package-group churn
    python -m pipelines.deploy.release rollback --stack-name ... --parameter-name ... \\
        --model-package-arn <the package to go back to>
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

NO_MODEL = "none"
_CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
_NO_UPDATES = "No updates are to be performed"
StackState = Literal["in_progress", "succeeded", "failed"]


@dataclass(frozen=True)
class ReleaseTarget:
    """One environment the release flow deploys to."""

    environment: str
    stack_name: str
    parameter_name: str
    endpoint_name: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReleaseTarget:
        needed = ("environment", "stack_name", "parameter_name", "endpoint_name")
        missing = [k for k in needed if not data.get(k)]
        if missing:
            raise ValueError(f"release target lacks {missing}; got {data}")
        return cls(**{k: data[k] for k in needed})


@dataclass(frozen=True)
class DeployResult:
    """What a deploy call changed: ``updating`` is False when the package was already served."""

    stack_name: str
    model_package_arn: str
    previous_model_package_arn: str
    updating: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latest_approved_package(sagemaker: Any, group_name: str) -> str:
    """The newest Approved model package in ``group_name``."""
    response = sagemaker.list_model_packages(
        ModelPackageGroupName=group_name,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )
    packages = response.get("ModelPackageSummaryList", [])
    if not packages:
        raise ValueError(
            f"model package group {group_name!r} holds no Approved package; approve one in "
            "SageMaker Studio or with `aws sagemaker update-model-package "
            "--model-approval-status Approved`"
        )
    return str(packages[0]["ModelPackageArn"])


def deploy_model_package(
    *,
    cloudformation: Any,
    ssm: Any,
    sagemaker: Any,
    stack_name: str,
    parameter_name: str,
    model_package_arn: str,
) -> DeployResult:
    """Point the environment at ``model_package_arn`` and start the stack update."""
    status = sagemaker.describe_model_package(ModelPackageName=model_package_arn)[
        "ModelApprovalStatus"
    ]
    if status != "Approved":
        raise ValueError(
            f"model package {model_package_arn} is {status}, not Approved: only approved "
            "packages are deployed"
        )
    previous = ssm.get_parameter(Name=parameter_name)["Parameter"]["Value"]
    ssm.put_parameter(Name=parameter_name, Value=model_package_arn, Type="String", Overwrite=True)
    try:
        updating = _update_stack(cloudformation, stack_name)
    except Exception:
        # The stack did not take the new package: leave the parameter as the stack serves it.
        ssm.put_parameter(Name=parameter_name, Value=previous, Type="String", Overwrite=True)
        raise
    logger.info(
        "%s: %s -> %s (%s)",
        stack_name,
        previous,
        model_package_arn,
        "updating" if updating else "already served",
    )
    return DeployResult(stack_name, model_package_arn, previous, updating)


def rollback(
    *,
    cloudformation: Any,
    ssm: Any,
    sagemaker: Any,
    stack_name: str,
    parameter_name: str,
    to_model_package_arn: str,
) -> DeployResult:
    """Serve ``to_model_package_arn`` again (normally the previous package): a deploy backwards."""
    return deploy_model_package(
        cloudformation=cloudformation,
        ssm=ssm,
        sagemaker=sagemaker,
        stack_name=stack_name,
        parameter_name=parameter_name,
        model_package_arn=to_model_package_arn,
    )


def stack_state(cloudformation: Any, stack_name: str) -> tuple[StackState, str]:
    """Where the serving stack's update stands, with CloudFormation's status and reason."""
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    status: str = stack["StackStatus"]
    detail = f"{status}: {stack.get('StackStatusReason', '')}".rstrip(": ")
    if status.endswith("_IN_PROGRESS"):
        return "in_progress", detail
    if status in {"UPDATE_COMPLETE", "CREATE_COMPLETE"}:
        return "succeeded", detail
    return "failed", detail


def _update_stack(cloudformation: Any, stack_name: str) -> bool:
    stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    parameters = [
        {"ParameterKey": p["ParameterKey"], "UsePreviousValue": True}
        for p in stack.get("Parameters", [])
    ]
    try:
        cloudformation.update_stack(
            StackName=stack_name,
            UsePreviousTemplate=True,
            Parameters=parameters,
            Capabilities=_CAPABILITIES,
        )
    except cloudformation.exceptions.ClientError as exc:
        if _NO_UPDATES in str(exc):
            return False
        raise
    return True


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point for the release state machine.

    ``{"action": "deploy", "target": {...}, "model_package_arn": "..."}`` starts a deploy;
    ``{"action": "status", "target": {...}}`` reports the stack's state;
    ``{"action": "rollback", "target": {...}, "model_package_arn": "<previous>"}`` goes back.
    """
    import boto3

    action = event.get("action")
    target = ReleaseTarget.from_dict(event.get("target", {}))
    cloudformation = boto3.client("cloudformation")
    if action == "status":
        state, detail = stack_state(cloudformation, target.stack_name)
        return {"state": state, "detail": detail}
    if action not in {"deploy", "rollback"}:
        raise ValueError(f"action must be deploy, status or rollback; got {action!r}")
    arn = event.get("model_package_arn")
    if not arn or arn == NO_MODEL:
        raise ValueError(f"{action} needs a model_package_arn; got {arn!r}")
    result = deploy_model_package(
        cloudformation=cloudformation,
        ssm=boto3.client("ssm"),
        sagemaker=boto3.client("sagemaker"),
        stack_name=target.stack_name,
        parameter_name=target.parameter_name,
        model_package_arn=arn,
    )
    return result.to_dict()


def main(argv: Sequence[str] | None = None) -> int:
    import boto3

    parser = argparse.ArgumentParser(prog="python -m pipelines.deploy.release", description=__doc__)
    parser.add_argument("action", choices=["deploy", "rollback", "status"])
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--parameter-name", help="the SSM parameter the serving stack reads")
    parser.add_argument("--model-package-arn", help="the package to serve")
    parser.add_argument(
        "--model-package-group", help="deploy the newest Approved package of this group"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cloudformation = boto3.client("cloudformation")
    if args.action == "status":
        state, detail = stack_state(cloudformation, args.stack_name)
        print(json.dumps({"state": state, "detail": detail}))
        return 0 if state != "failed" else 1
    if not args.parameter_name:
        parser.error(f"{args.action} needs --parameter-name")
    sagemaker = boto3.client("sagemaker")
    arn = args.model_package_arn
    if arn is None and args.model_package_group and args.action == "deploy":
        arn = latest_approved_package(sagemaker, args.model_package_group)
    if arn is None:
        parser.error(
            f"{args.action} needs --model-package-arn (or --model-package-group for deploy)"
        )
    result = deploy_model_package(
        cloudformation=cloudformation,
        ssm=boto3.client("ssm"),
        sagemaker=sagemaker,
        stack_name=args.stack_name,
        parameter_name=args.parameter_name,
        model_package_arn=arn,
    )
    print(json.dumps(result.to_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
