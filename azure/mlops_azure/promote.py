"""Promotion between workspaces: prod serves exactly the model that is live in dev."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from azure.ai.ml import MLClient
from azure.ai.ml.entities import Model
from azure.core.exceptions import ResourceNotFoundError
from rich.console import Console

from mlcore.errors import MlcoreError
from mlcore.model import METADATA_FILE
from mlops_azure.endpoint import LIVE_MODEL_TAG

logger = logging.getLogger(__name__)


class PromotionError(MlcoreError):
    """The source environment has no live model, or its files are not a model."""


def live_model(client: MLClient, endpoint_name: str) -> tuple[str, str]:
    """(name, version) of the model the endpoint serves, as its last completed rollout recorded."""
    tags = client.online_endpoints.get(endpoint_name).tags or {}
    live = tags.get(LIVE_MODEL_TAG)
    if not live or ":" not in live:
        raise PromotionError(
            f"endpoint {endpoint_name!r} records no live model (tag {LIVE_MODEL_TAG!r}); "
            "roll a model out there before promoting it"
        )
    name, version = live.rsplit(":", 1)
    return name, version


def _model_folder(download_root: Path) -> Path:
    folders = sorted({path.parent for path in download_root.rglob(METADATA_FILE)})
    if len(folders) != 1:
        raise PromotionError(
            f"expected one mlcore model (a folder with {METADATA_FILE}) in the download, found {len(folders)}"
        )
    return folders[0]


def promote_live_model(
    source: MLClient,
    target: MLClient,
    *,
    source_endpoint: str,
    source_label: str,
    console: Console,
) -> str:
    """Register the model live on ``source_endpoint`` in the target workspace, same name and version.

    Idempotent: a version already registered in the target is left as it is.
    Returns the target's reference, ``azureml:name:version``.
    """
    name, version = live_model(source, source_endpoint)
    reference = f"azureml:{name}:{version}"
    try:
        target.models.get(name=name, version=version)
    except ResourceNotFoundError:
        pass
    else:
        console.print(f"{name}:{version} is already registered in the target workspace")
        return reference
    original = source.models.get(name=name, version=version)
    with tempfile.TemporaryDirectory(prefix="mlops-promote-") as tmp:
        source.models.download(name=name, version=version, download_path=tmp)
        folder = _model_folder(Path(tmp))
        target.models.create_or_update(
            Model(
                name=name,
                version=version,
                type="custom_model",
                path=str(folder),
                description=original.description,
                tags={**(original.tags or {}), "promoted_from": source_label},
                properties=dict(original.properties or {}),
            )
        )
    console.print(f"Promoted {name}:{version} from {source_label}")
    return reference
