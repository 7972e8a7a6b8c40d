"""The metric vocabulary: problem types, the metrics of each, and which are lower-is-better.

The one authoritative list that settings (gate validation), :mod:`mlcore.evaluate` (which
computes them and publishes these names), the gate and the cloud pipelines use. Names
follow SageMaker Model Monitor's model-quality layout ("Model quality metrics and Amazon
CloudWatch monitoring", docs.aws.amazon.com/sagemaker/latest/dg/
model-monitor-model-quality-metrics.html), plus one-vs-rest ``auc`` and ``log_loss`` for
multiclass models, which that layout lacks. Pure constants: importing this loads nothing.
"""

from __future__ import annotations

from typing import Literal

ProblemType = Literal["binary_classification", "multiclass_classification", "regression"]
BINARY: ProblemType = "binary_classification"
MULTICLASS: ProblemType = "multiclass_classification"
REGRESSION: ProblemType = "regression"
PROBLEM_TYPES: tuple[ProblemType, ...] = (BINARY, MULTICLASS, REGRESSION)

BINARY_METRICS = (
    "auc",
    "accuracy",
    "precision",
    "recall",
    "f0_5",
    "f1",
    "f2",
    "log_loss",
    "true_positive_rate",
    "true_negative_rate",
    "false_positive_rate",
    "false_negative_rate",
)
MULTICLASS_METRICS = (
    "auc",
    "accuracy",
    "weighted_precision",
    "weighted_recall",
    "weighted_f0_5",
    "weighted_f1",
    "weighted_f2",
    "log_loss",
)
REGRESSION_METRICS = ("rmse", "mse", "mae", "r2")
METRICS_BY_PROBLEM_TYPE: dict[ProblemType, tuple[str, ...]] = {
    BINARY: BINARY_METRICS,
    MULTICLASS: MULTICLASS_METRICS,
    REGRESSION: REGRESSION_METRICS,
}
# A classification task is binary or multiclass only once the classes are known.
CLASSIFICATION_METRICS = BINARY_METRICS + tuple(
    m for m in MULTICLASS_METRICS if m not in BINARY_METRICS
)
METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
ALL_METRICS = CLASSIFICATION_METRICS + REGRESSION_METRICS
# Metrics where a lower value is better; every other metric is better when higher.
LOWER_IS_BETTER = frozenset(
    {"log_loss", "rmse", "mse", "mae", "false_positive_rate", "false_negative_rate"}
)
# The section of SageMaker's model-quality layout that holds each problem type's metrics.
METRIC_SECTIONS: dict[ProblemType, str] = {
    BINARY: "binary_classification_metrics",
    MULTICLASS: "multiclass_classification_metrics",
    REGRESSION: "regression_metrics",
}
# Metrics that need class probabilities, not only the predicted labels.
PROBABILITY_METRICS = frozenset({"auc", "log_loss"})
