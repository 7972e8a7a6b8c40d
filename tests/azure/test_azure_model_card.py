"""The model card on the Azure model (issue 22, finding 9): the registered model's files hold
the card (HTML with its figures, Markdown, JSON), its tags say where, and its description
gives the verdict, the primary metric's interval and the no-skill baseline, as the SDK's own
REST conversion carries them to the registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from azure.ai.ml.entities import Model
from mlops_azure.promote import MODEL_CARD_PATH, MODEL_CARD_TAG, card_description, lineage_tags

from mlcore.data import Split
from mlcore.evaluation_job import run_evaluation
from mlcore.settings import MlopsSettings


@pytest.fixture(scope="module")
def registered(
    saved_model_dir: Path, churn_split: Split, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The folder the register component outputs: the model, and its evaluation in it."""
    root = tmp_path_factory.mktemp("registered")
    churn_split.test.to_parquet(root / "test.parquet")
    run_evaluation(
        model_dir=saved_model_dir,
        data=root / "test.parquet",
        output_dir=root / "evaluation",
        settings=MlopsSettings(),
        model_name="acme-risk-model 3",
    )
    folder = root / "model"
    shutil.copytree(saved_model_dir, folder)
    shutil.copytree(root / "evaluation", folder / "evaluation")
    return folder


def test_the_azure_model_carries_its_card_in_its_files_tags_and_description(
    registered: Path,
) -> None:
    tags = lineage_tags(registered, job_name="job-1", reference="acme-risk-prediction-reference:3")
    assert tags[MODEL_CARD_TAG] == MODEL_CARD_PATH
    assert (registered / MODEL_CARD_PATH).is_file()
    assert (registered / "evaluation" / "figures" / "roc_curve.png").is_file()
    description = card_description(registered)
    assert description is not None
    assert description.startswith("acme-risk-model 3: quality gate passed; auc 0.")
    assert "95% interval 0." in description and "no-skill baseline 0.5000" in description

    model = Model(
        name="acme-risk-model",
        version="3",
        path=str(registered),
        tags=tags,
        description=description,
    )
    sent = model._to_rest_object().properties  # what the SDK puts on the wire
    assert sent.description == description
    assert sent.tags[MODEL_CARD_TAG] == MODEL_CARD_PATH


def test_a_model_without_a_card_keeps_its_lineage_tags_and_no_description(
    registered: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "model"
    shutil.copytree(registered, bare)
    for name in ("model_card.html", "model_card.json"):
        (bare / "evaluation" / name).unlink()
    tags = lineage_tags(bare, job_name="job-1", reference="r:1")
    assert MODEL_CARD_TAG not in tags and tags["gate_passed"] == "true"
    assert card_description(bare) is None
