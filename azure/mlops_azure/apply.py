"""Sending the definitions to Azure ML, or writing them as YAML without touching Azure."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineEndpoint, PipelineJob
from azure.ai.ml.exceptions import JobException
from azure.core.exceptions import ResourceNotFoundError
from rich.console import Console

from mlcore.errors import MlcoreError
from mlops_azure.definitions import Definitions
from mlops_azure.progress import wait_for

logger = logging.getLogger(__name__)

# Keys whose values are local files or folders in a dumped entity.
_LOCAL_PATH_KEYS = frozenset({"code", "path"})


class TrainingFailed(MlcoreError):
    """The training pipeline ended without registering a model."""


def entity_document(entity: Any) -> dict[str, Any]:
    """The entity as the plain mapping its YAML file holds (what the SDK loaders read)."""
    # _to_dict() returns OrderedDicts and enums; a JSON round trip leaves plain types
    # that yaml.safe_dump accepts. ManagedOnlineEndpoint.dump() ignores its path
    # argument, so every entity is written this one way.
    document: dict[str, Any] = json.loads(json.dumps(entity._to_dict(), default=str))
    return document


def relative_local_paths(document: Any, base: Path) -> Any:
    """Rewrite absolute local ``code``/``path`` values relative to ``base``.

    The SDK makes local paths absolute; relative ones keep the dry-run folder usable
    from any clone, because the CLI and the loaders resolve them against the YAML file.
    """
    if isinstance(document, dict):
        return {
            key: (
                os.path.relpath(value, base)
                if key in _LOCAL_PATH_KEYS and isinstance(value, str) and Path(value).is_absolute()
                else relative_local_paths(value, base)
            )
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [relative_local_paths(item, base) for item in document]
    return document


def write_dry_run(definitions: Definitions, output: Path) -> list[Path]:
    """Write one YAML file per entity to ``output``; no network, no credentials."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, entity in definitions.entities().items():
        path = output / f"{stem}.yaml"
        document = relative_local_paths(entity_document(entity), output.resolve())
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        written.append(path)
    return written


def _keep_live_traffic(
    ml_client: MLClient, endpoint: ManagedOnlineEndpoint
) -> ManagedOnlineEndpoint:
    """Carry the live traffic split over: re-applying the endpoint must not take it offline."""
    try:
        existing = ml_client.online_endpoints.get(endpoint.name)
    except ResourceNotFoundError:
        return endpoint
    endpoint.traffic = dict(existing.traffic or {})
    endpoint.mirror_traffic = dict(existing.mirror_traffic or {})
    endpoint.tags = {**(existing.tags or {}), **(endpoint.tags or {})}
    return endpoint


def apply_workspace(ml_client: MLClient, definitions: Definitions, *, console: Console) -> None:
    """Create or update the workspace assets, the components and the endpoint.

    Deployments and the monitor are the rollout's job: the monitor targets the
    deployment that is live, which only the rollout knows.
    """
    wait_for(
        ml_client.compute.begin_create_or_update(definitions.compute),
        f"Compute cluster {definitions.compute.name}",
        console=console,
    )
    for environment in (definitions.environment, definitions.serving_environment):
        ml_client.environments.create_or_update(environment)
        console.print(f"Environment {environment.name}:{environment.version}")
    for data in (definitions.training_data, definitions.reference_data, definitions.settings_data):
        ml_client.data.create_or_update(data)
        console.print(f"Data asset {data.name}:{data.version}")
    for component in definitions.components.values():
        ml_client.components.create_or_update(component)
        console.print(f"Component {component.name}:{component.version}")
    wait_for(
        ml_client.online_endpoints.begin_create_or_update(
            _keep_live_traffic(ml_client, definitions.endpoint)
        ),
        f"Endpoint {definitions.endpoint.name}",
        console=console,
    )


def serving_deployment(ml_client: MLClient, endpoint_name: str) -> str | None:
    """The deployment taking the largest share of the endpoint's traffic; None when none does."""
    try:
        traffic = ml_client.online_endpoints.get(endpoint_name).traffic or {}
    except ResourceNotFoundError:
        return None
    serving = {name: share for name, share in traffic.items() if share > 0}
    return max(serving, key=lambda name: serving[name]) if serving else None


def latest_model(ml_client: MLClient, name: str) -> str | None:
    """``azureml:name:version`` of the newest registered version, or None when there is none."""
    try:
        model = ml_client.models.get(name=name, label="latest")
    except ResourceNotFoundError:
        return None
    return f"azureml:{model.name}:{model.version}"


def run_training(ml_client: MLClient, job: PipelineJob, *, console: Console) -> str:
    """Submit the training pipeline, stream its logs until it ends, and return its name.

    Raises
    ------
    TrainingFailed
        When the pipeline does not complete: a failed quality gate ends it here, with
        nothing registered.
    """
    submitted = ml_client.jobs.create_or_update(job)
    console.print(f"Submitted pipeline job {submitted.name}: {submitted.studio_url}")
    try:
        ml_client.jobs.stream(submitted.name)
    except JobException as exc:
        # stream() raises when the job fails; the status below says how it ended.
        logger.info("pipeline job %s stream ended with: %s", submitted.name, exc)
    status = ml_client.jobs.get(submitted.name).status
    if status != "Completed":
        raise TrainingFailed(
            f"pipeline job {submitted.name} ended {status}: no model was registered. A failed "
            "quality gate fails the evaluate step; its gate.json output says why. "
            f"Details: {submitted.studio_url}"
        )
    return str(submitted.name)
