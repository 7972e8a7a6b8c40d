"""Sending the definitions to Azure, or writing them as files without touching Azure."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from azure.ai.ml import MLClient
from azure.ai.ml.entities import (
    AzureBlobDatastore,
    AzureDataLakeGen2Datastore,
    JobSchedule,
    ManagedOnlineEndpoint,
    PipelineJob,
)
from azure.ai.ml.exceptions import ValidationErrorType, ValidationException
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.eventgrid.models import AzureFunctionEventSubscriptionDestination
from azure.storage.blob import ContainerClient
from rich.console import Console

from mlcore.errors import ConfigError, MlcoreError
from mlops_azure.assets import StoredFile
from mlops_azure.config import AzureEnvironment
from mlops_azure.definitions import Definitions
from mlops_azure.progress import wait_for
from mlops_azure.retrain import SUBSCRIPTION_NAME, system_topic_name

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
    """One YAML file per azure-ai-ml entity, one JSON (the ARM body) per Event Grid resource."""
    output.mkdir(parents=True, exist_ok=True)
    written = []
    base = output.resolve()
    for stem, entity in definitions.entities().items():
        path = output / f"{stem}.yaml"
        document = relative_local_paths(entity_document(entity), base)
        if isinstance(entity, JobSchedule):
            # The schedule schema reads its job from a file (`create_job.job`), although the
            # SDK dumps it inline, which load_schedule refuses: write the job beside it.
            job_path = output / f"{stem}-job.yaml"
            job_path.write_text(yaml.safe_dump(document["create_job"], sort_keys=False))
            written.append(job_path)
            create_job = entity.create_job
            assert not isinstance(create_job, str)  # the definitions build a job, never an id
            document["create_job"] = {"type": create_job.type, "job": f"./{job_path.name}"}
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        written.append(path)
    for stem, model in definitions.event_grid().items():
        path = output / f"{stem}.json"
        path.write_text(json.dumps(model.serialize(), indent=2) + "\n")
        written.append(path)
    return written


def _keep_live_traffic(
    ml_client: MLClient, endpoint: ManagedOnlineEndpoint
) -> ManagedOnlineEndpoint:
    """Carry the live traffic split and the rollout's tags over: re-applying must not reset them."""
    try:
        existing = ml_client.online_endpoints.get(endpoint.name)
    except ResourceNotFoundError:
        return endpoint
    endpoint.traffic = dict(existing.traffic or {})
    endpoint.mirror_traffic = dict(existing.mirror_traffic or {})
    endpoint.tags = {**(existing.tags or {}), **(endpoint.tags or {})}
    return endpoint


def ensure_workspace_and_registry(
    ml_client: MLClient, registry_client: MLClient, definitions: Definitions, *, console: Console
) -> None:
    """Create the workspace (with its dependent resources) and the registry when absent.

    An existing one is left as it is: its network and encryption settings cannot all be
    changed after creation, and a team may have tuned them.
    """
    try:
        ml_client.workspaces.get(definitions.workspace.name)
        console.print(f"Workspace {definitions.workspace.name} exists")
    except ResourceNotFoundError:
        wait_for(
            ml_client.workspaces.begin_create(definitions.workspace),
            f"Creating workspace {definitions.workspace.name} and its dependent resources",
            console=console,
        )
    try:
        registry_client.registries.get(definitions.registry.name)
        console.print(f"Registry {definitions.registry.name} exists")
    except ResourceNotFoundError:
        wait_for(
            registry_client.registries.begin_create(definitions.registry),
            f"Creating registry {definitions.registry.name}",
            console=console,
        )


def apply_workspace(ml_client: MLClient, definitions: Definitions, *, console: Console) -> None:
    """Create or update the cluster, environments, settings asset, components and endpoint.

    Deployments and the monitors are the rollout's job: they follow the live deployment
    and model, which only the rollout knows. The training data asset is registered by
    ``train``, at the version of the data it finds then.
    """
    wait_for(
        ml_client.compute.begin_create_or_update(definitions.compute),
        f"Compute cluster {definitions.compute.name}",
        console=console,
    )
    for environment in (definitions.environment, definitions.serving_environment):
        ml_client.environments.create_or_update(environment)
        console.print(f"Environment {environment.name}:{environment.version}")
    ml_client.data.create_or_update(definitions.settings_data)
    console.print(
        f"Data asset {definitions.settings_data.name}:{definitions.settings_data.version}"
    )
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


def apply_event_grid(
    eventgrid: Any, env: AzureEnvironment, definitions: Definitions, *, console: Console
) -> None:
    """The workspace's system topic and the retrain subscription (azure-mgmt-eventgrid client)."""
    topic = system_topic_name(env)
    wait_for(
        eventgrid.system_topics.begin_create_or_update(
            env.resource_group, topic, definitions.system_topic
        ),
        f"Event Grid system topic {topic}",
        console=console,
    )
    destination = definitions.retrain_subscription.destination
    # mlops_azure.retrain builds it to deliver to the retrain function, by resource id.
    assert isinstance(destination, AzureFunctionEventSubscriptionDestination)
    assert destination.resource_id is not None
    function = destination.resource_id
    if not _resource_exists(eventgrid, function):
        console.print(
            f"[yellow]Retrain subscription not created: {function} does not exist. Deploy "
            "azure/functions/retrain (README, 'Retraining on Azure'), then run apply again."
            "[/yellow]"
        )
        return
    wait_for(
        eventgrid.system_topic_event_subscriptions.begin_create_or_update(
            env.resource_group, topic, SUBSCRIPTION_NAME, definitions.retrain_subscription
        ),
        f"Retrain subscription {SUBSCRIPTION_NAME}",
        console=console,
    )


# The App Service API version that reads a function of a function app (Microsoft.Web).
WEB_API_VERSION = "2023-12-01"


def _resource_exists(arm_client: Any, resource_id: str) -> bool:
    """Whether an ARM resource exists, read through an ARM client's own pipeline (its
    credential, retries and transport)."""
    from azure.core.rest import HttpRequest

    response = arm_client._send_request(
        HttpRequest("GET", f"{resource_id}?api-version={WEB_API_VERSION}")
    )
    if response.status_code == 404:
        return False
    response.raise_for_status()
    return True


def data_files(
    ml_client: MLClient, env: AzureEnvironment, credential: TokenCredential
) -> Iterable[StoredFile]:
    """The files under the training data folder, as storage lists them (name, size, ETag)."""
    datastore = ml_client.datastores.get(env.data.datastore)
    if isinstance(datastore, AzureBlobDatastore):
        container = datastore.container_name
    elif isinstance(datastore, AzureDataLakeGen2Datastore):
        container = datastore.filesystem
    else:
        raise ConfigError(
            f"datastore {env.data.datastore!r} is a {type(datastore).__name__}; the training data "
            "must be on a blob or ADLS Gen2 datastore so its version can follow its content"
        )
    client = ContainerClient(
        account_url=f"{datastore.protocol}://{datastore.account_name}.blob.{datastore.endpoint}",
        container_name=container,
        credential=credential,
    )
    for blob in client.list_blobs(name_starts_with=env.data.path):
        yield StoredFile(name=blob.name, size=int(blob.size), etag=str(blob.etag))


def latest_model(ml_client: MLClient, name: str) -> str | None:
    """``azureml:name:version`` of the newest registered version, or None when there is none."""
    try:
        model = ml_client.models.get(name=name, label="latest")
    except ResourceNotFoundError:
        return None
    except ValidationException as exc:
        # For a name with no versions, azure-ai-ml 1.35 raises this, not ResourceNotFoundError
        # (_utils/_asset_utils.py, _get_latest): what a first training run meets.
        if exc.error_type == ValidationErrorType.RESOURCE_NOT_FOUND:
            return None
        raise
    return f"azureml:{model.name}:{model.version}"


def run_training(
    ml_client: MLClient,
    job: PipelineJob,
    *,
    console: Console,
    poll_seconds: float = 60,
    sleep: Any = None,
) -> str:
    """Submit the training pipeline, wait for it to end, and return its name.

    The wait polls the job's status (each call signs in afresh through the credential),
    instead of streaming one long connection.

    Raises
    ------
    TrainingFailed
        When the pipeline does not complete: a failed quality gate ends it here, with
        nothing registered.
    """
    import time

    pause = sleep or time.sleep
    submitted = ml_client.jobs.create_or_update(job)
    console.print(f"Submitted pipeline job {submitted.name}: {submitted.studio_url}")
    terminal = {"Completed", "Failed", "Canceled", "NotResponding"}
    with console.status(f"Pipeline job {submitted.name} running"):
        while (status := ml_client.jobs.get(submitted.name).status) not in terminal:
            pause(poll_seconds)
    if status != "Completed":
        raise TrainingFailed(
            f"pipeline job {submitted.name} ended {status}: no model was registered. A failed "
            "quality gate fails the evaluate step; its gate.json output says why. "
            f"Details: {submitted.studio_url}"
        )
    return str(submitted.name)
