"""Bootstrap uncertainty of evaluation metrics, and the paired comparison of two models.

The percentile bootstrap (Efron and Tibshirani, *An Introduction to the Bootstrap*, 1993,
ch. 13): the evaluation rows are drawn with replacement ``resamples`` times from a seeded
generator, every metric is recomputed on every resample, and

* the interval at confidence ``c`` is the ``(1 - c) / 2`` and ``(1 + c) / 2`` quantiles of
  those replicates;
* the standard error is their standard deviation.

A resample is carried as weights (how often each row was drawn), so a metric over a batch
of resamples is a handful of matrix products instead of a Python loop per resample; with
unit weights :func:`weighted_metrics` equals :func:`mlcore.evaluate.compute_metrics`
(the tests hold the two equal, metric by metric). The resamples depend only on the seed
and the number of rows: two models scored on the same rows with the same seed see the
same resamples, so the difference of their replicates is the paired bootstrap of the
metric difference that the champion gate reads (:mod:`mlcore.gate`).

A metric undefined on a resample (AUC when the resample holds one class) is NaN there;
an interval is given only when at least ``MIN_DEFINED_SHARE`` of the resamples define
the metric, else it is NaN, because quantiles of the remaining resamples would describe
a different population.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from mlcore.metric_names import BINARY, BINARY_METRICS, METRICS_BY_PROBLEM_TYPE, MULTICLASS_METRICS
from mlcore.problem import Problem

#: Resamples per evaluation: enough for 95% percentile intervals (Efron and Tibshirani
#: recommend at least 1,000 for quantiles; standard errors settle far sooner).
RESAMPLES = 1000
#: Confidence of the intervals written to evaluation.json and the model card.
CONFIDENCE = 0.95
#: Below this many rows no interval is given: a resample of a handful of rows says
#: nothing about the population they came from.
MIN_ROWS = 20
#: The share of resamples on which a metric must be defined for its interval to be given.
MIN_DEFINED_SHARE = 0.9
METHOD = "percentile bootstrap"
# Weights kept in memory at once (resamples x rows); bounds memory at about 16 MB per array.
_BATCH_CELLS = 2_000_000


@dataclass(frozen=True)
class Interval:
    """A metric's bootstrap confidence interval and standard error (NaN when not given)."""

    lower: float
    upper: float
    standard_error: float
    confidence: float

    @property
    def defined(self) -> bool:
        return not math.isnan(self.lower)


def describe(*, resamples: int, confidence: float) -> str:
    """How the intervals were computed, in one sentence for the reports."""
    return (
        f"{METHOD}: {resamples} seeded resamples of the evaluation rows with replacement; "
        f"{confidence:.0%} interval from the replicates' quantiles, standard error from their "
        f"standard deviation; none below {MIN_ROWS} rows or when the metric is undefined on "
        f"more than {1 - MIN_DEFINED_SHARE:.0%} of the resamples"
    )


def interval(replicates: np.ndarray, *, confidence: float = CONFIDENCE) -> Interval:
    """The percentile interval and standard error of one metric's replicates."""
    defined = replicates[np.isfinite(replicates)]
    if len(replicates) == 0 or len(defined) < MIN_DEFINED_SHARE * len(replicates):
        return Interval(math.nan, math.nan, math.nan, confidence)
    tail = (1 - confidence) / 2
    lower, upper = np.quantile(defined, [tail, 1 - tail])
    return Interval(
        lower=float(lower),
        upper=float(upper),
        standard_error=float(np.std(defined, ddof=1)),
        confidence=confidence,
    )


def bootstrap_metrics(
    truth: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    *,
    problem: Problem,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Every metric of ``problem``'s type on each of ``resamples`` seeded resamples.

    ``proba`` is the (rows, classes) probability matrix in ``problem.classes`` order, or
    None (then AUC and log loss are NaN, as in :func:`mlcore.evaluate.compute_metrics`).
    Returns ``{metric: array of resamples}``; all NaN below ``MIN_ROWS`` rows.
    """
    rows = len(truth)
    names = _names(problem)
    if rows < MIN_ROWS:
        return {name: np.full(resamples, math.nan) for name in names}
    prepared = _Prepared.of(truth, pred, proba, problem)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for weights in resample_weights(rows, resamples=resamples, seed=seed):
        for name, values in prepared.metrics(weights).items():
            parts[name].append(values)
    return {name: np.concatenate(parts[name]) for name in names}


def resample_weights(rows: int, *, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Batches of bootstrap weights, (rows, batch): how often each row was drawn into each
    resample of the batch (rows first, so that selecting rows reads contiguous memory).

    The sequence depends only on ``rows``, ``resamples`` and ``seed``, which is what
    pairs two models' replicates.
    """
    rng = np.random.default_rng(seed)
    batch = max(1, min(resamples, _BATCH_CELLS // max(rows, 1)))
    for start in range(0, resamples, batch):
        size = min(batch, resamples - start)
        drawn = rng.integers(0, rows, size=(size, rows))
        # One bincount for the whole batch: row r drawn in resample b lands in cell r * size + b.
        cells = drawn * size + np.arange(size)[:, None]
        counts = np.bincount(cells.ravel(), minlength=size * rows)
        yield counts.reshape(rows, size).astype(float)


def weighted_metrics(
    truth: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None,
    weights: np.ndarray,
    *,
    problem: Problem,
) -> dict[str, np.ndarray]:
    """Every metric under each column of ``weights`` (rows, batch), or under ``weights``
    (rows,) as a batch of one; with unit weights these are
    :func:`mlcore.evaluate.compute_metrics`' values, and with integer weights its values
    on the rows repeated that often."""
    matrix = weights.reshape(len(weights), -1)
    return _Prepared.of(truth, pred, proba, problem).metrics(matrix)


def _names(problem: Problem) -> tuple[str, ...]:
    return METRICS_BY_PROBLEM_TYPE[problem.problem_type]


@dataclass(frozen=True)
class _Prepared:
    """What every resample reuses: indicators, per-row losses and the score orderings."""

    problem: Problem
    truth: np.ndarray
    pred: np.ndarray
    # Classification: one-hot truth and prediction (rows, classes), per-row log loss.
    actual: np.ndarray | None = None
    predicted: np.ndarray | None = None
    row_loss: np.ndarray | None = None
    # Per class: the rows ranked by that class's probability (one-vs-rest).
    rankings: tuple[_Ranking, ...] = ()

    @classmethod
    def of(
        cls, truth: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, problem: Problem
    ) -> _Prepared:
        if problem.task == "regression":
            return cls(problem, np.asarray(truth, dtype=float), np.asarray(pred, dtype=float))
        labels = list(problem.classes)
        index = {label: i for i, label in enumerate(labels)}
        truth_index = np.fromiter((index[v] for v in truth), dtype=int, count=len(truth))
        pred_index = np.fromiter((index[v] for v in pred), dtype=int, count=len(pred))
        eye = np.eye(len(labels))
        row_loss = None
        rankings: tuple[_Ranking, ...] = ()
        if proba is not None:
            # scikit-learn's log_loss: probabilities clipped to [eps, 1 - eps].
            eps = np.finfo(float).eps
            true_proba = proba[np.arange(len(truth_index)), truth_index]
            row_loss = -np.log(np.clip(true_proba, eps, 1 - eps))
            rankings = tuple(_Ranking.of(proba[:, c], truth_index == c) for c in range(len(labels)))
        return cls(
            problem,
            truth_index,
            pred_index,
            actual=eye[truth_index],
            predicted=eye[pred_index],
            row_loss=row_loss,
            rankings=rankings,
        )

    def metrics(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric under each column of ``weights`` (rows, batch)."""
        if self.problem.task == "regression":
            return _regression(self.truth, self.pred, weights)
        if self.problem.problem_type == BINARY:
            return self._binary(weights)
        return self._multiclass(weights)

    def _binary(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        assert self.actual is not None and self.predicted is not None
        positive = self.problem.positive_index
        actual, predicted = self.actual[:, positive], self.predicted[:, positive]
        tp = (actual * predicted) @ weights
        fp = ((1 - actual) * predicted) @ weights
        fn = (actual * (1 - predicted)) @ weights
        tn = ((1 - actual) * (1 - predicted)) @ weights
        undefined = np.full(weights.shape[1], math.nan)
        result = {
            "auc": undefined,
            "accuracy": (tp + tn) / (tp + fp + fn + tn),
            "precision": _divide(tp, tp + fp),
            "recall": _divide(tp, tp + fn),
            "log_loss": undefined,
        }
        for name, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
            result[name] = _f_score(tp, fp, fn, beta)
        tpr, tnr = _divide(tp, tp + fn), _divide(tn, tn + fp)
        result.update(
            true_positive_rate=tpr,
            true_negative_rate=tnr,
            false_positive_rate=1 - tnr,
            false_negative_rate=1 - tpr,
        )
        if self.row_loss is not None:
            result["auc"] = self.rankings[positive].auc(weights)
            result["log_loss"] = (self.row_loss @ weights) / weights.sum(axis=0)
        return {name: result[name] for name in BINARY_METRICS}

    def _multiclass(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        assert self.actual is not None and self.predicted is not None
        # (batch, classes): rows per class, predictions per class, correct ones per class.
        support = weights.T @ self.actual
        predicted = weights.T @ self.predicted
        tp = weights.T @ (self.actual * self.predicted)
        total = support.sum(axis=1)
        share = support / total[:, None]
        undefined = np.full(weights.shape[1], math.nan)
        result = {"auc": undefined, "accuracy": tp.sum(axis=1) / total, "log_loss": undefined}
        # scikit-learn's average="weighted" with zero_division=0: a class never predicted
        # has precision 0, and classes are weighted by their support.
        precision = _divide(tp, predicted, empty=0.0)
        recall = _divide(tp, support, empty=0.0)
        result["weighted_precision"] = (share * precision).sum(axis=1)
        result["weighted_recall"] = (share * recall).sum(axis=1)
        for name, beta in (("f0_5", 0.5), ("f1", 1.0), ("f2", 2.0)):
            f_score = _f_score(tp, predicted - tp, support - tp, beta, empty=0.0)
            result[f"weighted_{name}"] = (share * f_score).sum(axis=1)
        if self.row_loss is not None:
            # One-vs-rest AUC per class, averaged over the classes the resample holds.
            per_class = np.column_stack([ranking.auc(weights) for ranking in self.rankings])
            present = support > 0
            counted = present.sum(axis=1)
            summed = np.where(present, per_class, 0.0).sum(axis=1)
            result["auc"] = np.where(counted >= 2, summed / np.maximum(counted, 1), math.nan)
            result["log_loss"] = (self.row_loss @ weights) / total
        return {name: result[name] for name in MULTICLASS_METRICS}


def _regression(truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    total = weights.sum(axis=0)
    error = pred - truth
    mse = (error**2 @ weights) / total
    mean = (truth @ weights) / total
    sst = (weights * (truth[:, None] - mean[None, :]) ** 2).sum(axis=0)
    drawn = weights > 0
    # R2 is undefined when the drawn rows hold one value: there is no variance to explain.
    lowest = np.where(drawn, truth[:, None], np.inf).min(axis=0)
    highest = np.where(drawn, truth[:, None], -np.inf).max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where((lowest == highest) | (total <= 1), math.nan, 1 - mse * total / sst)
    return {"rmse": np.sqrt(mse), "mse": mse, "mae": (np.abs(error) @ weights) / total, "r2": r2}


@dataclass(frozen=True)
class _Ranking:
    """One score column's ranking of the rows, for the weighted Mann-Whitney AUC.

    ``positives``/``negatives`` are the row indices of each side in ascending score order;
    for the p-th positive, ``below[p]`` negatives rank strictly lower and ``through[p]``
    lower or tied, counted in that order.
    """

    positives: np.ndarray
    negatives: np.ndarray
    below: np.ndarray
    through: np.ndarray

    @classmethod
    def of(cls, score: np.ndarray, positive: np.ndarray) -> _Ranking:
        order = np.argsort(score, kind="stable")
        ordered, is_positive = score[order], positive[order].astype(bool)
        negative_scores = ordered[~is_positive]
        positive_scores = ordered[is_positive]
        return cls(
            positives=order[is_positive],
            negatives=order[~is_positive],
            below=np.searchsorted(negative_scores, positive_scores, side="left"),
            through=np.searchsorted(negative_scores, positive_scores, side="right"),
        )

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """The AUC under each column of ``weights``: the weighted share of (positive, negative)
        pairs the score ranks correctly, ties counting one half."""
        negative = weights[self.negatives]
        cumulative = np.zeros((negative.shape[0] + 1, weights.shape[1]))
        np.cumsum(negative, axis=0, out=cumulative[1:])
        positive = weights[self.positives]
        ranked_lower = cumulative[self.below] + cumulative[self.through]
        concordant = 0.5 * np.einsum("ij,ij->j", positive, ranked_lower)
        return _divide(concordant, positive.sum(axis=0) * cumulative[-1])


def _divide(
    numerator: np.ndarray, denominator: np.ndarray, *, empty: float = math.nan
) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(
            denominator > 0, numerator / np.where(denominator > 0, denominator, 1), empty
        )


def _f_score(
    tp: np.ndarray, fp: np.ndarray, fn: np.ndarray, beta: float, *, empty: float = math.nan
) -> np.ndarray:
    # scikit-learn's F-beta: (1 + b^2) tp / (b^2 (tp + fn) + tp + fp); ``empty`` when nothing
    # is positive or predicted positive.
    b2 = beta * beta
    return _divide((1 + b2) * tp, b2 * (tp + fn) + tp + fp, empty=empty)
