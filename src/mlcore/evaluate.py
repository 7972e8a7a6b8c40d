"""Model evaluation: metrics per problem type, their uncertainty, slices and SageMaker's layout.

The metric names are SageMaker Model Monitor's model-quality names ("Model quality metrics
and Amazon CloudWatch monitoring", docs.aws.amazon.com/sagemaker/latest/dg/
model-monitor-model-quality-metrics.html), plus one-vs-rest AUC and log loss for multiclass
models, which that layout lacks. The one list per problem type, and the lower-is-better
set, that settings, the gate and the cloud pipelines use, is :mod:`mlcore.metric_names`,
published here too (``from mlcore.evaluate import METRICS_BY_PROBLEM_TYPE, LOWER_IS_BETTER``).

* binary: the positive label and decision threshold of :class:`mlcore.problem.Problem`
  define precision, recall, F-scores and the rates; AUC and log loss use the probability
  of the positive label. A metric undefined on the data (recall without positive rows,
  precision when nothing is predicted positive, AUC with one class) is NaN, written null.
* multiclass: precision, recall and F-scores are weighted by class support, as SageMaker's
  layout names them; a class the model never predicts counts as precision 0 (scikit-learn's
  ``zero_division=0``), so never finding a class lowers the score instead of dropping out.
  AUC is the one-vs-rest macro average (scikit-learn's ``multi_class="ovr"``); on a slice
  or window that lacks some classes it averages over the classes present, since a class
  with no rows has no AUC. Log loss uses every class's probability.
* regression: RMSE, MSE, MAE and R2.

Uncertainty is a percentile bootstrap (:mod:`mlcore.uncertainty`): every metric gets a
95% interval and a standard error from 1,000 seeded resamples of the evaluation rows, so
the same data and seed give the same figures. (SageMaker's layout calls the standard error
``standard_deviation``; its own five subsamples of 80% understate it about twofold, since
each subsample repeats most of the rows of the others.)

Beside the model, the report scores the no-skill baseline: the best constant prediction on
the same rows (the class shares as probabilities and the majority class as the label; the
mean for regression), so a reader sees what the metrics would be with no model at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from mlcore.errors import DataError, ModelError
from mlcore.jsonio import json_safe
from mlcore.metric_names import (
    ALL_METRICS,
    BINARY,
    BINARY_METRICS,
    CLASSIFICATION_METRICS,
    LOWER_IS_BETTER,
    METRIC_SECTIONS,
    METRICS_BY_PROBLEM_TYPE,
    METRICS_BY_TASK,
    MULTICLASS,
    MULTICLASS_METRICS,
    PROBABILITY_METRICS,
    REGRESSION,
    REGRESSION_METRICS,
    ProblemType,
)
from mlcore.model import PREDICTION_COLUMN, SCORE_COLUMN, ModelBundle
from mlcore.problem import Problem
from mlcore.uncertainty import (
    CONFIDENCE,
    METHOD,
    RESAMPLES,
    Interval,
    bootstrap_metrics,
    describe,
    interval,
    weighted_metrics,
)

# The metric vocabulary is defined in mlcore.metric_names (no heavy imports, so settings can
# validate gate names without loading scikit-learn) and published here, beside the code
# that computes it.
__all__ = [
    "ALL_METRICS",
    "BINARY_METRICS",
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "METRICS_BY_PROBLEM_TYPE",
    "METRICS_BY_TASK",
    "METRIC_SECTIONS",
    "MIN_SLICE_ROWS",
    "MULTICLASS_METRICS",
    "NO_SKILL_METHOD",
    "PROBABILITY_METRICS",
    "REGRESSION_METRICS",
    "FeatureImportance",
    "MetricReport",
    "compute_metrics",
    "confusion_matrix",
    "evaluate_bundle",
    "evaluate_model",
    "evaluation_document",
    "metric_names",
    "metrics_from_document",
    "no_skill_metrics",
    "permutation_feature_importance",
    "score_predictions",
    "slice_metrics",
    "uncertainty_statement",
]

# Slices smaller than this give metrics too noisy to act on; they are reported with their size only.
MIN_SLICE_ROWS = 30
# Permutation importance: rows scored and shuffles per feature (one prediction each).
IMPORTANCE_MAX_ROWS = 1000
IMPORTANCE_REPEATS = 5
NO_SKILL_METHOD = (
    "the best constant prediction on the evaluation rows: every row gets the class shares as "
    "probabilities and the majority class as its label (classification), or the mean "
    "(regression)"
)

ArrayLike: TypeAlias = Sequence[Any] | np.ndarray | pd.Series


@dataclass(frozen=True)
class MetricReport:
    """Metrics of one set of predictions, their bootstrap intervals and confusion matrix.

    ``confusion_matrix`` is ``{actual: {predicted: count}}`` over the model's classes, as
    SageMaker's layout writes it (None for regression). ``replicates`` holds each metric's
    value on every bootstrap resample: two reports of the same rows and ``seed`` were
    resampled alike, which is what makes :func:`mlcore.gate.compare_with_champion` paired.
    ``no_skill`` are the metrics of the no-skill baseline on the same rows.
    """

    problem: Problem
    rows: int
    metrics: dict[str, float]
    intervals: dict[str, Interval]
    confusion_matrix: dict[str, dict[str, int]] | None
    seed: int
    no_skill: dict[str, float] = field(default_factory=dict)
    resamples: int = RESAMPLES
    confidence: float = CONFIDENCE
    replicates: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def standard_deviations(self) -> dict[str, float]:
        """The bootstrap standard error of each metric (SageMaker's ``standard_deviation``)."""
        return {name: self.intervals[name].standard_error for name in self.metrics}


def metric_names(problem_type: ProblemType) -> tuple[str, ...]:
    """The metrics computed for ``problem_type``, in the order they are reported."""
    return METRICS_BY_PROBLEM_TYPE[problem_type]


def compute_metrics(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    problem: Problem,
    probabilities: ArrayLike | pd.DataFrame | None = None,
) -> dict[str, float]:
    """The metrics of ``problem``'s type (see the module docstring), equal to scikit-learn's.

        ``probabilities`` is the model's probability matrix (one column per class of
        ``problem.classes``, in that order) or, for a binary problem only, the probability of
        the positive label. Without it AUC and log loss are NaN: they are never derived from
        the predicted labels or from the predicted class's probability.

        Examples
        --------
        >>> from mlcore.problem import Problem
    from mlcore.uncertainty import (
        CONFIDENCE,
        METHOD,
        RESAMPLES,
        Interval,
        bootstrap_metrics,
        describe,
        interval,
    )
        >>> binary = Problem(task="classification", classes=(0, 1), positive_label=1,
        ...                  decision_threshold=0.5)
        >>> compute_metrics([0, 1, 1, 0], [0, 1, 0, 0], problem=binary,
        ...                 probabilities=[0.2, 0.9, 0.4, 0.3])["auc"]
        1.0
    """
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    if len(truth) == 0:
        raise DataError("cannot compute metrics on zero rows")
    if len(truth) != len(pred):
        raise DataError(f"y_true has {len(truth)} rows but y_pred has {len(pred)}")
    if problem.problem_type == REGRESSION:
        return _regression_metrics(truth.astype(float), pred.astype(float))
    _check_known_classes(truth, problem, "the labels")
    _check_known_classes(pred, problem, "the predictions")
    proba = _probability_matrix(probabilities, problem, len(truth))
    if problem.problem_type == BINARY:
        return _binary_metrics(truth, pred, proba, problem)
    return _multiclass_metrics(truth, pred, proba, problem)


def score_predictions(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    problem: Problem,
    probabilities: ArrayLike | pd.DataFrame | None = None,
    seed: int = 0,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> MetricReport:
    """:func:`compute_metrics` plus bootstrap intervals, the confusion matrix and the
    no-skill baseline's metrics."""
    truth, pred = np.asarray(y_true), np.asarray(y_pred)
    metrics = compute_metrics(truth, pred, problem=problem, probabilities=probabilities)
    proba = (
        None
        if problem.problem_type == REGRESSION
        else _probability_matrix(probabilities, problem, len(truth))
    )
    replicates = bootstrap_metrics(
        truth, pred, proba, problem=problem, resamples=resamples, seed=seed
    )
    return MetricReport(
        problem=problem,
        rows=len(truth),
        metrics=metrics,
        intervals={
            name: _interval_around(value, replicates[name], confidence)
            for name, value in metrics.items()
        },
        confusion_matrix=(
            None if problem.problem_type == REGRESSION else confusion_matrix(truth, pred, problem)
        ),
        seed=seed,
        no_skill=no_skill_metrics(truth, problem=problem),
        resamples=resamples,
        confidence=confidence,
        replicates=replicates,
    )


def no_skill_metrics(y_true: ArrayLike, *, problem: Problem) -> dict[str, float]:
    """The metrics of the no-skill baseline (``NO_SKILL_METHOD``) on ``y_true``.

    Examples
    --------
    >>> from mlcore.problem import Problem
    >>> round(no_skill_metrics([1.0, 2.0, 3.0], problem=Problem(task="regression"))["r2"], 6)
    0.0
    """
    truth = np.asarray(y_true)
    if problem.problem_type == REGRESSION:
        values = truth.astype(float)
        return compute_metrics(values, np.full(len(values), values.mean()), problem=problem)
    labels = list(problem.classes)
    counts = pd.Series(truth).value_counts().reindex(labels, fill_value=0).to_numpy()
    shares = counts / counts.sum()
    # Ties go to the class listed first, as np.argmax picks it.
    majority = np.full(len(truth), labels[int(np.argmax(counts))], dtype=truth.dtype)
    return compute_metrics(
        truth,
        majority,
        problem=problem,
        probabilities=np.tile(shares, (len(truth), 1)),
    )


def confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, problem: Problem
) -> dict[str, dict[str, int]]:
    """``{actual: {predicted: count}}`` over every class of the model, SageMaker's orientation."""
    labels = list(problem.classes)
    counts = skm.confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=labels)
    return {
        str(actual): {str(predicted): int(counts[i, j]) for j, predicted in enumerate(labels)}
        for i, actual in enumerate(labels)
    }


def evaluate_bundle(
    bundle: ModelBundle, frame: pd.DataFrame, *, seed: int = 0, problem: Problem | None = None
) -> MetricReport:
    """Predict on ``frame`` (which must hold the target) and score the predictions.

    ``problem`` scores the model against another model's labels (the challenger's
    positive label, when the gate scores the champion): both must know the same classes.
    """
    spec = bundle.spec
    if spec.target not in frame.columns:
        raise DataError(f"evaluation data lacks the target column {spec.target!r}")
    own = bundle.problem
    problem = problem or own
    if set(problem.classes) != set(own.classes):
        raise ModelError(
            f"the models predict different classes ({list(own.classes)} vs {list(problem.classes)}), "
            "so their metrics cannot be compared on the same terms"
        )
    predictions = bundle.predict(frame)
    probabilities = None
    if spec.task == "classification":
        probabilities = bundle.predict_proba(frame)[list(problem.classes)]
    return score_predictions(
        frame[spec.target],
        predictions[PREDICTION_COLUMN],
        problem=problem,
        probabilities=probabilities,
        seed=seed,
    )


@dataclass(frozen=True)
class FeatureImportance:
    """How much a metric worsens when one feature's values are shuffled (mean and standard
    deviation over the repeats); positive: the model relies on the feature."""

    feature: str
    mean: float
    std: float


def permutation_feature_importance(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    metric: str,
    seed: int = 0,
    max_rows: int = IMPORTANCE_MAX_ROWS,
    repeats: int = IMPORTANCE_REPEATS,
) -> tuple[FeatureImportance, ...]:
    """Permutation importance of every feature on ``metric`` (scikit-learn's
    ``permutation_importance``), scored as the evaluation scores the model.

    Computed on at most ``max_rows`` rows drawn with ``seed`` (the cost is one prediction
    per feature and repeat); empty when ``metric`` is undefined on those rows.
    """
    from sklearn.inspection import permutation_importance

    from mlcore.data import coerce_features

    spec, problem = bundle.spec, bundle.problem
    rows = frame if len(frame) <= max_rows else frame.sample(n=max_rows, random_state=seed)
    # Converted once: shuffling a column keeps its canonical type, so every repeat predicts
    # from features as serving would, without converting them again.
    features = coerce_features(rows, spec)
    full_matrix = problem.problem_type == MULTICLASS and metric in PROBABILITY_METRICS
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def score(_estimator: Any, x: pd.DataFrame, y: pd.Series) -> float:
        # The bundle, not the bare pipeline, predicts: the decision threshold and the
        # positive label apply as in every other metric of the evaluation.
        predicted = bundle.predict_features(x)
        probabilities: Any = None
        if full_matrix:
            probabilities = bundle.predict_proba(x)
        elif problem.problem_type == BINARY:
            probabilities = predicted[SCORE_COLUMN]  # P(positive label)
        truth = y.to_numpy()
        proba = (
            None
            if problem.problem_type == REGRESSION
            else _probability_matrix(probabilities, problem, len(truth))
        )
        # compute_metrics' values without its per-call validation (the scorer runs once per
        # feature and repeat): the vectorised form the bootstrap uses, held equal to it.
        values = weighted_metrics(
            truth,
            predicted[PREDICTION_COLUMN].to_numpy(),
            proba,
            np.ones(len(truth)),
            problem=problem,
        )
        return sign * float(values[metric][0])

    baseline = score(None, features, rows[spec.target])
    if math.isnan(baseline):
        return ()
    result = permutation_importance(
        bundle.pipeline,
        features,
        rows[spec.target],
        scoring=score,
        n_repeats=repeats,
        random_state=seed,
        n_jobs=1,
    )
    return tuple(
        FeatureImportance(feature=str(name), mean=float(mean), std=float(std))
        for name, mean, std in zip(
            spec.features, result.importances_mean, result.importances_std, strict=True
        )
    )


def evaluate_model(bundle: ModelBundle, frame: pd.DataFrame) -> dict[str, float]:
    """The metrics of ``bundle`` on ``frame`` (which must hold the target)."""
    return evaluate_bundle(bundle, frame).metrics


def slice_metrics(
    frame: pd.DataFrame,
    *,
    slice_columns: Sequence[str],
    target: str,
    problem: Problem,
    probabilities: ArrayLike | pd.DataFrame | None = None,
    prediction_column: str = PREDICTION_COLUMN,
    score_column: str = SCORE_COLUMN,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics per value of each slice column: ``{column: {value: {metric: value}}}``.

    ``frame`` holds the target and the predictions. ``probabilities`` is the probability
    matrix row-aligned with ``frame``; without it a binary problem reads the positive
    label's probability from ``score_column``, and a multiclass one reports AUC and log
    loss as NaN. Every slice is scored as the model's problem (a slice of a multiclass
    model holding two classes is still multiclass). Every slice reports ``rows``; slices
    under ``MIN_SLICE_ROWS`` rows report only that, since their metrics would be noise.
    """
    missing = [c for c in (*slice_columns, target, prediction_column) if c not in frame.columns]
    if missing:
        raise DataError(
            f"slice metrics need columns {missing}; the frame has {list(frame.columns)}"
        )
    proba: np.ndarray | None = None
    if problem.problem_type != REGRESSION:
        source = probabilities
        if source is None and problem.problem_type == BINARY and score_column in frame.columns:
            source = frame[score_column]
        proba = _probability_matrix(source, problem, len(frame))
    truth, pred = frame[target].to_numpy(), frame[prediction_column].to_numpy()
    result: dict[str, dict[str, dict[str, float]]] = {}
    for column in slice_columns:
        groups = frame.groupby(frame[column].astype(str), sort=True, dropna=False).indices
        per_value: dict[str, dict[str, float]] = {}
        for value, positions in groups.items():
            entry: dict[str, float] = {"rows": float(len(positions))}
            if len(positions) >= MIN_SLICE_ROWS:
                entry.update(
                    compute_metrics(
                        truth[positions],
                        pred[positions],
                        problem=problem,
                        probabilities=None if proba is None else proba[positions],
                    )
                )
            per_value[str(value)] = entry
        result[column] = per_value
    return result


def evaluation_document(report: MetricReport) -> dict[str, Any]:
    """SageMaker's model-quality layout, readable by a ConditionStep through a PropertyFile.

    ``{"binary_classification_metrics": {"confusion_matrix": {...}, "auc": {"value": 0.87,
    "standard_deviation": 0.01, "confidence_interval": {"lower": 0.85, "upper": 0.89,
    "confidence": 0.95}}, ...}, "no_skill_baseline": {...}, "problem": {...},
    "evaluation": {...}}``. ``standard_deviation`` is the bootstrap standard error;
    ``no_skill_baseline`` holds the baseline's metrics and how it predicts; ``problem``
    states the problem type, the classes and, for a binary model, the positive label, the
    rule that chose it and the decision threshold; ``evaluation`` the row count and how the
    intervals were computed. NaN is written as null, so the file is strict JSON.
    """
    problem = report.problem
    section: dict[str, Any] = {}
    if report.confusion_matrix is not None:
        section["confusion_matrix"] = report.confusion_matrix
    for name, value in report.metrics.items():
        bounds = report.intervals[name]
        section[name] = {
            "value": value,
            "standard_deviation": bounds.standard_error,
            "confidence_interval": {
                "lower": bounds.lower,
                "upper": bounds.upper,
                "confidence": bounds.confidence,
            },
        }
    document = {
        METRIC_SECTIONS[problem.problem_type]: section,
        "no_skill_baseline": {"method": NO_SKILL_METHOD, "metrics": report.no_skill},
        "problem": problem.to_dict(),
        "evaluation": {
            "rows": report.rows,
            "seed": report.seed,
            "uncertainty": uncertainty_statement(report),
        },
    }
    safe: dict[str, Any] = json_safe(document)
    return safe


def uncertainty_statement(report: MetricReport) -> dict[str, Any]:
    """How ``report``'s intervals were computed, for evaluation.json and the model card."""
    return {
        "method": METHOD,
        "resamples": report.resamples,
        "confidence": report.confidence,
        "seed": report.seed,
        "description": describe(resamples=report.resamples, confidence=report.confidence),
    }


def metrics_from_document(document: dict[str, Any]) -> dict[str, float]:
    """Read metrics back from an evaluation.json document (ours or SageMaker's).

    Null and SageMaker's ``"NaN"`` read as NaN; entries that are not metrics (the
    confusion matrix, curves) are skipped.
    """
    for section in METRIC_SECTIONS.values():
        if section in document:
            return {
                name: _number(entry["value"])
                for name, entry in document[section].items()
                if isinstance(entry, dict) and "value" in entry
            }
    raise DataError(f"no metrics section in evaluation document; keys are {sorted(document)}")


def _number(value: Any) -> float:
    return math.nan if value is None or value == "NaN" else float(value)


def _regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    mse = float(skm.mean_squared_error(truth, pred))
    return {
        "rmse": math.sqrt(mse),
        "mse": mse,
        "mae": float(skm.mean_absolute_error(truth, pred)),
        # R2 compares with the variance of the truth: undefined for one row or a constant truth.
        "r2": float(skm.r2_score(truth, pred))
        if len(truth) > 1 and np.ptp(truth) > 0
        else math.nan,
    }


def _binary_metrics(
    truth: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, problem: Problem
) -> dict[str, float]:
    actual = truth == problem.positive_label
    predicted = pred == problem.positive_label
    result: dict[str, float] = {
        "auc": math.nan,
        "accuracy": float(skm.accuracy_score(truth, pred)),
    }
    for name, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
        precision, recall, f_score, _ = skm.precision_recall_fscore_support(
            actual, predicted, beta=beta, average="binary", pos_label=True, zero_division=np.nan
        )
        result.update(precision=float(precision), recall=float(recall))
        result[name] = float(f_score)
    result["log_loss"] = math.nan
    positives, negatives = int(actual.sum()), int((~actual).sum())
    tpr = float((actual & predicted).sum() / positives) if positives else math.nan
    tnr = float((~actual & ~predicted).sum() / negatives) if negatives else math.nan
    result.update(
        true_positive_rate=tpr,
        true_negative_rate=tnr,
        false_positive_rate=1.0 - tnr,
        false_negative_rate=1.0 - tpr,
    )
    if proba is not None:
        score = proba[:, problem.positive_index]
        if positives and negatives:
            result["auc"] = float(skm.roc_auc_score(actual, score))
        result["log_loss"] = float(skm.log_loss(actual, score, labels=[False, True]))
    return {name: result[name] for name in BINARY_METRICS}


def _multiclass_metrics(
    truth: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, problem: Problem
) -> dict[str, float]:
    labels = list(problem.classes)
    result: dict[str, float] = {
        "auc": math.nan,
        "accuracy": float(skm.accuracy_score(truth, pred)),
    }
    for name, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
        precision, recall, f_score, _ = skm.precision_recall_fscore_support(
            truth, pred, beta=beta, labels=labels, average="weighted", zero_division=0
        )
        result.update(weighted_precision=float(precision), weighted_recall=float(recall))
        result[f"weighted_{name}"] = float(f_score)
    result["log_loss"] = math.nan
    if proba is not None:
        indicator = label_binarize(truth, classes=labels)
        present = np.flatnonzero(indicator.any(axis=0))
        if len(present) >= 2:
            # With every class present this is roc_auc_score(multi_class="ovr"), macro average.
            result["auc"] = float(
                skm.roc_auc_score(indicator[:, present], proba[:, present], average="macro")
            )
        result["log_loss"] = float(skm.log_loss(truth, proba, labels=labels))
    return {name: result[name] for name in MULTICLASS_METRICS}


def _probability_matrix(
    probabilities: ArrayLike | pd.DataFrame | None, problem: Problem, rows: int
) -> np.ndarray | None:
    """Probabilities as an (n, classes) array, or None; a 1-D input is binary P(positive)."""
    if probabilities is None:
        return None
    if isinstance(probabilities, pd.DataFrame):
        columns = list(probabilities.columns)
        if columns != list(problem.classes):
            raise DataError(
                f"probability columns {columns} do not match the model's classes {list(problem.classes)}"
            )
    matrix = np.asarray(probabilities, dtype=float)
    if matrix.ndim == 1:
        if problem.problem_type != BINARY:
            raise DataError(
                "a multiclass model's AUC and log loss need the full probability matrix "
                "(ModelBundle.predict_proba); one score per row cannot give them"
            )
        positive = problem.positive_index
        matrix = np.column_stack(
            [1.0 - matrix, matrix] if positive == 1 else [matrix, 1.0 - matrix]
        )
    if matrix.shape != (rows, len(problem.classes)):
        raise DataError(
            f"probabilities have shape {matrix.shape}; expected ({rows}, {len(problem.classes)}) "
            f"for {rows} rows and classes {list(problem.classes)}"
        )
    return matrix


def _check_known_classes(values: np.ndarray, problem: Problem, what: str) -> None:
    known = set(problem.classes)
    unknown = [v for v in pd.unique(values) if v not in known]
    if unknown:
        raise DataError(
            f"{what} hold classes the model was not trained on: {unknown[:10]}; the model's "
            f"classes are {list(problem.classes)}. Check the label encoding (e.g. 1 vs '1')."
        )


def _interval_around(value: float, replicates: np.ndarray, confidence: float) -> Interval:
    # A metric undefined on the whole evaluation has no interval either.
    if math.isnan(value):
        return Interval(math.nan, math.nan, math.nan, confidence)
    return interval(replicates, confidence=confidence)
