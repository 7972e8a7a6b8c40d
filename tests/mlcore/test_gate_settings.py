"""Honest gates (issue 11, findings 9.1 and 9.2): thresholds that point the right way, and
metric names checked against the task when the settings load and the data is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcore.errors import ConfigError
from mlcore.evaluate import (
    LOWER_IS_BETTER,
    METRICS_BY_PROBLEM_TYPE,
    MetricReport,
    score_predictions,
)
from mlcore.gate import evaluate_gate
from mlcore.prep import prepare, resolve_spec
from mlcore.problem import Problem
from mlcore.settings import GateSettings, load_settings


def test_a_floor_on_a_lower_is_better_metric_is_refused() -> None:
    # Before: min_metrics {rmse: 50} passed an RMSE of 100 and failed an RMSE of 10.
    with pytest.raises(ConfigError, match=r"gate.min_metrics.rmse: lower is better.*max_metrics"):
        load_settings(overrides={"gate": {"primary_metric": "rmse", "min_metrics": {"rmse": 50}}})


def test_a_ceiling_on_a_higher_is_better_metric_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"gate.max_metrics.auc: higher is better.*min_metrics"):
        load_settings(overrides={"gate": {"max_metrics": {"auc": 0.99}}})


def test_a_ceiling_on_rmse_blocks_a_worse_model_and_passes_a_better_one() -> None:
    settings = load_settings(
        overrides={
            "dataset": {"task": "regression"},
            "gate": {"primary_metric": "rmse", "max_metrics": {"rmse": 50}},
        }
    )
    truth = np.random.default_rng(0).normal(scale=200, size=400)

    def off_by(error: float) -> MetricReport:
        return score_predictions(truth, truth + error, problem=Problem(task="regression"))

    assert not evaluate_gate(off_by(100.0), None, settings.gate).passed
    assert evaluate_gate(off_by(10.0), None, settings.gate).passed


def test_every_lower_is_better_metric_is_a_known_metric() -> None:
    known = {m for names in METRICS_BY_PROBLEM_TYPE.values() for m in names}
    assert known >= LOWER_IS_BETTER


def test_an_unknown_metric_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'AUC'.*auc, accuracy"):
        load_settings(overrides={"gate": {"min_metrics": {"AUC": 0.7}}})


def test_gate_metrics_are_checked_against_the_declared_task_when_settings_load(
    tmp_path: Path,
) -> None:
    (tmp_path / "mlops.yaml").write_text(
        "dataset: {task: regression}\ngate: {primary_metric: auc, min_metrics: {auc: 0.7}}\n"
    )
    with pytest.raises(ConfigError, match=r"not computed for regression.*rmse, mse, mae, r2"):
        load_settings(tmp_path / "mlops.yaml")


def test_a_declared_regression_task_without_gate_metrics_gets_the_regression_gate() -> None:
    settings = load_settings(overrides={"dataset": {"task": "regression"}})
    assert settings.gate.primary_metric == "r2" and settings.gate.min_metrics == {"r2": 0.0}


def test_an_inferred_regression_task_gets_the_regression_gate_at_evaluation() -> None:
    gate = GateSettings().for_problem("regression")
    assert (gate.primary_metric, gate.min_metrics) == ("r2", {"r2": 0.0})
    # Metrics the user set are kept as they are.
    explicit = GateSettings(primary_metric="mae", min_metrics={}, max_metrics={"mae": 3.0})
    assert explicit.for_problem("regression") == explicit


def test_a_binary_metric_on_a_multiclass_model_names_the_multiclass_metrics() -> None:
    gate = GateSettings(min_metrics={"f1": 0.8})
    assert gate.for_problem("binary_classification") == gate
    with pytest.raises(ConfigError, match=r"'f1' is not computed for multiclass.*weighted_f1"):
        gate.for_problem("multiclass_classification")


def test_prep_refuses_gate_metrics_the_data_cannot_give_before_any_training(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"x": rng.normal(size=300), "grade": rng.choice(["a", "b", "c"], size=300)}
    )
    settings = load_settings(
        overrides={
            "project": "grades",
            "dataset": {"target": "grade", "timestamp": None, "id_columns": []},
            "gate": {"primary_metric": "f1", "min_metrics": {"f1": 0.5}},
        }
    )
    spec = resolve_spec(frame, settings.dataset)
    with pytest.raises(ConfigError, match="valid metrics for that task: auc, accuracy, weighted"):
        prepare(frame, spec, settings, tmp_path / "prep", source="test")
    assert not (tmp_path / "prep").exists()
