"""Workspace assets: the workspace and registry, the cluster, the environments, the data assets."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.ai.ml.constants import StorageAccountType
from azure.ai.ml.entities import (
    AmlCompute,
    Data,
    Environment,
    IdentityConfiguration,
    ManagedNetwork,
    NetworkSettings,
    Registry,
    RegistryRegionDetails,
    SystemCreatedAcrAccount,
    SystemCreatedStorageAccount,
    Workspace,
)

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings, required_extras
from mlops_azure.config import REPO_ROOT, AzureEnvironment

# What the Azure ML job and serving environments add to mlcore's runtime: the inputs of
# lock/azure-job.txt and lock/azure-serving.txt (tools/locks.py), which the environments install
# (and requirements-batch.txt, with the job's, of lock/azure-batch.txt).
JOB_REQUIREMENTS_FILE = REPO_ROOT / "azure" / "requirements-job.txt"
SERVING_REQUIREMENTS_FILE = REPO_ROOT / "azure" / "requirements-serving.txt"
_MANAGED_NETWORK_MODES = {
    "disabled": "Disabled",
    "allow_internet_outbound": "AllowInternetOutbound",
    "allow_only_approved_outbound": "AllowOnlyApprovedOutbound",
}


# mlcore extras an Azure environment does not install from pyproject, and why. The job
# environment's MLflow is requirements-job.txt's (azureml-mlflow cannot share CI's mlflow),
# serving never tracks, and serverless Spark brings its own pyspark (runtime 3.5).
JOB_PROVIDED_EXTRAS = {
    "tracking": "requirements-job.txt pins mlflow-skinny and azureml-mlflow for the workspace",
    "spark": "serverless Spark jobs run on Azure's Spark runtime, which brings pyspark",
}
SERVING_SKIPPED_EXTRAS = {
    "tracking": "the endpoint scores requests; it logs no MLflow runs",
    "spark": "the endpoint never runs Spark",
}


def locked_requirements(
    extras: Iterable[str] = (), *, serving: bool, batch: bool = False
) -> list[str]:
    """The Azure environment's pip entries from the locks (lock/azure-job.txt,
    lock/azure-serving.txt or, for the scheduled batch run, lock/azure-batch.txt: the job's
    plus azure-ai-ml to invoke the endpoint; plus lock/extra-<extra>.txt for each extra): the whole tree at the
    CI lock's versions (save the few tools/locks.py names, which Azure's own packages force),
    each with its hashes, so conda's pip installs in hash-checking mode and resolves nothing.

    Raises
    ------
    ConfigError
        When an extra has no lock (pyproject does not declare it, or ``make lock`` was not run).
    """
    from tools.locks import LOCKS_BY_NAME, read_lock

    name = "azure-serving" if serving else "azure-batch" if batch else "azure-job"
    pins = read_lock(LOCKS_BY_NAME[name].path)
    for extra in extras:
        lock = LOCKS_BY_NAME.get(f"extra-{extra}")
        if lock is None or not lock.path.is_file():
            raise ConfigError(
                f"the settings need mlcore[{extra}], which has no lock under {REPO_ROOT / 'lock'}: "
                "declare it in pyproject.toml [project.optional-dependencies] and run `make lock`"
            )
        for name, pin in read_lock(lock.path).items():
            # The extra's own packages; what the environment's lock holds already stays as is.
            pins.setdefault(name, pin)
    return [pin.requirement for pin in pins.values()]


def environment_extras(settings: MlopsSettings, *, serving: bool) -> list[str]:
    """The extras ``settings`` need (:func:`mlcore.settings.required_extras`) that the job
    (or serving) environment installs from pyproject; the rest are provided or not needed."""
    skipped = SERVING_SKIPPED_EXTRAS if serving else JOB_PROVIDED_EXTRAS
    return [extra for extra in required_extras(settings) if extra not in skipped]


def conda_specification(env: AzureEnvironment, requirements: list[str]) -> dict[str, Any]:
    return {
        "name": "mlcore",
        # nodefaults: conda reads conda-forge only, never Anaconda's defaults channels, so a
        # network that allows only approved hosts needs one conda host (mlops_azure.network).
        "channels": ["conda-forge", "nodefaults"],
        "dependencies": [
            f"python={env.environment.python_version}",
            "pip",
            {"pip": list(requirements)},
        ],
    }


def build_workspace(env: AzureEnvironment, settings: MlopsSettings) -> Workspace:
    """The workspace ``apply`` creates when it is absent.

    Azure creates the dependent storage account, key vault, container registry and
    Application Insights with it. A managed VNet (unless disabled) is what lets the
    cluster's nodes go without public IPs when no subnet is given.
    """
    ws = env.workspace_settings
    return Workspace(
        name=env.workspace,
        location=ws.location,
        resource_group=env.resource_group,
        display_name=f"{settings.project} ({env.name})",
        description=f"MLOps workspace of {settings.project}, {env.name}",
        hbi_workspace=ws.hbi_workspace,
        public_network_access=ws.public_network_access,
        managed_network=ManagedNetwork(
            isolation_mode=_MANAGED_NETWORK_MODES[ws.managed_network], firewall_sku="Standard"
        ),
        tags={"environment": env.name, "project": settings.project},
    )


def build_registry(env: AzureEnvironment, settings: MlopsSettings) -> Registry:
    """The registry shared by the environments' workspaces (created by ``apply`` when absent)."""
    registry = env.registry
    return Registry(
        name=registry.name,
        location=registry.location,
        description=f"models of {settings.project}, promoted from dev to prod",
        public_network_access=registry.public_network_access,
        # Stated in full: the loader fills these defaults in, so the file says what Azure gets.
        replication_locations=[
            RegistryRegionDetails(
                location=registry.location,
                acr_config=[SystemCreatedAcrAccount(acr_account_sku="Premium")],
                storage_config=SystemCreatedStorageAccount(
                    storage_account_hns=False,
                    storage_account_type=StorageAccountType.STANDARD_LRS,
                ),
            )
        ],
        tags={"project": settings.project},
    )


def build_compute(env: AzureEnvironment) -> AmlCompute:
    """A CPU cluster that scales to zero nodes.

    Its nodes get no public IP only where Azure can still reach them: on the configured
    subnet, or in the workspace's managed VNet (Learn, how-to-secure-training-vnet).
    """
    return AmlCompute(
        name=env.compute.name,
        size=env.compute.size,
        min_instances=0,
        max_instances=env.compute.max_instances,
        idle_time_before_scale_down=env.compute.idle_seconds_before_scale_down,
        tier="dedicated",
        enable_node_public_ip=not env.private_nodes,
        network_settings=NetworkSettings(subnet=env.compute.subnet) if env.compute.subnet else None,
        # The scheduled batch run signs in as the cluster (README, "Batch scoring on Azure").
        identity=IdentityConfiguration(type="system_assigned") if env.batch else None,
        tags={"environment": env.name},
    )


def build_environment(
    env: AzureEnvironment,
    settings: MlopsSettings,
    requirements: list[str],
    *,
    serving: bool = False,
    batch: bool = False,
) -> Environment:
    """mlcore's runtime from the locks (:func:`locked_requirements`): for the jobs (with
    MLflow, ``requirements-job.txt``), for the endpoint (Azure's inference server and data
    collector, ``requirements-serving.txt``) or for the scheduled batch run (azure-ai-ml,
    ``requirements-batch.txt``). The version is a hash of the image and the
    entries, so a changed pin gives a new environment version instead of a clash with the
    registered one.
    """
    conda = conda_specification(env, requirements)
    digest = hashlib.sha256(
        json.dumps({"image": env.environment.base_image, "conda": conda}, sort_keys=True).encode()
    ).hexdigest()
    purpose = "serving" if serving else "batch" if batch else "training"
    return Environment(
        name=f"{settings.project}-mlcore-{purpose}",
        version=digest[:12],
        description=(
            "mlcore at the versions CI tests, with Azure's inference server and data collector"
            if serving
            else "mlcore at the versions CI tests, with azure-ai-ml for the scheduled batch run"
            if batch
            else "mlcore at the versions CI tests, with MLflow for the workspace's tracking"
        ),
        image=env.environment.base_image,
        conda_file=conda,
        tags={"environment": env.name, "purpose": purpose},
    )


def datastore_uri(env: AzureEnvironment, path: str | None = None) -> str:
    return f"azureml://datastores/{env.data.datastore}/paths/{path or env.data.path}"


@dataclass(frozen=True)
class StoredFile:
    """One file of the data folder as storage lists it: enough to notice any change."""

    name: str
    size: int
    etag: str


def snapshot_version(files: Iterable[StoredFile]) -> str:
    """The data asset version of a folder's current content: a hash of its file listing.

    The listing carries each blob's ETag, which storage changes on every write, so an
    added, removed or rewritten file gives a new version and Azure ML cannot reuse the
    previous run's prep step (it reuses deterministic steps whose inputs are unchanged).
    """
    listing = sorted((f.name, f.size, f.etag) for f in files)
    if not listing:
        raise ConfigError("the training data folder holds no files: upload the data first")
    digest = hashlib.sha256(json.dumps(listing).encode()).hexdigest()
    return f"snapshot-{digest[:16]}"


def build_training_data(env: AzureEnvironment, settings: MlopsSettings, version: str) -> Data:
    """The raw data the training pipeline reads, at ``version`` (:func:`snapshot_version`)."""
    return Data(
        name=f"{settings.project}-training-data",
        version=version,
        type="uri_folder",
        path=datastore_uri(env),
        description=f"raw {env.data.format} files for `mlcore prep` (target: {settings.dataset.target})",
        tags={"environment": env.name, "format": env.data.format},
    )


def build_settings_data(settings: MlopsSettings, settings_file: Path) -> Data:
    """mlops.yaml as a versioned asset: the pipeline's steps read their thresholds from it.

    The version is a hash of the file, so each model's lineage names the exact
    settings it was trained and gated with.
    """
    if not settings_file.is_file():
        raise ConfigError(f"settings file {settings_file} does not exist")
    digest = hashlib.sha256(settings_file.read_bytes()).hexdigest()
    return Data(
        name=f"{settings.project}-settings",
        version=digest[:12],
        type="uri_file",
        path=str(settings_file),
        description="mlops.yaml: dataset, training, gate and drift settings shared with AWS and the local run",
    )
