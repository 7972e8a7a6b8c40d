"""Model evaluation: metrics, per-slice metrics and SageMaker's evaluation.json layout."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlcore.data import DatasetSpec
from mlcore.errors import DataError
from mlcore.model import PREDICTION_COLUMN, SCORE_COLUMN, ModelBundle

CLASSIFICATION_METRICS = ("auc", "accuracy", "f1", "precision", "recall", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Metrics where a lower value is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})
# Slices smaller than this give metrics too noisy to act on; they are reported with their size only.
MIN_SLICE_ROWS = 30


def compute_metrics(
    y_true: Sequence[Any] | np.ndarray | pd.Series,
    y_pred: Sequence[Any] | np.ndarray | pd.Series,
    y_score: Sequence[float] | np.ndarray | pd.Series | None = None,
    *,
    task: str,
) -> dict[str, float]:
    """Classification: AUC, accuracy, F1, precision, recall, log loss; regression: RMSE, MAE, R2.

    For binary classification ``y_score`` is the probability of the positive class
    (the larger label); AUC and log loss need it and are NaN without it, or when the
    labels hold a single class. Multiclass F1/precision/recall are macro averages.
    """
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    if len(truth) == 0:
        raise DataError("cannot compute metrics on zero rows")
    if len(truth) != len(pred):
        raise DataError(f"y_true has {len(truth)} rows but y_pred has {len(pred)}")
    if task == "regression":
        truth_f, pred_f = truth.astype(float), pred.astype(float)
        return {
            "rmse": float(math.sqrt(skm.mean_squared_error(truth_f, pred_f))),
            "mae": float(skm.mean_absolute_error(truth_f, pred_f)),
            "r2": float(skm.r2_score(truth_f, pred_f)) if len(truth) > 1 else float("nan"),
        }
    if task != "classification":
        raise DataError(f"task must be 'classification' or 'regression', got {task!r}")
    labels = np.unique(np.concatenate([truth, pred]))
    binary = len(labels) <= 2
    positive = labels.max() if binary else None
    average = "binary" if binary and len(labels) == 2 else "macro"
    kwargs: dict[str, Any] = {"zero_division": 0}
    if average == "binary":
        kwargs.update(average="binary", pos_label=positive)
    else:
        kwargs.update(average="macro")
    result = {
        "accuracy": float(skm.accuracy_score(truth, pred)),
        "f1": float(skm.f1_score(truth, pred, **kwargs)),
        "precision": float(skm.precision_score(truth, pred, **kwargs)),
        "recall": float(skm.recall_score(truth, pred, **kwargs)),
        "auc": float("nan"),
        "log_loss": float("nan"),
    }
    if y_score is not None and binary and len(np.unique(truth)) == 2:
        score = np.asarray(y_score, dtype=float)
        positive_truth = (truth == positive).astype(int)
        result["auc"] = float(skm.roc_auc_score(positive_truth, score))
        result["log_loss"] = float(
            skm.log_loss(positive_truth, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1])
        )
    return result


def evaluate_model(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, float]:
    """Predict on ``frame`` (which must hold the target) and compute the task's metrics."""
    spec = bundle.spec
    if spec.target not in frame.columns:
        raise DataError(f"evaluation data lacks the target column {spec.target!r}")
    predictions = bundle.predict(frame)
    score = predictions.get(SCORE_COLUMN, None)
    return compute_metrics(
        frame[spec.target], predictions[PREDICTION_COLUMN], score, task=spec.task
    )


def slice_metrics(
    frame: pd.DataFrame,
    *,
    slice_columns: Sequence[str],
    target: str,
    task: str,
    prediction_column: str = PREDICTION_COLUMN,
    score_column: str = SCORE_COLUMN,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each categorical slice column: ``{column: {value: {metric: value}}}``.

    ``frame`` holds the target and the predictions. Every slice reports ``rows``;
    slices under ``MIN_SLICE_ROWS`` rows report only that, since their metrics would be noise.
    """
    missing = [c for c in (*slice_columns, target, prediction_column) if c not in frame.columns]
    if missing:
        raise DataError(
            f"slice metrics need columns {missing}; the frame has {list(frame.columns)}"
        )
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in slice_columns:
        per_value: dict[str, dict[str, float]] = {}
        for value, group in frame.groupby(frame[column].astype(str), sort=True, dropna=False):
            entry: dict[str, float] = {"rows": float(len(group))}
            if len(group) >= MIN_SLICE_ROWS:
                score = group.get(score_column, None)
                entry.update(
                    compute_metrics(group[target], group[prediction_column], score, task=task)
                )
            per_value[str(value)] = entry
        result[column] = per_value
    return result


def evaluation_document(metrics: dict[str, float], *, task: str) -> dict[str, Any]:
    """The SageMaker model-quality layout, readable by a ConditionStep through a PropertyFile.

    ``{"binary_classification_metrics": {"auc": {"value": 0.9, "standard_deviation": "NaN"}}}``.
    NaN is written as the string "NaN", as SageMaker does, so the file stays valid JSON.
    """
    section = "regression_metrics" if task == "regression" else "binary_classification_metrics"
    return {
        section: {
            name: {"value": _json_number(value), "standard_deviation": "NaN"}
            for name, value in metrics.items()
        }
    }


def metrics_from_document(document: dict[str, Any]) -> dict[str, float]:
    """Read metrics back from an evaluation.json document (ours or SageMaker's)."""
    for section in (
        "binary_classification_metrics",
        "multiclass_classification_metrics",
        "regression_metrics",
    ):
        if section in document:
            return {name: float(entry["value"]) for name, entry in document[section].items()}
    raise DataError(f"no metrics section in evaluation document; keys are {sorted(document)}")


def _json_number(value: float) -> float | str:
    return (
        "NaN" if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
    )


def spec_metric_names(spec: DatasetSpec) -> tuple[str, ...]:
    return REGRESSION_METRICS if spec.task == "regression" else CLASSIFICATION_METRICS
