"""Per-environment Azure settings: where the workspace is and how big things are.

One YAML file per environment (``azure/environments/<env>.yaml``) holds what differs
between dev and prod: subscription, resource group, workspace, instance types,
rollout pacing and alert e-mails. Secrets never live there: ``DefaultAzureCredential``
finds credentials in the environment (the Azure DevOps service connection, an
``az login`` session or a managed identity). What must agree with AWS and the local
run (dataset, gate, drift thresholds) stays in ``mlops.yaml`` and is read through
:func:`mlcore.settings.load_settings`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlcore.errors import ConfigError
from mlcore.settings import RolloutLimits

# azure/mlops_azure/config.py -> the repository root is two folders above this package.
REPO_ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS_DIR = REPO_ROOT / "azure" / "environments"
SOURCE_DIR = REPO_ROOT / "src"
# Settings resolution as every mlcore command does it: $MLOPS_SETTINGS, else the root mlops.yaml.
SETTINGS_FILE = Path(os.environ.get("MLOPS_SETTINGS") or REPO_ROOT / "mlops.yaml")

# A GUID of zeros marks a settings file that still needs the user's subscription.
PLACEHOLDER_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComputeConfig(_Frozen):
    """The training cluster. It scales to zero nodes when idle, so it costs nothing between runs."""

    name: str = Field("cpu-cluster", pattern=r"^[a-zA-Z][a-zA-Z0-9-]{1,23}$")
    size: str = "Standard_DS3_v2"
    max_instances: int = Field(2, ge=1, le=100)
    idle_seconds_before_scale_down: int = Field(900, ge=60)
    # Nodes without public IPs need a private route to Azure ML: a subnet of your VNet
    # here, or a managed virtual network on the workspace (workspace.managed_network).
    subnet: str | None = Field(
        None,
        pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$",
        description="ARM id of the subnet the cluster's nodes join",
    )


class DataConfig(_Frozen):
    """The raw training data: a folder of CSV or Parquet files in a workspace datastore.

    There is no version here: ``train`` registers the data asset at a version that is the
    fingerprint of the folder's current files, so new or changed files always retrain.
    """

    datastore: str = "workspaceblobstore"
    path: str = Field(..., description="folder inside the datastore, e.g. my-project/raw/")
    format: Literal["parquet", "csv"] = "parquet"
    # Late labels for the model-performance job: CSV or Parquet files with inference_id and
    # the target column (README "Ground truth on Azure").
    ground_truth_path: str | None = Field(
        None, description="folder inside the datastore holding ground-truth files"
    )

    @field_validator("path", "ground_truth_path")
    @classmethod
    def _relative_folder(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("azureml:", "https:", "/")) or ".." in value.split("/"):
            raise ValueError(
                f"must be a folder path inside the datastore such as 'my-project/raw/', got {value!r}"
            )
        return value.strip("/") + "/"


# A dated tag of Azure ML's base image (Microsoft publishes them as YYYYMMDD.vN).
DEFAULT_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:20250601.v1"


class EnvironmentImageConfig(_Frozen):
    base_image: str = Field(
        DEFAULT_BASE_IMAGE,
        description="Azure ML base image the conda environment is built on, at a fixed tag",
    )
    python_version: str = Field("3.11", pattern=r"^3\.\d+$")

    @field_validator("base_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        # A moving tag lets prod build on an image dev never tested.
        name = value.rsplit("/", 1)[-1]
        if "@sha256:" in value:
            return value
        if ":" not in name or name.rsplit(":", 1)[1] == "latest":
            raise ValueError(
                f"{value!r} is not pinned: use a dated tag (such as {DEFAULT_BASE_IMAGE}) or a "
                "digest, so prod serves the image dev tested"
            )
        return value


class EndpointConfig(_Frozen):
    name: str = Field(..., pattern=r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = Field(1, ge=1, le=20)
    auth_mode: Literal["key", "aml_token"] = "key"
    # Disabled means only callers inside the workspace's network reach the endpoint.
    public_network_access: Literal["enabled", "disabled"] = "disabled"
    # Azure ML stores at most 100% of requests; monitoring needs a representative share.
    capture_sampling_percentage: int | None = Field(
        None,
        ge=1,
        le=100,
        description="default: monitoring.capture_sampling_percentage in mlops.yaml",
    )


class RolloutConfig(RolloutLimits):
    """The blue/green rollout: mirrored traffic, then a canary share, then everything.

    Each phase waits until the new deployment has served ``min_requests`` (or
    ``max_wait_seconds`` pass, which fails the phase), then checks its Azure Monitor
    metrics over the phase against the ceilings below. The health-check request is the
    model's own ``sample_request.json``, written at training time from held-out rows.
    The ceilings, ``max_5xx_rate`` and ``max_p99_latency_ms``, are mlcore's rollout limits:
    named, measured and defaulted as the AWS endpoint's rollback alarms are.

    A quiet endpoint (dev, a new service) gets no organic traffic to judge: during each
    phase the rollout replays those held-out rows to the new deployment at
    ``synthetic_requests_per_minute``, so the gate measures it all the same; a synthetic
    request answered with a 5xx counts against ``max_5xx_rate`` at once.
    """

    mirror_percent: int = Field(10, ge=1, le=50)  # Azure caps mirrored traffic at 50%
    canary_percent: int = Field(10, ge=1, le=99)
    min_requests: int = Field(
        100, ge=1, description="requests the new deployment must serve per phase"
    )
    max_wait_seconds: int = Field(
        3600, ge=60, description="a phase that sees too few requests by then fails"
    )
    poll_seconds: int = Field(60, ge=1, description="how often the metrics are read while waiting")
    synthetic_requests_per_minute: int = Field(
        60,
        ge=0,
        le=600,
        description="held-out rows sent to the new deployment per minute in each phase; 0: "
        "organic traffic only",
    )
    health_check_requests: int = Field(3, ge=1, le=100)
    # The replaced deployment stays at 0% this long, so a rollback is one traffic switch.
    grace_period_hours: float = Field(24, ge=0)


_SUBNET_ID = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+/subnets/[^/]+$"
_VNET_ID = r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/virtualNetworks/[^/]+$"


class PrivateEndpointsConfig(_Frozen):
    """Where ``apply`` puts the private endpoints of the workspace, its storage, key vault and
    container registry, and of the registry: a subnet of your virtual network, in the
    workspace's region (mlops_azure.private_endpoints; README "Private networking on Azure")."""

    subnet: str = Field(..., pattern=_SUBNET_ID, description="ARM id of the endpoints' subnet")
    dns_resource_group: str | None = Field(
        None,
        min_length=1,
        max_length=90,
        description="resource group of the privatelink DNS zones (default: the workspace's)",
    )
    # Linked to every zone besides the endpoints' own network: e.g. the hub network whose DNS
    # the build agents use.
    linked_vnets: list[str] = Field(default_factory=list)

    @field_validator("linked_vnets")
    @classmethod
    def _vnet_ids(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not re.match(_VNET_ID, v)]
        if bad:
            raise ValueError(f"not virtual network ARM ids: {bad}")
        return value


class WorkspaceConfig(_Frozen):
    """How ``apply`` creates the workspace when it does not exist yet (Azure then creates its
    storage account, key vault, container registry and Application Insights)."""

    location: str = Field("westeurope", min_length=3)
    public_network_access: Literal["Enabled", "Disabled"] = "Disabled"
    managed_network: Literal[
        "disabled", "allow_internet_outbound", "allow_only_approved_outbound"
    ] = "allow_only_approved_outbound"
    hbi_workspace: bool = Field(
        True,
        description="high business impact: less diagnostic data to Microsoft, encrypted scratch",
    )
    private_endpoints: PrivateEndpointsConfig | None = None

    @model_validator(mode="after")
    def _reachable(self) -> WorkspaceConfig:
        if self.public_network_access == "Disabled" and self.private_endpoints is None:
            raise ValueError(
                "public_network_access Disabled with no private_endpoints leaves no way to reach "
                "the workspace: set private_endpoints.subnet to a subnet of your virtual network "
                "(where the build agent can reach), or public_network_access: Enabled"
            )
        return self


class RegistryConfig(_Frozen):
    """The Azure ML registry shared by the workspaces: train registers there, every stage deploys from it."""

    name: str = Field(..., pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
    location: str = Field("westeurope", min_length=3)
    # The subscription and resource group the registry lives in (default: this environment's).
    subscription_id: str | None = None
    resource_group: str | None = None
    public_network_access: Literal["Enabled", "Disabled"] = "Enabled"


class RetrainConfig(_Frozen):
    """The closed loop: a breached monitor signal starts the training pipeline (Event Grid)."""

    enabled: bool = True
    # ARM id of the Azure Function that runs mlops_azure.retrain (azure/functions/retrain).
    function_resource_id: str | None = Field(
        None,
        pattern=r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Web/sites/[^/]+/functions/[^/]+$",
    )


# Serverless Spark instance types (azure-ai-ml SparkResourceConfiguration.instance_type_list)
# with their vCPUs and memory in GiB (Azure VM sizes, Esv3 series).
SPARK_INSTANCE_TYPES: dict[str, tuple[int, int]] = {
    "standard_e4s_v3": (4, 32),
    "standard_e8s_v3": (8, 64),
    "standard_e16s_v3": (16, 128),
    "standard_e32s_v3": (32, 256),
    "standard_e64s_v3": (64, 432),
}
SparkInstanceType = Literal[
    "standard_e4s_v3", "standard_e8s_v3", "standard_e16s_v3", "standard_e32s_v3", "standard_e64s_v3"
]
# azure-ai-ml's own pattern for Spark memory sizes (_schema/job/parameterized_spark.py).
_SPARK_MEMORY = r"^\d+[kKmMgGtT]$"
_MEMORY_GIB = {"k": 1 / 1024**2, "m": 1 / 1024, "g": 1.0, "t": 1024.0}


def memory_gib(size: str) -> float:
    return int(size[:-1]) * _MEMORY_GIB[size[-1].lower()]


class SparkDriftConfig(_Frozen):
    """Size of the serverless Spark drift job (``monitoring.engine: spark | auto`` in mlops.yaml).

    Executors scale between ``min_executors`` and ``max_executors`` (dynamic allocation);
    each driver and executor runs on one instance of ``monitoring.spark_instance_type``,
    so its cores and memory must fit that instance. The defaults are those of Azure's own
    monitoring components on standard_e4s_v3 (azureml-assets, model_data_collector_preprocessor).
    """

    driver_cores: int = Field(4, ge=1)
    driver_memory: str = Field("28g", pattern=_SPARK_MEMORY)
    executor_cores: int = Field(4, ge=1)
    executor_memory: str = Field("28g", pattern=_SPARK_MEMORY)
    min_executors: int = Field(1, ge=1)
    max_executors: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _executor_range(self) -> SparkDriftConfig:
        # azure-ai-ml (entities/_job/spark_helpers.py, _validate_spark_configurations):
        # min executors > 0 and min <= max when dynamic allocation is on.
        if self.min_executors > self.max_executors:
            raise ValueError(
                f"min_executors ({self.min_executors}) must not exceed max_executors "
                f"({self.max_executors})"
            )
        return self


class MonitoringConfig(_Frozen):
    spark_instance_type: SparkInstanceType = "standard_e4s_v3"
    # azure-ai-ml accepts "3.4" and "3.5" for monitors (entities/_monitoring/compute.py);
    # Synapse's Spark 3.4 runtime (Python 3.10) left support on 31 March 2026, and the Spark
    # drift job needs 3.5 (Spark 3.5, Python 3.11, Java 17: mlcore needs Python 3.11).
    spark_runtime_version: Literal["3.4", "3.5"] = "3.5"
    spark_drift: SparkDriftConfig = Field(default_factory=SparkDriftConfig)
    alert_emails: list[str] = Field(default_factory=list)
    ml_task: Literal["classification", "regression"] | None = Field(
        None, description="used only when mlops.yaml leaves dataset.task unset"
    )

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [email for email in value if not _EMAIL.match(email)]
        if bad:
            raise ValueError(f"not e-mail addresses: {bad}")
        return value

    @model_validator(mode="after")
    def _spark_fits_the_instance(self) -> MonitoringConfig:
        cores, memory = SPARK_INSTANCE_TYPES[self.spark_instance_type]
        job = self.spark_drift
        for role in ("driver", "executor"):
            role_cores, role_memory = getattr(job, f"{role}_cores"), getattr(job, f"{role}_memory")
            if role_cores > cores or memory_gib(role_memory) > memory:
                raise ValueError(
                    f"spark_drift.{role}_cores {role_cores} / {role}_memory {role_memory} do not "
                    f"fit {self.spark_instance_type} ({cores} vCPUs, {memory} GiB); choose a "
                    "larger spark_instance_type or smaller sizes"
                )
        return self


class BatchConfig(_Frozen):
    """Scheduled batch scoring (optional): a batch endpoint whose model deployment runs
    ``mlcore batch``'s code on every file of a data drop, on ``monitoring``'s schedule or
    its own.

    Each scheduled run scores the files under ``input_path`` into
    ``output_path/<run time>/`` (predictions, the scored rows in the data-capture layout,
    rejects), runs mlcore's drift job on that capture against the model's training
    baseline (a major grade tags the run as a breached signal, which the retrain wiring
    acts on), and writes the manifest ``_SUCCESS`` last.
    """

    endpoint_name: str = Field(..., pattern=r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
    input_path: str = Field(..., description="folder inside data.datastore holding the drop")
    output_path: str = Field(..., description="folder inside data.datastore for the runs")
    schedule: str | None = Field(
        None,
        description="EventBridge-style expression, e.g. cron(0 2 * * ? *); default: "
        "monitoring.schedule in mlops.yaml",
    )
    compute: str | None = Field(None, description="cluster to score on (default: compute.name)")
    instance_count: int = Field(1, ge=1, le=100)
    max_concurrency_per_instance: int = Field(1, ge=1, le=64)
    # Files per mini-batch: each file is scored in chunks, so a file of any size fits.
    mini_batch_size: int = Field(1, ge=1)
    chunk_rows: int = Field(100_000, ge=1_000)
    # Share of rows that may be unscorable (rejects.csv) before a file's mini-batch fails.
    max_reject_share: float = Field(0.01, ge=0, le=1)
    max_retries: int = Field(2, ge=0, le=10)
    timeout_seconds: int = Field(3600, ge=60)

    @field_validator("input_path", "output_path")
    @classmethod
    def _relative_folder(cls, value: str) -> str:
        folder = DataConfig._relative_folder(value)
        assert folder is not None
        return folder

    @field_validator("schedule")
    @classmethod
    def _parsable(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from mlcore.schedule import Schedule

        try:
            Schedule.parse(value)
        except ValueError as exc:
            raise ValueError(str(exc)) from exc
        return value


class AzureEnvironment(_Frozen):
    """Everything that differs between Azure environments, validated on load."""

    name: str = Field(..., pattern=r"^[a-z][a-z0-9-]{1,15}$")
    subscription_id: str
    resource_group: str = Field(..., min_length=1, max_length=90)
    workspace: str = Field(..., min_length=3, max_length=33)
    experiment_name: str = Field("training", pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")
    workspace_settings: WorkspaceConfig = Field(default_factory=WorkspaceConfig)
    registry: RegistryConfig
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    data: DataConfig
    environment: EnvironmentImageConfig = Field(default_factory=EnvironmentImageConfig)
    endpoint: EndpointConfig
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    batch: BatchConfig | None = Field(None, description="scheduled batch scoring; none when unset")

    @property
    def private_nodes(self) -> bool:
        """Nodes may go without public IPs only on a subnet or in a managed VNet (Learn:
        how-to-secure-training-vnet, "no public IP")."""
        return bool(self.compute.subnet) or self.workspace_settings.managed_network != "disabled"

    @field_validator("subscription_id")
    @classmethod
    def _guid(cls, value: str) -> str:
        if not _GUID.match(value):
            raise ValueError(
                f"must be a subscription GUID such as {PLACEHOLDER_SUBSCRIPTION}, got {value!r}"
            )
        return value

    @property
    def has_placeholder_subscription(self) -> bool:
        return self.subscription_id == PLACEHOLDER_SUBSCRIPTION

    def require_real_subscription(self) -> None:
        """Raise before any call to Azure when the settings file still holds the placeholder GUID."""
        if self.has_placeholder_subscription:
            raise ConfigError(
                f"environment {self.name!r} still has the placeholder subscription "
                f"{PLACEHOLDER_SUBSCRIPTION}: set subscription_id, resource_group and workspace in "
                f"azure/environments/{self.name}.yaml, or the variables "
                f"{coordinate_variable(self.name, 'subscription_id')} (and _RESOURCE_GROUP, _WORKSPACE); "
                "only --dry-run works without them"
            )


# Workspace coordinates may come from environment variables instead of the settings file,
# so a team can keep them in an Azure DevOps variable group rather than in the repository:
# MLOPS_AZURE_<ENV>_SUBSCRIPTION_ID, ..._RESOURCE_GROUP and ..._WORKSPACE.
COORDINATE_KEYS = ("subscription_id", "resource_group", "workspace")


def coordinate_variable(env_name: str, key: str) -> str:
    return f"MLOPS_AZURE_{env_name.upper().replace('-', '_')}_{key.upper()}"


def coordinate_overrides(environ: Mapping[str, str], env_name: str) -> dict[str, str]:
    """The coordinates of ``env_name`` set in ``environ`` (unset or empty variables are ignored)."""
    overrides = {}
    for key in COORDINATE_KEYS:
        value = environ.get(coordinate_variable(env_name, key))
        if value:
            overrides[key] = value
    return overrides


def load_environment(
    name: str,
    *,
    environments_dir: Path = ENVIRONMENTS_DIR,
    overrides: Mapping[str, str] | None = None,
) -> AzureEnvironment:
    """Read and validate ``<environments_dir>/<name>.yaml``; ``overrides`` replace top-level keys.

    Raises
    ------
    ConfigError
        When the file is missing (listing the environments that exist), is not YAML,
        or holds an invalid or unknown key (each one named).
    """
    path = environments_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in environments_dir.glob("*.yaml"))
        raise ConfigError(f"no Azure environment {name!r}: {path} does not exist; known: {known}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    if data.get("name", name) != name:
        raise ConfigError(
            f"{path} declares name {data['name']!r}; it must match the file name {name!r}"
        )
    try:
        return AzureEnvironment.model_validate({"name": name, **data, **(overrides or {})})
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError(
            f"invalid Azure environment in {path}:\n  - " + "\n  - ".join(lines)
        ) from exc
