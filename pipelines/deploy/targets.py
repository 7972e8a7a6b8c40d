"""Where a release acts: an environment's deploy role, and what that environment's stack wrote
about itself.

Each environment's release stack creates a deploy role, trusted only by the release functions
of the model-build account, and an SSM parameter (``/mlops/<project>/<env>/release-target``)
holding a JSON *descriptor* of the environment: its serving stack, the two pointer
parameters the stack reads, its endpoint, package group, artifact bucket, image repository,
the CloudFormation role releases must use, and whether a person approves each release there.
The release flow knows only the role, the region and the descriptor's name; everything else
is read through the role, in that environment's account, so no account ever needs to know
another's resource names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

NO_MODEL = "none"
# Contract #1 (mlcore.model): the registry metadata key, the env var serving checks, the file.
MODEL_SHA256_KEY = "model_sha256"
MODEL_SHA256_ENV = "MLCORE_MODEL_SHA256"
SAMPLE_REQUEST_FILE = "sample_request.json"


class SessionFactory(Protocol):
    """Opens a boto3 session as ``role_arn`` (``None``: the caller's own credentials)."""

    def __call__(self, role_arn: str | None, region: str | None) -> Any: ...


_LOADER: Any = None


def _botocore_session() -> Any:
    """A botocore session sharing one loader: a warm function (or a test) opens many sessions,
    and each would otherwise parse the service models again."""
    import botocore.session

    global _LOADER
    core = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _LOADER)
    return core


def assume_role_session(role_arn: str | None, region: str | None) -> Any:
    """A boto3 session with the credentials of ``role_arn``, assumed from the caller's.

    One session per Lambda invocation: each is short (minutes), far below the one-hour cap
    on chained role sessions (PLATFORM_NOTES: role chaining).
    """
    import boto3

    if role_arn is None:
        return boto3.Session(botocore_session=_botocore_session(), region_name=region)
    caller = boto3.Session(botocore_session=_botocore_session(), region_name=region)
    credentials = caller.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName="mlops-release", DurationSeconds=900
    )["Credentials"]
    return boto3.Session(
        botocore_session=_botocore_session(),
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=region,
    )


@dataclass(frozen=True)
class TargetRef:
    """How the release flow reaches one environment (the state machine's ``target`` object)."""

    environment: str
    role_arn: str | None
    region: str | None
    descriptor_parameter: str

    @classmethod
    def from_dict(cls, data: Any) -> TargetRef:
        if not isinstance(data, dict):
            raise ValueError(f"a release target must be an object; got {data!r}")
        missing = [k for k in ("environment", "descriptor_parameter") if not data.get(k)]
        if missing:
            raise ValueError(f"release target lacks {missing}; got {data}")
        return cls(
            environment=str(data["environment"]),
            role_arn=data.get("role_arn") or None,
            region=data.get("region") or None,
            descriptor_parameter=str(data["descriptor_parameter"]),
        )


@dataclass(frozen=True)
class TargetDescriptor:
    """What an environment's stack says about itself (the JSON in its descriptor parameter)."""

    environment: str
    stack_name: str
    model_package_parameter: str
    model_sha256_parameter: str
    endpoint_name: str
    model_package_group: str
    artifact_bucket: str
    image_repository: str
    cloudformation_role_arn: str
    # A person approves each release here, in this environment's registry (deploy.approval).
    release_approval: bool
    # False: no endpoint, only a batch path (a release is checked on the batch model).
    online_endpoint: bool = True
    # What the batch model names start with (<name>-batch-v<version>); "" without batch.
    batch_model_prefix: str = ""

    @classmethod
    def from_json(cls, text: str, *, parameter: str) -> TargetDescriptor:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"release target descriptor {parameter} is not JSON: {exc}") from exc
        fields = cls.__dataclass_fields__
        if not isinstance(data, dict) or set(data) != set(fields):
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"release target descriptor {parameter} must have exactly the keys "
                f"{sorted(fields)}; got {got}: redeploy that environment's ReleaseState stack"
            )
        flags: dict[str, bool] = {}
        for flag in ("release_approval", "online_endpoint"):
            value = data[flag]
            if value not in (True, False, "true", "false"):
                raise ValueError(
                    f"release target descriptor {parameter}: {flag} must be true or false; "
                    f"got {value!r}"
                )
            flags[flag] = value in (True, "true")
        descriptor = cls(
            environment=str(data["environment"]),
            stack_name=str(data["stack_name"]),
            model_package_parameter=str(data["model_package_parameter"]),
            model_sha256_parameter=str(data["model_sha256_parameter"]),
            endpoint_name=str(data["endpoint_name"]),
            model_package_group=str(data["model_package_group"]),
            artifact_bucket=str(data["artifact_bucket"]),
            image_repository=str(data["image_repository"]),
            cloudformation_role_arn=str(data["cloudformation_role_arn"]),
            release_approval=flags["release_approval"],
            online_endpoint=flags["online_endpoint"],
            batch_model_prefix=str(data["batch_model_prefix"]),
        )
        if not descriptor.online_endpoint and not descriptor.batch_model_prefix:
            raise ValueError(
                f"release target descriptor {parameter} has neither an endpoint nor a batch "
                "model prefix: redeploy that environment's ReleaseState stack"
            )
        return descriptor


@dataclass
class Environment:
    """An environment opened through its deploy role: the descriptor and the clients."""

    ref: TargetRef
    descriptor: TargetDescriptor
    session: Any

    @classmethod
    def open(cls, ref: TargetRef, sessions: SessionFactory) -> Environment:
        session = sessions(ref.role_arn, ref.region)
        value = session.client("ssm").get_parameter(Name=ref.descriptor_parameter)["Parameter"][
            "Value"
        ]
        descriptor = TargetDescriptor.from_json(value, parameter=ref.descriptor_parameter)
        if descriptor.environment != ref.environment:
            raise ValueError(
                f"descriptor {ref.descriptor_parameter} describes {descriptor.environment!r}, "
                f"not {ref.environment!r}: the release flow and the environments are out of date; "
                "redeploy them from the same commit"
            )
        return cls(ref=ref, descriptor=descriptor, session=session)

    def client(self, service: str) -> Any:
        return self.session.client(service)
