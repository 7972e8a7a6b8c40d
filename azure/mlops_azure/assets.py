"""Workspace assets: the training cluster, the runtime environment and the data assets."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import yaml
from azure.ai.ml.entities import AmlCompute, Data, Environment

from mlcore.errors import ConfigError
from mlcore.settings import MlopsSettings
from mlops_azure.config import REPO_ROOT, AzureEnvironment

# Serving needs Azure's HTTP server around the scoring script and the collector that
# feeds the monitors; mlcore itself stays free of Azure packages.
SERVING_REQUIREMENTS = (
    "azureml-inference-server-http==1.5.1",
    "azureml-ai-monitoring==1.0.0",
)
# azureml-inference-server-http 1.5.1 requires pydantic~=2.12.0, older than the CI pin.
# mlcore needs pydantic>=2.7; its settings and serving tests pass on 2.12.5.
SERVING_PIN_OVERRIDES = {"pydantic": "2.12.5"}
MLTABLE_FILE = "MLTable"
_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_requirements(
    pyproject: Path = REPO_ROOT / "pyproject.toml",
    requirements: Path = REPO_ROOT / "requirements.txt",
) -> list[str]:
    """mlcore's runtime dependencies (pyproject) at the exact versions CI tests (requirements.txt).

    Raises
    ------
    ConfigError
        When a runtime dependency has no ``name==version`` pin in requirements.txt.
    """
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins: dict[str, str] = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" not in line:
            continue
        name_part, version = line.split("==", 1)
        pins[_normalise(re.sub(r"\[.*\]", "", name_part).strip())] = version.strip()
    pinned, missing = [], []
    for requirement in declared:
        match = _REQUIREMENT_NAME.match(requirement)
        if match is None:
            raise ConfigError(f"cannot read the dependency {requirement!r} in {pyproject}")
        name = match.group(1)
        if _normalise(name) not in pins:
            missing.append(name)
        else:
            pinned.append(f"{name}=={pins[_normalise(name)]}")
    if missing:
        raise ConfigError(
            f"{requirements} has no exact pin (name==version) for mlcore's runtime "
            f"dependencies {missing}; add them so the Azure environment matches CI"
        )
    return pinned


def serving_requirements(requirements: list[str]) -> list[str]:
    """mlcore's pins with the serving overrides applied, plus Azure's serving packages."""
    pinned = []
    for requirement in requirements:
        name = requirement.split("==", 1)[0]
        override = SERVING_PIN_OVERRIDES.get(_normalise(name))
        pinned.append(f"{name}=={override}" if override else requirement)
    return [*pinned, *SERVING_REQUIREMENTS]


def conda_specification(env: AzureEnvironment, requirements: list[str]) -> dict[str, Any]:
    return {
        "name": "mlcore",
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={env.environment.python_version}",
            "pip",
            {"pip": list(requirements)},
        ],
    }


def build_compute(env: AzureEnvironment) -> AmlCompute:
    """A CPU cluster that scales to zero nodes, without public IPs on its nodes."""
    return AmlCompute(
        name=env.compute.name,
        size=env.compute.size,
        min_instances=0,
        max_instances=env.compute.max_instances,
        idle_time_before_scale_down=env.compute.idle_seconds_before_scale_down,
        tier="dedicated",
        enable_node_public_ip=False,
        tags={"environment": env.name},
    )


def build_environment(
    env: AzureEnvironment,
    settings: MlopsSettings,
    requirements: list[str],
    *,
    serving: bool = False,
) -> Environment:
    """mlcore's runtime at CI's pins: for the pipeline steps, or (``serving``) for the endpoint.

    The serving environment adds Azure's inference server and data collector. The
    version is a hash of the image and the pins, so a changed pin gives a new
    environment version instead of a clash with the registered one.
    """
    pins = serving_requirements(requirements) if serving else requirements
    conda = conda_specification(env, pins)
    digest = hashlib.sha256(
        json.dumps({"image": env.environment.base_image, "conda": conda}, sort_keys=True).encode()
    ).hexdigest()
    purpose = "serving" if serving else "training"
    return Environment(
        name=f"{settings.project}-mlcore-{purpose}",
        version=digest[:12],
        description=(
            "mlcore runtime dependencies at the versions CI tests, with Azure's inference server "
            "and data collector"
            if serving
            else "mlcore runtime dependencies at the versions CI tests"
        ),
        image=env.environment.base_image,
        conda_file=conda,
        tags={"environment": env.name, "purpose": purpose},
    )


def datastore_uri(env: AzureEnvironment) -> str:
    return f"azureml://datastores/{env.data.datastore}/paths/{env.data.path}"


def build_training_data(env: AzureEnvironment, settings: MlopsSettings) -> Data:
    """The raw data the training pipeline reads: a folder of CSV or Parquet files."""
    return Data(
        name=f"{settings.project}-training-data",
        version=env.data.version,
        type="uri_folder",
        path=datastore_uri(env),
        description=f"raw {env.data.format} files for `mlcore prep` (target: {settings.dataset.target})",
        tags={"environment": env.name, "format": env.data.format},
    )


def mltable_document(env: AzureEnvironment) -> dict[str, Any]:
    """An MLTable over the same files: Azure ML monitors read reference data only as MLTable."""
    long_uri = (
        f"azureml://subscriptions/{env.subscription_id}/resourcegroups/{env.resource_group}"
        f"/workspaces/{env.workspace}/datastores/{env.data.datastore}/paths/{env.data.path}"
    )
    if env.data.format == "parquet":
        reader: Any = "read_parquet"
    else:
        reader = {
            "read_delimited": {
                "delimiter": ",",
                "header": "all_files_same_headers",
                "encoding": "utf8",
            }
        }
    return {
        "type": "mltable",
        "paths": [{"pattern": f"{long_uri}*.{env.data.format}"}],
        "transformations": [reader],
    }


def write_mltable(env: AzureEnvironment, folder: Path) -> Path:
    """Write the MLTable file that :func:`build_reference_data` uploads; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MLTABLE_FILE).write_text(yaml.safe_dump(mltable_document(env), sort_keys=False))
    return folder


def reference_data_name(settings: MlopsSettings) -> str:
    return f"{settings.project}-reference-data"


def reference_data_ref(env: AzureEnvironment, settings: MlopsSettings) -> str:
    """``azureml:name:version`` of the reference data asset that ``apply`` registers."""
    return f"azureml:{reference_data_name(settings)}:{env.data.version}"


def build_reference_data(env: AzureEnvironment, settings: MlopsSettings, mltable_dir: Path) -> Data:
    """The monitors' reference data: the training files read through the MLTable in ``mltable_dir``."""
    if not (mltable_dir / MLTABLE_FILE).is_file():
        raise ConfigError(
            f"{mltable_dir} holds no {MLTABLE_FILE} file; write it first with write_mltable()"
        )
    return Data(
        name=reference_data_name(settings),
        version=env.data.version,
        type="mltable",
        path=str(mltable_dir),
        description="training data as MLTable: the baseline of the drift and data quality monitors",
        tags={"environment": env.name},
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
