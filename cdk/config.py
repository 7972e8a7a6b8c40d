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

from cdk.batch.settings import BatchConfig
from cdk.monitoring.settings import MonitorConfig
from cdk.serving.settings import EndpointOverrides
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
    # This environment runs its own model-build pipeline (schedule, new data, CI, drift). The
    # model-build stage always trains; in the others it is off unless set: they serve the
    # packages promoted from the model-build stage. (AwsConfig fills it in per stage.)
    train: bool = True
    # A person approves in the release flow (SNS task token) before a model reaches this stage.
    release_approval: bool = False
    # Capacity, traffic shifting, rollback alarms and scaling of this stage's endpoint
    # (cdk.serving.settings.EndpointSettings; unset fields keep its defaults).
    endpoint: EndpointOverrides = Field(default_factory=EndpointOverrides)
    # Buckets and keys survive `cdk destroy` (always set for production).
    retain_data: bool = False
    artifact_expiry_days: int = Field(365, ge=1)
    # The monitors' infrastructure settings (cdk/monitoring/settings.py, MonitorConfig).
    monitoring: MonitorConfig = Field(default_factory=MonitorConfig)
    # Scheduled batch scoring with SageMaker Batch Transform (cdk/batch/settings.py,
    # BatchConfig); null: none.
    batch: BatchConfig | None = None
    # false: no endpoint in this stage, only its batch path (which it then needs); released
    # models reach it all the same.
    online_endpoint: bool = True
    # An optional SageMaker managed MLflow tracking server (cdk/tracking.py); off by default.
    mlflow: TrackingServerConfig = Field(default_factory=TrackingServerConfig)

    @model_validator(mode="before")
    @classmethod
    def _release_via_was_removed(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "release_via" in data:
            raise ValueError(
                "release_via was removed: every release starts in the model-build stage and "
                "goes through the stages in the order cdk.json lists them (each deployed from "
                "its own promoted copy); delete release_via and set release_approval on the "
                "stages a person must approve"
            )
        return data

    @model_validator(mode="after")
    def _training_settings_need_training(self) -> StageConfig:
        if self.train:
            return self
        set_here = [
            name
            for name, active in (
                ("training_schedule", self.training_schedule is not None),
                ("retrain_on_new_data", self.retrain_on_new_data),
                ("train_after_deploy", self.train_after_deploy),
            )
            if active
        ]
        if set_here:
            raise ValueError(
                f"{', '.join(set_here)} start training, but this stage does not train "
                "(train: false: it serves models promoted from the model-build stage); move "
                "them to the model-build stage or set train: true"
            )
        return self

    @model_validator(mode="after")
    def _serves_something(self) -> StageConfig:
        if self.online_endpoint:
            return self
        if self.batch is None:
            raise ValueError(
                "online_endpoint is false and batch is not set, so this stage would serve "
                "nothing; set batch (a schedule and prefixes) or remove online_endpoint"
            )
        endpoint_settings = [
            name
            for name, active in (
                ("serverless_inference", self.serverless_inference),
                ("endpoint", bool(self.endpoint.as_settings())),
            )
            if active
        ]
        if endpoint_settings:
            raise ValueError(
                f"{', '.join(endpoint_settings)} configure an endpoint, but online_endpoint is "
                "false (a batch-only stage); remove them or set online_endpoint true"
            )
        return self

    @property
    def serverless(self) -> bool:
        """The stage's endpoint is serverless (either switch)."""
        return self.serverless_inference or self.endpoint.serverless is not None

    @property
    def captures_data(self) -> bool:
        """The stage has an endpoint that captures traffic for the monitors."""
        return self.online_endpoint and not self.serverless

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
    # The stage that trains and registers the models every later stage is promoted from.
    # Default: the first stage (dev in the shipped cdk.json).
    model_build_stage: str | None = None
    # How long a release waits for a person's approval before it stops (release_approval).
    release_approval_timeout_hours: int = Field(7 * 24, ge=1, le=30 * 24)

    @model_validator(mode="before")
    @classmethod
    def _fill_in_training_per_stage(cls, data: Any) -> Any:
        """Only the model-build stage trains unless a stage says otherwise; a stage that does
        not train has no new-data trigger unless it says otherwise (which it then cannot)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("stages"), Mapping):
            return data
        stages = data["stages"]
        build = data.get("model_build_stage")
        if build not in stages:
            # An unknown name is reported by the checks below, not as a side effect here.
            build = next(iter(stages), None)
        filled: dict[str, Any] = {}
        for name, stage in stages.items():
            if not isinstance(stage, Mapping):
                filled[name] = stage
                continue
            stage = dict(stage)
            stage.setdefault("train", name == build)
            stage.setdefault("retrain_on_new_data", bool(stage["train"]))
            filled[name] = stage
        return {**data, "stages": filled}

    @property
    def build_stage(self) -> str:
        """The stage whose model-build pipeline trains the models that are released."""
        return self.model_build_stage or next(iter(self.stages))

    def release_stages(self) -> list[str]:
        """The stages a release reaches, in order: the model-build stage and every later one."""
        names = list(self.stages)
        return names[names.index(self.build_stage) :]

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
        build = self.build_stage
        if build not in names:
            raise ValueError(
                f"model_build_stage is {build!r}, which is not a stage; use one of {names}"
            )
        if not self.stages[build].train:
            raise ValueError(
                f"stages.{build}.train is false, but {build} is the model-build stage: it trains "
                "every model that is released; set train: true or choose another model_build_stage"
            )
        if self.stages[build].release_approval:
            raise ValueError(
                f"stages.{build}.release_approval is true, but {build} is the model-build stage: "
                "approving the package in its registry is what starts a release; remove it"
            )
        unreachable = names[: names.index(build)]
        if unreachable:
            raise ValueError(
                f"stages {unreachable} come before the model-build stage {build!r}: releases "
                "go from the model-build stage to the stages after it, so these would never "
                f"receive a model; list {build!r} first or remove them"
            )
        accounts = {name: stage.account for name, stage in self.stages.items()}
        if None in accounts.values() and len(set(accounts.values())) > 1:
            agnostic = [name for name, account in accounts.items() if account is None]
            raise ValueError(
                f"stages {agnostic} have no account while others have one: the release flow "
                "runs in the model-build stage's account and assumes a deploy role in each "
                "stage's account, so it must know them all; set account on every stage, or "
                "on none (one account for everything)"
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
