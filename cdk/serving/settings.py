"""Typed, validated settings for a model endpoint and its safe rollout.

Each environment gets one frozen object; an invalid or unknown value raises one
``ValueError`` (pydantic's ValidationError) that lists every problem.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlcore.settings import RolloutLimits, ServingSettings

ENDPOINT_NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,47}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerlessSettings(_Frozen):
    """Serverless inference: pay per request, scale to zero. Meant for dev.

    SageMaker does not capture data on serverless endpoints, so an endpoint with these
    settings has no data capture and cannot feed the drift or quality monitors.
    """

    memory_size_mb: Literal[1024, 2048, 3072, 4096, 5120, 6144] = 2048
    max_concurrency: int = Field(5, ge=1, le=200)


class TrafficShiftingSettings(_Frozen):
    """How a blue/green update moves traffic to the new fleet.

    ``canary``: ``canary_percent`` first, then the rest after ``wait_minutes``.
    ``linear``: ``linear_step_percent`` every ``wait_minutes``.
    ``all_at_once``: everything at once, still watched by the rollback alarms for the
    baking period (``termination_wait_minutes``) before the old fleet goes.
    """

    mode: Literal["canary", "linear", "all_at_once"] = "canary"
    canary_percent: int = Field(10, ge=1, le=50)
    linear_step_percent: int = Field(25, ge=5, le=50)
    wait_minutes: int = Field(5, ge=1, le=60)
    termination_wait_minutes: int = Field(10, ge=0, le=60)
    max_deployment_minutes: int = Field(60, ge=10, le=480)


class RollbackAlarmSettings(RolloutLimits):
    """Thresholds of the alarms that roll a deployment back (and page people afterwards).

    ``max_5xx_rate`` and ``max_p99_latency_ms`` are mlcore's rollout limits, named and
    measured as Azure's rollout names them; each alarm breaches when its minute exceeds the
    limit for ``evaluation_minutes`` minutes in a row.
    """

    evaluation_minutes: int = Field(2, ge=1, le=10)


class EndpointSettings(_Frozen):
    """One environment's endpoint: capacity, data capture, rollout and rollback.

    Real-time instances by default; ``serverless`` set switches to serverless inference.
    """

    endpoint_name: str = Field(pattern=ENDPOINT_NAME_PATTERN)
    instance_type: str = Field("ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    initial_instance_count: int = Field(2, ge=1, le=100)
    min_instances: int = Field(2, ge=1, le=100)
    max_instances: int = Field(4, ge=1, le=100)
    # Target-tracking on SageMakerVariantInvocationsPerInstance (requests per instance per minute).
    target_invocations_per_instance: int = Field(300, ge=1)
    scale_in_cooldown_seconds: int = Field(300, ge=0)
    scale_out_cooldown_seconds: int = Field(60, ge=0)
    serverless: ServerlessSettings | None = None
    capture_sampling_percentage: int = Field(100, ge=1, le=100)
    capture_prefix: str = Field("data-capture", pattern=r"^[a-z0-9][a-z0-9/_-]*[a-z0-9]$")
    traffic_shifting: TrafficShiftingSettings = Field(default_factory=TrafficShiftingSettings)
    rollback_alarms: RollbackAlarmSettings = Field(default_factory=RollbackAlarmSettings)
    # mlops.yaml's serving: section (timeouts); the container receives it as MLCORE_SERVING.
    serving: ServingSettings = Field(default_factory=ServingSettings)

    @model_validator(mode="after")
    def _capacity_is_consistent(self) -> EndpointSettings:
        if self.serverless is not None:
            return self
        problems = []
        if self.min_instances > self.max_instances:
            problems.append(
                f"min_instances ({self.min_instances}) exceeds max_instances ({self.max_instances})"
            )
        if not self.min_instances <= self.initial_instance_count <= self.max_instances:
            problems.append(
                f"initial_instance_count ({self.initial_instance_count}) must lie between "
                f"min_instances ({self.min_instances}) and max_instances ({self.max_instances})"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def captures_data(self) -> bool:
        """Serverless endpoints cannot capture data (a SageMaker limitation)."""
        return self.serverless is None

    @property
    def variant_name(self) -> str:
        # One variant, named as SageMaker names a single variant; blue/green keeps the name.
        return "AllTraffic"


class EndpointOverrides(_Frozen):
    """The endpoint settings an environment may set in cdk.json (``stages.<name>.endpoint``).

    Every field left out keeps :class:`EndpointSettings`' default. The endpoint's name, its
    instance type (``inference_instance_type``), serverless mode (``serverless_inference``)
    and its capture rate (``monitoring.capture_sampling_percentage`` in mlops.yaml) are set
    elsewhere.
    """

    initial_instance_count: int | None = Field(None, ge=1, le=100)
    min_instances: int | None = Field(None, ge=1, le=100)
    max_instances: int | None = Field(None, ge=1, le=100)
    target_invocations_per_instance: int | None = Field(None, ge=1)
    scale_in_cooldown_seconds: int | None = Field(None, ge=0)
    scale_out_cooldown_seconds: int | None = Field(None, ge=0)
    serverless: ServerlessSettings | None = None
    traffic_shifting: TrafficShiftingSettings | None = None
    rollback_alarms: RollbackAlarmSettings | None = None

    @model_validator(mode="after")
    def _makes_valid_settings(self) -> EndpointOverrides:
        # The capacity rules span fields: check them as EndpointSettings will.
        EndpointSettings(endpoint_name="validation", **self.as_settings())
        return self

    def as_settings(self) -> dict[str, object]:
        """The fields that were set, as keyword arguments of :class:`EndpointSettings`."""
        return {name: value for name, value in self if value is not None}
