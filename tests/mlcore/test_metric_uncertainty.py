"""Metric uncertainty, the confusion matrix and the model card's quantitative analyses
(issue 11, findings 9.5 and 9.6)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

from mlcore.data import Split
from mlcore.evaluate import STD_MIN_ROWS, score_predictions
from mlcore.evaluation_job import run_evaluation
from mlcore.model_card import SECTIONS
from mlcore.problem import Problem
from mlcore.settings import MlopsSettings

BINARY = Problem(task="classification", classes=(0, 1), positive_label=1, decision_threshold=0.5)


def _noisy_binary(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, rows)
    score = np.clip(truth * 0.35 + rng.uniform(size=rows) * 0.65, 0, 1)
    return truth, (score >= 0.5).astype(int), score


def test_standard_deviation_is_sagemakers_five_subsamples_of_80_percent() -> None:
    # SageMaker: "randomly sampling 80% of the data 5 times, computing the metric, and taking
    # the standard deviation" (model-monitor-model-quality-metrics, Note). Recomputed here
    # with scikit-learn on the same seeded subsamples.
    truth, pred, score = _noisy_binary(1_000)
    report = score_predictions(truth, pred, problem=BINARY, probabilities=score, seed=11)
    rng = np.random.default_rng(11)
    accuracies, aucs = [], []
    for _ in range(5):
        rows = rng.choice(1_000, size=800, replace=False)
        accuracies.append(accuracy_score(truth[rows], pred[rows]))
        aucs.append(roc_auc_score(truth[rows], score[rows]))
    assert report.standard_deviations["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert report.standard_deviations["auc"] == pytest.approx(np.std(aucs, ddof=1))
    assert 0 < report.standard_deviations["auc"] < 0.05


def test_standard_deviations_are_reproducible_with_the_seed() -> None:
    truth, pred, score = _noisy_binary(600)
    first = score_predictions(truth, pred, problem=BINARY, probabilities=score, seed=3)
    again = score_predictions(truth, pred, problem=BINARY, probabilities=score, seed=3)
    other = score_predictions(truth, pred, problem=BINARY, probabilities=score, seed=4)
    assert first.standard_deviations == again.standard_deviations
    assert first.standard_deviations != other.standard_deviations


def test_no_standard_deviation_below_200_rows() -> None:
    truth, pred, score = _noisy_binary(STD_MIN_ROWS - 1)
    report = score_predictions(truth, pred, problem=BINARY, probabilities=score)
    assert all(math.isnan(v) for v in report.standard_deviations.values())


def test_regression_standard_deviation_uses_the_same_subsamples() -> None:
    rng = np.random.default_rng(2)
    truth = rng.normal(size=400)
    pred = truth + rng.normal(scale=0.5, size=400)
    report = score_predictions(truth, pred, problem=Problem(task="regression"), seed=5)
    sample = np.random.default_rng(5)
    maes = []
    for _ in range(5):
        rows = sample.choice(400, size=320, replace=False)
        maes.append(mean_absolute_error(truth[rows], pred[rows]))
    assert report.standard_deviations["mae"] == pytest.approx(np.std(maes, ddof=1))
    assert report.confusion_matrix is None


@pytest.fixture(scope="module")
def evaluated(
    saved_model_dir: Path, churn_split: Split, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("evaluated")
    churn_split.test.to_parquet(out / "test.parquet")
    run_evaluation(
        model_dir=saved_model_dir,
        data=out / "test.parquet",
        output_dir=out / "evaluation",
        settings=MlopsSettings(),
    )
    return out / "evaluation"


def test_evaluation_json_carries_standard_deviations_and_a_confusion_matrix(
    evaluated: Path, churn_split: Split
) -> None:
    # Before: "standard_deviation": "NaN" for every metric.
    section = json.loads((evaluated / "evaluation.json").read_text())[
        "binary_classification_metrics"
    ]
    for name in ("auc", "accuracy", "f1", "log_loss"):
        assert 0 < section[name]["standard_deviation"] < 0.1, name
    matrix = section["confusion_matrix"]
    assert set(matrix) == {"0", "1"}
    assert sum(matrix["1"].values()) == int((churn_split.test["churned"] == 1).sum())
    assert sum(sum(row.values()) for row in matrix.values()) == len(churn_split.test)


def test_model_card_has_a_quantitative_analyses_section(evaluated: Path) -> None:
    card = json.loads((evaluated / "model_card.json").read_text())
    assert tuple(card) == SECTIONS
    assert SECTIONS.index("quantitative_analyses") == SECTIONS.index("training_data") + 1
    analyses = card["quantitative_analyses"]
    evaluation = json.loads((evaluated / "evaluation.json").read_text())
    section = evaluation["binary_classification_metrics"]
    assert analyses["overall"]["auc"] == section["auc"]
    assert analyses["confusion_matrix"] == section["confusion_matrix"]
    assert set(analyses["by_slice"]) == {"region", "contract_type"}
    assert card["metrics"]["uncertainty"].startswith("sample standard deviation over 5")
    markdown = (evaluated / "model_card.md").read_text()
    assert "## Quantitative analyses" in markdown
    assert "| metric | value | standard deviation |" in markdown
    assert "Confusion matrix (rows: actual class, columns: predicted class)" in markdown
