"""Promotion through the Azure ML registry shared by the workspaces.

The training run registers its model and prediction reference in the dev workspace
(both at the run's version). :func:`publish` then tags the model with its lineage and
shares both into the registry with ``share``, which keeps Azure's lineage to the
workspace asset and the job that produced it (no download and re-upload). Every stage
deploys ``azureml://registries/<registry>/models/<name>/versions/<version>``: exactly
the version the run published, passed from stage to stage as ``name:version``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient
from azure.core.exceptions import ResourceNotFoundError
from rich.console import Console

from mlcore.errors import MlcoreError, ModelError
from mlcore.evaluate import metrics_from_document
from mlcore.model import METADATA_FILE, MODEL_SHA256_KEY, SAMPLE_REQUEST_FILE, model_sha256

logger = logging.getLogger(__name__)

# Model tags (contract 1: the registry keeps model_sha256 outside the model folder; the rest
# is lineage for people and audits).
MODEL_SHA256_TAG = MODEL_SHA256_KEY
REFERENCE_TAG = "prediction_reference"
RUN_TAG = "azureml_job"
# Where the model card sits inside the registered model (the register component copies the
# evaluation folder into it): the HTML page, with the figures, Markdown and JSON beside it.
MODEL_CARD_TAG = "model_card"
MODEL_CARD_PATH = "evaluation/model_card.html"


class PromotionError(MlcoreError):
    """A model cannot be published or found in the registry, or its files are not a model."""


@dataclass(frozen=True)
class RegistryModel:
    """One model version in the registry, with the tags a rollout needs."""

    registry: str
    name: str
    version: str
    tags: dict[str, str]

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def reference(self) -> str:
        return f"azureml://registries/{self.registry}/models/{self.name}/versions/{self.version}"

    @property
    def model_sha256(self) -> str:
        value = self.tags.get(MODEL_SHA256_TAG)
        if not value:
            raise PromotionError(
                f"registry model {self.label} has no {MODEL_SHA256_TAG!r} tag; publish it with "
                "`python -m mlops_azure train` (which tags it) before rolling it out"
            )
        return value

    @property
    def prediction_reference(self) -> str:
        """The registry data asset of the model's prediction reference, as the monitor names it."""
        value = self.tags.get(REFERENCE_TAG)
        if not value or ":" not in value:
            raise PromotionError(f"registry model {self.label} has no {REFERENCE_TAG!r} tag")
        name, version = value.rsplit(":", 1)
        return f"azureml://registries/{self.registry}/data/{name}/versions/{version}"


def parse_label(label: str) -> tuple[str, str]:
    name, sep, version = label.rpartition(":")
    if not sep or not name or not version:
        raise PromotionError(f"expected a model as name:version, got {label!r}")
    return name, version


def model_folder(download_root: Path) -> Path:
    """The one mlcore model folder (holding metadata.json) under a download."""
    folders = sorted({path.parent for path in download_root.rglob(METADATA_FILE)})
    if len(folders) != 1:
        raise PromotionError(
            f"expected one mlcore model (a folder with {METADATA_FILE}) in the download, found {len(folders)}"
        )
    return folders[0]


def _flat(prefix: str, document: Any) -> dict[str, str]:
    if not isinstance(document, dict):
        return {}
    return {
        f"{prefix}{key}": f"{value:.6g}" if isinstance(value, float) else str(value)
        for key, value in document.items()
        if isinstance(value, int | float | str) and not isinstance(value, bool)
    }


def lineage_tags(model_dir: Path, *, job_name: str, reference: str) -> dict[str, str]:
    """Tags from the packaged model: its sha256, metrics, commit, data fingerprint and runs."""
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    try:
        # The model's hash: its manifest's, over every file that shapes predictions.
        sha = model_sha256(model_dir)
    except ModelError as exc:
        raise PromotionError(f"cannot publish the model: {exc}") from exc
    evaluation_dir = model_dir / "evaluation"
    evaluation = json.loads((evaluation_dir / "evaluation.json").read_text())
    gate = json.loads((evaluation_dir / "gate.json").read_text())
    metrics = metrics_from_document(evaluation)
    tags = {
        MODEL_SHA256_TAG: str(sha),
        REFERENCE_TAG: reference,
        RUN_TAG: job_name,
        "gate_passed": str(bool(gate.get("passed"))).lower(),
        **_flat("metric_", metrics),
    }
    for key in ("git_commit", "git_dirty", "data_fingerprint", "mlflow_run_id", "algorithm"):
        if metadata.get(key) not in (None, ""):
            tags[key] = str(metadata[key])
    if (model_dir / MODEL_CARD_PATH).is_file():
        tags[MODEL_CARD_TAG] = MODEL_CARD_PATH
    return tags


def card_description(model_dir: Path) -> str | None:
    """The model's description in the registry: its model card's verdict and primary metric
    with the interval and the no-skill baseline, and where the full card is."""
    path = model_dir / "evaluation" / "model_card.json"
    if not path.is_file():
        return None
    card = json.loads(path.read_text())
    metrics = card["metrics"]
    primary = metrics["primary_metric"]
    entry = card["quantitative_analyses"]["overall"].get(primary, {})

    def number(value: Any) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    verdict = "passed" if metrics["quality_gate"]["passed"] else "FAILED"
    return (
        f"{card['model_details']['name']}: quality gate {verdict}; {primary} "
        f"{number(entry.get('value'))} (95% interval {number(entry.get('lower'))} to "
        f"{number(entry.get('upper'))}; no-skill baseline {number(entry.get('no_skill'))}). "
        f"Model card: {MODEL_CARD_PATH} in the model's files."
    )


def publish(
    workspace: MLClient,
    registry: MLClient,
    *,
    registry_name: str,
    model_name: str,
    reference_name: str,
    version: str,
    job_name: str,
    console: Console,
) -> RegistryModel:
    """Tag the run's model with its lineage and share it and its reference into the registry.

    Idempotent: a version already in the registry is returned as it is when it holds the
    same model file (same ``model_sha256``), and refused when it does not.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-publish-") as tmp:
        # The model the run registered, read back as an asset. Not through
        # jobs.download(output_name=...): for a model output azure-ai-ml 1.35.2 raises
        # TypeError there (model_dataplane BatchGetResolvedUrisDto(values=...) in
        # operations/_model_dataplane_operations.py, whose field is values_property).
        workspace.models.download(name=model_name, version=version, download_path=tmp)
        folder = model_folder(Path(tmp))
        tags = lineage_tags(folder, job_name=job_name, reference=f"{reference_name}:{version}")
        description = card_description(folder)
    try:
        existing = registry.models.get(name=model_name, version=version)
    except ResourceNotFoundError:
        existing = None
    if existing is not None:
        if (existing.tags or {}).get(MODEL_SHA256_TAG) != tags[MODEL_SHA256_TAG]:
            raise PromotionError(
                f"registry {registry_name} already holds {model_name}:{version} with another model "
                "file; versions are immutable, train again for a new version"
            )
        console.print(f"{model_name}:{version} is already in registry {registry_name}")
        return RegistryModel(registry_name, model_name, version, dict(existing.tags or {}))
    model = workspace.models.get(name=model_name, version=version)
    model.tags = {**(model.tags or {}), **tags}
    if description is not None:
        model.description = description
    workspace.models.create_or_update(model)
    workspace.data.share(
        reference_name,
        version,
        share_with_name=reference_name,
        share_with_version=version,
        registry_name=registry_name,
    )
    shared = workspace.models.share(
        model_name,
        version,
        share_with_name=model_name,
        share_with_version=version,
        registry_name=registry_name,
    )
    console.print(f"Published {model_name}:{version} to registry {registry_name}")
    return RegistryModel(registry_name, model_name, version, dict(shared.tags or tags))


def registry_model(registry: MLClient, registry_name: str, label: str) -> RegistryModel:
    """The registry's ``name:version``; an error naming it when it is not there."""
    name, version = parse_label(label)
    try:
        model = registry.models.get(name=name, version=version)
    except ResourceNotFoundError as exc:
        raise PromotionError(
            f"registry {registry_name} has no model {label}: pass the version the Train stage "
            "published (its `model` output)"
        ) from exc
    return RegistryModel(registry_name, name, version, dict(model.tags or {}))


def download_sample_request(registry: MLClient, model: RegistryModel, into: Path) -> Path:
    """The model's own health-check request, ``sample_request.json``, written at training time."""
    registry.models.download(name=model.name, version=model.version, download_path=str(into))
    path = model_folder(into) / SAMPLE_REQUEST_FILE
    if not path.is_file():
        raise PromotionError(
            f"model {model.label} holds no {SAMPLE_REQUEST_FILE}: it was trained by an older mlcore; "
            "retrain it so the rollout has held-out rows to check with"
        )
    return path
