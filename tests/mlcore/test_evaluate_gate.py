from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    fbeta_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

from mlcore.atomic import OUTPUT_MARKER
from mlcore.data import Split
from mlcore.errors import DataError
from mlcore.evaluate import (
    compute_metrics,
    evaluation_document,
    metrics_from_document,
    score_predictions,
    slice_metrics,
)
from mlcore.evaluation_job import run_evaluation
from mlcore.gate import evaluate_gate
from mlcore.problem import Problem
from mlcore.settings import GateSettings, MlopsSettings

BINARY = Problem(task="classification", classes=(0, 1), positive_label=1, decision_threshold=0.5)
REGRESSION = Problem(task="regression")


def test_binary_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 500)
    score = np.clip(truth * 0.3 + rng.uniform(size=500) * 0.7, 0, 1)
    pred = (score > 0.5).astype(int)
    metrics = compute_metrics(truth, pred, problem=BINARY, probabilities=score)
    assert metrics["auc"] == pytest.approx(roc_auc_score(truth, score))
    assert metrics["f1"] == pytest.approx(f1_score(truth, pred))
    assert metrics["f2"] == pytest.approx(fbeta_score(truth, pred, beta=2))
    assert metrics["precision"] == pytest.approx(precision_score(truth, pred))
    assert metrics["recall"] == pytest.approx(recall_score(truth, pred))
    assert metrics["log_loss"] == pytest.approx(log_loss(truth, score))
    tn, fp, fn, tp = confusion_matrix(truth, pred).ravel()
    assert metrics["false_positive_rate"] == pytest.approx(fp / (fp + tn))
    assert metrics["true_negative_rate"] == pytest.approx(tn / (fp + tn))
    assert metrics["false_negative_rate"] == pytest.approx(fn / (fn + tp))


def test_binary_metrics_follow_the_positive_label_not_the_label_order() -> None:
    # "a" is the positive label though it sorts first; the score is P("a").
    problem = Problem(
        task="classification", classes=("a", "b"), positive_label="a", decision_threshold=0.5
    )
    truth = np.array(["a", "a", "b", "b", "b"])
    pred = np.array(["a", "b", "b", "b", "a"])
    score = np.array([0.9, 0.4, 0.2, 0.1, 0.6])
    metrics = compute_metrics(truth, pred, problem=problem, probabilities=score)
    assert metrics["recall"] == pytest.approx(recall_score(truth, pred, pos_label="a"))
    assert metrics["precision"] == pytest.approx(precision_score(truth, pred, pos_label="a"))
    assert metrics["auc"] == pytest.approx(roc_auc_score(truth == "a", score))


def test_auc_and_recall_are_undefined_when_labels_hold_one_class() -> None:
    metrics = compute_metrics([0, 0, 0], [1, 0, 0], problem=BINARY, probabilities=[0.9, 0.2, 0.1])
    assert math.isnan(metrics["auc"]) and math.isnan(metrics["recall"])
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["false_positive_rate"] == pytest.approx(1 / 3)


def test_auc_needs_probabilities_and_is_never_taken_from_labels() -> None:
    metrics = compute_metrics([0, 1, 1, 0], [0, 1, 1, 0], problem=BINARY)
    assert math.isnan(metrics["auc"]) and math.isnan(metrics["log_loss"])
    assert metrics["accuracy"] == 1.0


def test_labels_the_model_never_saw_are_an_error() -> None:
    with pytest.raises(DataError, match="not trained on"):
        compute_metrics([0, 2], [0, 1], problem=BINARY)


def test_regression_metrics_match_scikit_learn() -> None:
    truth, pred = [1.0, 2.0, 3.0, 4.0], [1.0, 2.5, 5.0, 3.0]
    metrics = compute_metrics(truth, pred, problem=REGRESSION)
    assert metrics["mae"] == pytest.approx(mean_absolute_error(truth, pred))
    assert metrics["mse"] == pytest.approx(mean_squared_error(truth, pred))
    assert metrics["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truth, pred)))
    assert metrics["r2"] == pytest.approx(r2_score(truth, pred))


def test_evaluation_document_is_sagemaker_model_quality_layout() -> None:
    # Layout: docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-model-quality-metrics.html
    # (awsdocs/amazon-sagemaker-developer-guide, doc_source/model-monitor-model-quality-metrics.md):
    # {"binary_classification_metrics": {"confusion_matrix": {actual: {predicted: n}},
    #  "<metric>": {"value": ..., "standard_deviation": ...}}}.
    report = score_predictions([0, 1, 1, 0], [0, 1, 0, 0], problem=BINARY)
    document = evaluation_document(report)
    section = document["binary_classification_metrics"]
    assert section["accuracy"] == {"value": 0.75, "standard_deviation": None}
    assert section["auc"]["value"] is None  # no probabilities: null, never the string "NaN"
    assert section["confusion_matrix"] == {"0": {"0": 2, "1": 0}, "1": {"0": 1, "1": 1}}
    assert document["problem"]["positive_label"] == 1
    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert metrics_from_document(document)["accuracy"] == 0.75


def test_metrics_are_read_back_from_sagemakers_own_nan_strings() -> None:
    document = {
        "multiclass_classification_metrics": {
            "confusion_matrix": {"0": {"0": 1}},
            "accuracy": {"value": 0.5, "standard_deviation": "NaN"},
            "weighted_f1": {"value": "NaN", "standard_deviation": "NaN"},
        }
    }
    metrics = metrics_from_document(document)
    assert metrics["accuracy"] == 0.5 and math.isnan(metrics["weighted_f1"])
    assert "confusion_matrix" not in metrics


def test_slice_metrics_report_small_slices_by_size_only() -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "region": ["n"] * 40 + ["s"] * 5,
            "y": [0, 1] * 20 + [1] * 5,
            "prediction": [0, 1] * 20 + [0] * 5,
            "score": [0.1, 0.9] * 20 + [0.2] * 5,
        }
    )
    result = slice_metrics(frame, slice_columns=["region"], target="y", problem=BINARY)
    assert result["region"]["n"]["auc"] == 1.0 and result["region"]["n"]["rows"] == 40
    assert result["region"]["s"] == {"rows": 5.0}


def test_gate_passes_a_challenger_at_least_as_good_as_the_champion() -> None:
    decision = evaluate_gate({"auc": 0.85}, {"auc": 0.84}, GateSettings(min_metrics={"auc": 0.7}))
    assert decision.passed


def test_gate_blocks_a_worse_challenger_and_says_by_how_much() -> None:
    decision = evaluate_gate(
        {"auc": 0.80},
        {"auc": 0.85},
        GateSettings(min_metrics={"auc": 0.7}, champion_tolerance=0.01),
    )
    assert not decision.passed
    assert any("worse than the champion's 0.8500 by 0.0500" in r for r in decision.reasons)


def test_gate_tolerance_allows_a_small_shortfall() -> None:
    decision = evaluate_gate({"auc": 0.846}, {"auc": 0.85}, GateSettings(champion_tolerance=0.005))
    assert decision.passed


def test_gate_blocks_below_threshold_even_without_a_champion() -> None:
    decision = evaluate_gate({"auc": 0.65}, None, GateSettings(min_metrics={"auc": 0.7}))
    assert not decision.passed and "auc 0.6500 is below the minimum 0.7" in decision.reasons


def test_gate_treats_lower_is_better_metrics_correctly() -> None:
    settings = GateSettings(primary_metric="rmse", min_metrics={}, max_metrics={"rmse": 2.0})
    assert not evaluate_gate({"rmse": 1.5}, {"rmse": 1.0}, settings).passed
    assert evaluate_gate({"rmse": 0.9}, {"rmse": 1.0}, settings).passed
    assert not evaluate_gate({"rmse": 2.5}, None, settings).passed


def test_gate_fails_on_a_missing_or_nan_metric() -> None:
    assert not evaluate_gate({"auc": float("nan")}, None, GateSettings()).passed
    assert not evaluate_gate({}, None, GateSettings()).passed


def test_evaluation_job_writes_every_report(
    saved_model_dir: Path, churn_split: Split, tmp_path: Path
) -> None:
    churn_split.test.to_parquet(tmp_path / "test.parquet")
    result = run_evaluation(
        model_dir=saved_model_dir,
        data=tmp_path / "test.parquet",
        output_dir=tmp_path / "out",
        settings=MlopsSettings(),
    )
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert names == {
        OUTPUT_MARKER,
        "evaluation.json",
        "gate.json",
        "slice_metrics.json",
        "model_card.json",
        "model_card.md",
        "sample_request.json",
    }
    evaluation = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert evaluation["binary_classification_metrics"]["auc"]["value"] == pytest.approx(
        result.metrics["auc"]
    )
    assert json.loads((tmp_path / "out" / "gate.json").read_text())["passed"] is True


def test_model_card_has_every_section(
    saved_model_dir: Path, churn_split: Split, tmp_path: Path
) -> None:
    from mlcore.model_card import SECTIONS

    churn_split.test.to_parquet(tmp_path / "test.parquet")
    run_evaluation(
        model_dir=saved_model_dir,
        data=tmp_path / "test.parquet",
        output_dir=tmp_path / "evaluation",
        settings=MlopsSettings(),
    )
    card = json.loads((tmp_path / "evaluation" / "model_card.json").read_text())
    assert tuple(card) == SECTIONS
    assert "age" in card["ethical_considerations"]["sensitive_features"]
    markdown = (tmp_path / "evaluation" / "model_card.md").read_text()
    for heading in (
        "## Model details",
        "## Intended use",
        "## Factors",
        "## Metrics",
        "## Evaluation data",
        "## Training data",
        "## Ethical considerations",
        "## Caveats and recommendations",
    ):
        assert heading in markdown


def test_evaluation_unpacks_a_sagemaker_model_archive(
    saved_model_dir: Path, churn_split: Split, tmp_path: Path
) -> None:
    import tarfile

    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        for item in saved_model_dir.iterdir():
            tar.add(item, arcname=item.name)
    churn_split.test.to_parquet(tmp_path / "test.parquet")
    result = run_evaluation(
        model_dir=packed,
        data=tmp_path / "test.parquet",
        output_dir=tmp_path / "out",
        settings=MlopsSettings(),
    )
    assert result.metrics["auc"] > 0.75


def test_sensitive_features_are_matched_on_whole_name_parts() -> None:
    from mlcore.model_card import _looks_sensitive

    assert (
        _looks_sensitive("age")
        and _looks_sensitive("customer_age")
        and _looks_sensitive("CustomerGender")
    )
    assert _looks_sensitive("ethnicity") and _looks_sensitive("home_region")
    assert not _looks_sensitive("data_usage_gb") and not _looks_sensitive("page_views")
    assert not _looks_sensitive("agent_id")
