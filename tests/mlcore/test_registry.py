from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcore.errors import RegistryError
from mlcore.model import model_sha256, write_manifest
from mlcore.registry import LocalModelRegistry


@pytest.fixture()
def model_dir(tmp_path: Path) -> Path:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"fake model bytes")
    (model / "metadata.json").write_text("{}")
    write_manifest(model)
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    (evaluation / "evaluation.json").write_text('{"binary_classification_metrics": {}}')
    return model


def test_registered_versions_are_numbered_and_pending_approval(
    tmp_path: Path, model_dir: Path
) -> None:
    registry = LocalModelRegistry(tmp_path / "registry")
    first = registry.register(
        "churn", model_dir=model_dir, metadata={"git_commit": "abc", "metrics": {"auc": 0.8}}
    )
    second = registry.register("churn", model_dir=model_dir)
    assert (first.version, second.version) == (1, 2)
    assert first.status == "PendingManualApproval"
    assert first.metadata == {
        "git_commit": "abc",
        "metrics": '{"auc": 0.8}',
        "model_sha256": model_sha256(model_dir),
    }
    assert (first.model_dir / "model.joblib").read_bytes() == b"fake model bytes"


def test_package_json_has_sagemaker_model_package_fields(tmp_path: Path, model_dir: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    package = registry.register(
        "churn", model_dir=model_dir, evaluation_dir=model_dir.parent / "evaluation"
    )
    description = json.loads((package.path / "package.json").read_text())
    for key in (
        "ModelPackageGroupName",
        "ModelPackageVersion",
        "ModelPackageArn",
        "ModelApprovalStatus",
        "CreationTime",
        "CustomerMetadataProperties",
        "InferenceSpecification",
        "ModelMetrics",
    ):
        assert key in description
    uri = description["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    assert uri.startswith("file://") and uri.endswith("evaluation/evaluation.json")


def test_latest_approved_follows_approval_changes(tmp_path: Path, model_dir: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    for _ in range(3):
        registry.register("churn", model_dir=model_dir)
    assert registry.latest_approved("churn") is None
    registry.update_approval("churn", 1, "Approved")
    registry.update_approval("churn", 2, "Approved")
    registry.update_approval("churn", 3, "Rejected", reason="fails the fairness review")
    latest = registry.latest_approved("churn")
    assert latest is not None and latest.version == 2
    registry.update_approval(
        "churn", 2, "Rejected"
    )  # a rollback: the previous approved version serves again
    latest = registry.latest_approved("churn")
    assert latest is not None and latest.version == 1
    assert (
        registry.get("churn", 3).description["ApprovalDescription"] == "fails the fairness review"
    )


def test_unknown_versions_and_statuses_are_refused(tmp_path: Path, model_dir: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    registry.register("churn", model_dir=model_dir)
    with pytest.raises(RegistryError, match=r"churn/9 does not exist; versions: \[1\]"):
        registry.get("churn", 9)
    with pytest.raises(RegistryError, match="unknown approval status"):
        registry.update_approval("churn", 1, "Maybe")  # type: ignore[arg-type]


def test_a_failed_registration_leaves_no_version_behind(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="not a model directory"):
        registry.register("churn", model_dir=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match=r"missing \['metadata\.json', 'model\.joblib'"):
        registry.register("churn", model_dir=empty)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"fake model bytes")
    (model / "metadata.json").write_text("{}")
    write_manifest(model)
    with pytest.raises(FileNotFoundError):
        registry.register("churn", model_dir=model, evaluation_dir=tmp_path / "no-evaluation")
    assert registry.list_packages("churn") == []
    assert [p.name for p in (tmp_path / "churn" / "versions").iterdir()] == []


def test_the_registry_records_the_models_hash_outside_the_model_folder(
    tmp_path: Path, model_dir: Path
) -> None:
    package = LocalModelRegistry(tmp_path / "registry").register("churn", model_dir=model_dir)
    description = json.loads((package.path / "package.json").read_text())
    recorded = description["CustomerMetadataProperties"]["model_sha256"]
    assert recorded == package.model_sha256 == model_sha256(model_dir)
    assert recorded.startswith("sha256:") and len(recorded) == len("sha256:") + 64


def test_a_model_folder_edited_after_training_is_not_registered(
    tmp_path: Path, model_dir: Path
) -> None:
    (model_dir / "metadata.json").write_text(json.dumps({"decision_threshold": 0.99}))
    registry = LocalModelRegistry(tmp_path / "registry")
    with pytest.raises(RegistryError, match=r"metadata\.json has sha256:.*changed after training"):
        registry.register("churn", model_dir=model_dir)
    assert registry.list_packages("churn") == []
