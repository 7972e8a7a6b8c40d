"""Descriptive statistics of one column (count, mean, spread, histogram or category counts).

These feed ``statistics.json`` and ``constraints.json`` in SageMaker Model
Monitor's formats and the HTML report; they do not decide drift.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlcore.drift.summaries import ColumnSummary, NumericSummary

# Model Monitor materialises numeric distributions in 10 equal-width buckets.
HISTOGRAM_BUCKETS = 10


@dataclass(frozen=True)
class ColumnProfile:
    inferred_type: str  # Model Monitor's names: "Integral", "Fractional" or "String"
    num_present: int
    num_missing: int
    mean: float | None = None
    sum: float | None = None
    std_dev: float | None = None
    min: float | None = None
    max: float | None = None
    # Numeric: (lower_bound, upper_bound, count) per equal-width bucket.
    buckets: tuple[tuple[float, float, int], ...] = ()
    # Categorical: (value, count), most frequent first.
    categories: tuple[tuple[str, int], ...] = ()

    @property
    def completeness(self) -> float:
        total = self.num_present + self.num_missing
        return self.num_present / total if total else 0.0


# A baseline's reference profiles are computed on first use and reused by every run in the
# process; keyed weakly so a dropped baseline takes its profiles with it.
_CACHE: weakref.WeakKeyDictionary[ColumnSummary, ColumnProfile] = weakref.WeakKeyDictionary()


def profile(summary: ColumnSummary) -> ColumnProfile:
    cached = _CACHE.get(summary)
    if cached is None:
        cached = _CACHE[summary] = _profile(summary)
    return cached


def remember_profile(summary: ColumnSummary, known: ColumnProfile) -> None:
    """Use ``known`` (saved with a baseline) as the profile of ``summary``."""
    _CACHE[summary] = known


def profile_from_dict(data: dict[str, Any]) -> ColumnProfile:
    return ColumnProfile(
        **{
            **data,
            "buckets": tuple(tuple(b) for b in data.get("buckets", ())),
            "categories": tuple(tuple(c) for c in data.get("categories", ())),
        }
    )


def _profile(summary: ColumnSummary) -> ColumnProfile:
    if isinstance(summary, NumericSummary):
        return _numeric_profile(summary)
    order = np.argsort(-summary.counts, kind="stable")
    return ColumnProfile(
        inferred_type="String",
        num_present=summary.n_valid,
        num_missing=summary.n_missing,
        categories=tuple((summary.labels[i], int(summary.counts[i])) for i in order),
    )


def _numeric_profile(summary: NumericSummary) -> ColumnProfile:
    values = summary.sorted_values
    # Infinite values are neither present (no distribution) nor silently dropped: counted missing.
    missing = summary.n_total - summary.n_valid
    if values.shape[0] == 0:
        return ColumnProfile(inferred_type="Fractional", num_present=0, num_missing=missing)
    low, high = float(values[0]), float(values[-1])
    integral = bool(np.all(np.floor(values) == values))
    # Moments of values divided by a power of two near their size: values near 1e200 would
    # overflow their squares (the division and the product back are exact).
    largest = max(abs(low), abs(high))
    unit = float(2.0 ** np.ceil(np.log2(largest))) if largest > 0 else 1.0
    scaled = values / unit
    return ColumnProfile(
        inferred_type="Integral" if integral else "Fractional",
        num_present=int(values.shape[0]),
        num_missing=missing,
        mean=float(np.mean(scaled)) * unit,
        sum=float(np.sum(scaled)) * unit,
        std_dev=float(np.std(scaled)) * unit,
        min=low,
        max=high,
        buckets=_equal_width_buckets(values, low, high),
    )


def _equal_width_buckets(
    sorted_values: np.ndarray, low: float, high: float
) -> tuple[tuple[float, float, int], ...]:
    if low == high:
        return ((low, high, int(sorted_values.shape[0])),)
    edges = np.linspace(low, high, HISTOGRAM_BUCKETS + 1)
    # The first bucket is closed on both sides so the minimum is counted.
    upto = np.searchsorted(sorted_values, edges[1:-1], side="right")
    counts = np.diff(np.concatenate([[0], upto, [sorted_values.shape[0]]]))
    return tuple(
        (float(lo), float(hi), int(c))
        for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)
    )
