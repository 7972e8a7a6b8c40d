"""The model card in the SageMaker model package (issue 22, finding 9).

moto keeps no ModelCard on a model package, so what it would hide is checked against the
service's own rules instead: the register steps' ModelCard member, with the content mlcore
evaluate writes put in the place of the JsonGet, against botocore's CreateModelPackage model
and the SageMaker SDK's model card shapes (pipelines.sagemaker.model_registry.check_model_card);
the read side against a DescribeModelPackage answer that botocore's Stubber validates.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from mlcore.data import Split
from mlcore.evaluation_job import run_evaluation
from mlcore.model_package_card import MODEL_PACKAGE_CARD_FILE, model_package_card
from mlcore.settings import MlopsSettings
from pipelines.sagemaker import contract
from pipelines.sagemaker.model_registry import check_model_card, describe_package


@pytest.fixture(scope="module")
def evaluation(
    saved_model_dir: Path, churn_split: Split, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("card")
    churn_split.test.to_parquet(out / "test.parquet")
    run_evaluation(
        model_dir=saved_model_dir,
        data=out / "test.parquet",
        output_dir=out / "evaluation",
        settings=MlopsSettings(),
    )
    return out / "evaluation"


@pytest.mark.parametrize(
    ("register", "evaluate"),
    [("RegisterModel", "Evaluate"), ("RegisterVsChampion", "EvaluateVsChampion")],
)
def test_each_register_step_attaches_the_card_its_evaluate_step_wrote(
    steps: dict[str, Any], register: str, evaluate: str
) -> None:
    card = steps[register]["Arguments"]["ModelCard"]
    assert card["ModelCardStatus"] == "PendingReview"
    assert card["ModelCardContent"] == {
        "Std:JsonGet": {
            "PropertyFile": {"Get": f"Steps.{evaluate}.PropertyFiles.ModelCard"},
            "Path": "ModelCardContent",
        }
    }
    files = {f["PropertyFileName"]: f for f in steps[evaluate]["PropertyFiles"]}
    outputs = steps[evaluate]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert files["ModelCard"]["FilePath"] == contract.MODEL_CARD_FILE == MODEL_PACKAGE_CARD_FILE
    assert files["ModelCard"]["OutputName"] in {o["OutputName"] for o in outputs}


def test_the_card_mlcore_evaluate_writes_is_a_model_card_create_model_package_accepts(
    steps: dict[str, Any], evaluation: Path
) -> None:
    written = json.loads((evaluation / MODEL_PACKAGE_CARD_FILE).read_text())
    member = copy.deepcopy(steps["RegisterModel"]["Arguments"]["ModelCard"])
    member["ModelCardContent"] = written["ModelCardContent"]  # what the JsonGet resolves to
    check_model_card(member)
    content = json.loads(member["ModelCardContent"])
    assert content["model_overview"] == {
        "model_creator": content["model_overview"]["model_creator"]
    }
    (details,) = content["evaluation_details"]
    groups = {g["name"]: g["metric_data"] for g in details["metric_groups"]}
    overall = {m["name"]: m for m in groups["overall"]}
    evaluation_json = json.loads((evaluation / "evaluation.json").read_text())
    auc = evaluation_json["binary_classification_metrics"]["auc"]
    assert overall["auc"]["value"] == pytest.approx(auc["value"])
    assert f"[{auc['confidence_interval']['lower']:.4f}," in overall["auc"]["notes"]
    assert "no-skill baseline 0.5000" in overall["auc"]["notes"]
    assert groups["confusion matrix"][0]["type"] == "matrix"
    assert groups["permutation feature importance"][0]["type"] == "bar_chart"
    assert details["evaluation_observation"].startswith("Quality gate PASSED")


def test_long_texts_and_many_classes_are_kept_within_the_schema(evaluation: Path) -> None:
    card = json.loads((evaluation / "model_card.json").read_text())
    card["caveats_and_recommendations"] = ["x" * 3000, "y" * 3000]
    card["intended_use"]["primary_use"] = "z" * 5000
    labels = [f"class {i}" for i in range(25)]
    card["quantitative_analyses"]["confusion_matrix"] = {
        a: dict.fromkeys(labels, 1) for a in labels
    }
    member = model_package_card(card)
    check_model_card(member)
    content = json.loads(member["ModelCardContent"])
    caveats = content["additional_information"]["caveats_and_recommendations"]
    assert len(caveats) == 2048 and caveats.endswith("…")
    groups = {g["name"] for g in content["evaluation_details"][0]["metric_groups"]}
    assert "confusion matrix" not in groups  # 25 classes: beyond the schema's 20 x 20


def test_the_check_names_every_way_a_card_would_be_refused(evaluation: Path) -> None:
    written = json.loads((evaluation / MODEL_PACKAGE_CARD_FILE).read_text())
    content = json.loads(written["ModelCardContent"])
    content["model_overview"]["model_name"] = "churn"  # not in a package card
    content["intended_uses"]["audience"] = "everyone"  # not in the schema at all
    content["evaluation_details"][0]["metric_groups"].append(
        {
            "name": "big",
            "metric_data": [{"name": "m", "type": "matrix", "value": [[1] * 21] * 21}],
        }
    )
    with pytest.raises(ValueError) as refused:
        check_model_card({"ModelCardContent": json.dumps(content), "ModelCardStatus": "Pending"})
    message = str(refused.value)
    assert "ModelCardStatus 'Pending' is not one of" in message
    assert "holds only ['model_artifact', 'model_creator'], not ['model_name']" in message
    assert "the model card schema has no intended_uses.audience" in message
    assert "the matrix 'm' exceeds 20 x 20" in message
    with pytest.raises(ValueError, match="over the 100000 allowed"):
        check_model_card({"ModelCardContent": " " * 100_001, "ModelCardStatus": "Draft"})


def test_the_registry_reads_the_card_back_from_describe_model_package(evaluation: Path) -> None:
    written = json.loads((evaluation / MODEL_PACKAGE_CARD_FILE).read_text())
    client = boto3.client("sagemaker", region_name="eu-west-1")
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:model-package/acme-dev-models/3"
    answer = {
        "ModelPackageName": "acme-dev-models",
        "ModelPackageArn": arn,
        "ModelPackageVersion": 3,
        "CreationTime": "2026-01-01T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "ModelApprovalStatus": "PendingManualApproval",
        "ModelCard": written,
    }
    with Stubber(client) as stub:  # the Stubber checks the answer against the output shape
        stub.add_response("describe_model_package", answer, {"ModelPackageName": arn})
        package = describe_package(client, arn)
    assert package.model_card_status == "PendingReview"
    assert package.model_card == json.loads(written["ModelCardContent"])
