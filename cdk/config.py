"""The AWS configuration of the kit: one typed, validated object read once by app.py.

Its source is the ``mlops`` key of the CDK context (cdk.json), with ``-c mlops.<path>=<value>``
overrides on the command line, for example::

    npx cdk synth -c mlops.stages.prod.account=222222222222 -c mlops.source.branch=release

What must agree across clouds (data, training, the gate's thresholds, drift) is not here:
it lives in ``mlops.yaml`` and is read with ``mlcore.settings.load_settings``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cdk.monitoring.settings import MonitorConfig
from cdk.tracking import TrackingServerConfig

CONTEXT_KEY = "mlops"
_ACCOUNT = r"^\d{12}$"
_REGION = r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$"
_INSTANCE = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Frozen):
    """Where the CI/CD pipeline takes the code from.

    ``connection`` (the default) is an AWS CodeConnections connection to GitHub, GitLab or
    Bitbucket: ``repository`` is ``owner/name`` and ``connection_arn`` the connection's ARN.
    ``codecommit``: ``repository`` is the name of an existing CodeCommit repository.
    ``s3``: ``bucket`` and ``object_key`` name a versioned bucket holding a zip of the repository.
    """

    provider: Literal["connection", "codecommit", "s3"] = "connection"
    repository: str | None = None
    branch: str = "main"
    connection_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection/.+$",
    )
    bucket: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    object_key: str | None = None

    @model_validator(mode="after")
    def _provider_has_its_settings(self) -> SourceConfig:
        needed = {
            "connection": ("repository", "connection_arn"),
            "codecommit": ("repository",),
            "s3": ("bucket", "object_key"),
        }[self.provider]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(
                f"source.provider {self.provider!r} needs {', '.join('source.' + m for m in missing)}; "
                "set them in cdk.json or with -c mlops.source.<name>=<value>"
            )
        if (
            self.provider == "connection"
            and self.repository
            and not re.fullmatch(r"[^/\s]+/[^/\s]+", self.repository)
        ):
            raise ValueError(
                f"source.repository must be 'owner/name' for a connection, got {self.repository!r}"
            )
        return self


class StageConfig(_Frozen):
    """One environment (dev, staging, prod, ...): where it lives and how its jobs run.

    ``account``/``region`` left null make the stage environment-agnostic: it deploys to the
    account and region of the CI/CD pipeline (or of the credentials running ``cdk deploy``).
    """

    account: str | None = Field(None, pattern=_ACCOUNT)
    region: str | None = Field(None, pattern=_REGION)
    processing_instance_type: str = Field("ml.m5.large", pattern=_INSTANCE)
    training_instance_type: str = Field("ml.m5.large", pattern=_INSTANCE)
    inference_instance_type: str = Field("ml.m5.large", pattern=_INSTANCE)
    use_spot_training: bool = False
    max_training_minutes: int = Field(60, ge=5, le=7 * 24 * 60)
    max_spot_wait_minutes: int = Field(120, ge=5, le=7 * 24 * 60)
    # An EventBridge schedule expression for periodic retraining, e.g. "rate(7 days)"; null: none.
    training_schedule: str | None = Field(None, pattern=r"^(rate|cron)\(.+\)$")
    retrain_on_new_data: bool = True
    # After the CI/CD pipeline deploys this stage, start a training run and wait for it.
    train_after_deploy: bool = False
    train_timeout_minutes: int = Field(180, ge=10, le=24 * 60)
    # A person approves in the CI/CD pipeline before this stage deploys.
    manual_approval: bool = False
    # Serverless inference (pay per request, no capture or autoscaling): cheap for dev.
    serverless_inference: bool = False
    # The stage whose endpoint this one's releases pass through first (smoke test, approval).
    release_via: str | None = None
    # Buckets and keys survive `cdk destroy` (always set for production).
    retain_data: bool = False
    artifact_expiry_days: int = Field(365, ge=1)
    # The monitors' infrastructure settings (cdk/monitoring/settings.py, MonitorConfig).
    monitoring: MonitorConfig = Field(default_factory=MonitorConfig)
    # An optional SageMaker managed MLflow tracking server (cdk/tracking.py); off by default.
    mlflow: TrackingServerConfig = Field(default_factory=TrackingServerConfig)

    @model_validator(mode="after")
    def _spot_wait_covers_runtime(self) -> StageConfig:
        if self.use_spot_training and self.max_spot_wait_minutes < self.max_training_minutes:
            raise ValueError(
                f"max_spot_wait_minutes ({self.max_spot_wait_minutes}) must be at least "
                f"max_training_minutes ({self.max_training_minutes}) when use_spot_training is true"
            )
        return self


class ToolchainConfig(_Frozen):
    """Where the CI/CD pipeline itself lives (null: environment-agnostic)."""

    account: str | None = Field(None, pattern=_ACCOUNT)
    region: str | None = Field(None, pattern=_REGION)


class AwsConfig(_Frozen):
    """The whole AWS side: source, toolchain and the ordered stages (promotion order)."""

    # Relative to the repository root (build_app resolves it there, whatever the working dir).
    settings_file: str = "mlops.yaml"
    # The revision synthesised; app.py fills it from CodeBuild's environment when present.
    source_revision: str = Field("unversioned", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    data_prefix: str = Field("training-data", pattern=r"^[a-z0-9][a-z0-9/_-]*[a-z0-9]$")
    source: SourceConfig
    toolchain: ToolchainConfig = Field(default_factory=ToolchainConfig)
    stages: dict[str, StageConfig]

    @model_validator(mode="after")
    def _stages_are_usable(self) -> AwsConfig:
        if not self.stages:
            raise ValueError("stages must name at least one environment, e.g. {'dev': {}}")
        bad = [name for name in self.stages if not re.fullmatch(r"[a-z][a-z0-9]{1,11}", name)]
        if bad:
            raise ValueError(
                f"stage names must be 2-12 lowercase letters/digits starting with a letter; got {bad}"
            )
        names = list(self.stages)
        for position, (name, stage) in enumerate(self.stages.items()):
            if stage.release_via is not None and stage.release_via not in names[:position]:
                raise ValueError(
                    f"stages.{name}.release_via is {stage.release_via!r}: it must name a stage "
                    f"listed before {name!r} (one of {names[:position]})"
                )
            if (
                stage.release_via is not None
                and self.stages[stage.release_via].serverless_inference
            ):
                raise ValueError(
                    f"stages.{name}.release_via names {stage.release_via!r}, a serverless stage: "
                    "releases need a stage whose endpoint can be smoke-tested blue/green"
                )
        regions = {stage.region for stage in self.stages.values()} | {self.toolchain.region}
        if None in regions and len(regions) > 1:
            raise ValueError(
                "set region on the toolchain and on every stage, or on none of them: a CI/CD "
                "pipeline cannot deploy environment-agnostic stages to other regions"
            )
        return self


def parse_context_value(raw: object) -> object:
    """``-c`` values arrive as strings; "null" clears a setting, anything else pydantic converts."""
    return None if raw == "null" else raw


def load_aws_config(context: Mapping[str, Any]) -> AwsConfig:
    """Build the config from CDK context: the ``mlops`` object, then ``mlops.<path>`` overrides.

    Raises ``ValueError`` listing every invalid or unknown key with the fix.
    """
    base = context.get(CONTEXT_KEY)
    if not isinstance(base, Mapping):
        raise ValueError(
            f'no "{CONTEXT_KEY}" object in the CDK context (got {type(base).__name__}): run the app '
            'through the CDK CLI (npx cdk synth), which passes cdk.json\'s "context", and check '
            f'that cdk.json holds a "{CONTEXT_KEY}" object there (README, Deploy to AWS)'
        )
    data: dict[str, Any] = _deep_copy(base)
    for key in sorted(context):
        if not key.startswith(CONTEXT_KEY + "."):
            continue
        path = key.split(".")[1:]
        if not all(path):
            raise ValueError(f"context override {key!r} has an empty path segment")
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"context override {key!r}: {part!r} is not an object")
            node = child
        node[path[-1]] = parse_context_value(context[key])
    try:
        return AwsConfig.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{CONTEXT_KEY}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        ]
        raise ValueError(
            "invalid AWS configuration in cdk.json context:\n  - " + "\n  - ".join(problems)
        ) from exc


def _deep_copy(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in value.items()}
