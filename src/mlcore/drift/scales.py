"""The numeric reference's measuring stick: where its tails are cut and what one unit of spread is.

The default numeric effect size (``wasserstein``) compares the two samples
winsorised at the reference's ``WINSOR_SHARE`` and ``1 - WINSOR_SHARE``
quantiles (values beyond are counted at the cut, so a share of far-away
sentinels still counts, at the cut's distance) and divides by a robust spread
of the reference. Both come from the reference alone, computed once per
reference column and shared by the exact and the sketch engines:

* cut points: the reference's order statistics ``k`` and ``n + 1 - k`` with
  ``k = max(2, ceil(WINSOR_SHARE * n))``, so even at 50 rows the single most
  extreme value on each side is cut (one value of 1e9 in a 10,000-row reference
  moves neither cut point nor the scale);
* scale: the interquartile range divided by 1.349, the standard deviation of a
  normal distribution with that IQR, so bands still read as fractions of a
  standard deviation on normal data. Where the IQR is 0 (more than half the
  values equal), the standard deviation of the winsorised reference; where that
  is 0 too, the reference is constant within its cuts: nothing is cut and the
  scale is 1, so a constant column that moves by 1 has an effect of 1 (the
  result says which);
* the Brownian-bridge integral of the reference CDF over the cut range, in
  units of the scale, which gives the distance's same-distribution expectation
  (``chance``).

Robust scales and trimming for distribution comparisons: Álvarez-Esteban, del
Barrio, Cuesta-Albertos and Matrán (2008), "Trimmed comparison of
distributions", JASA 103; Munk and Czado (1998), JRSS B 60, on trimmed Mallows
distances. Evidently normalises the Wasserstein distance by the reference's
plain standard deviation, which one extreme value or a heavy tail inflates
(a 30% inflation of lognormal amounts then reads as "no change" once the
sample is large enough to show the tail's variance).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import numpy as np

from mlcore.drift.summaries import FloatArray, NumericSummary

WINSOR_SHARE = 0.01
# The IQR of a standard normal distribution: IQR / 1.349 estimates its standard deviation.
NORMAL_IQR = 1.3489795003921634


@dataclass(frozen=True)
class RobustScale:
    low: float  # values below are counted at this cut point
    high: float
    scale: float
    scale_source: str
    bridge_integral: float  # integral of sqrt(F(1-F)) over [low, high], in units of the scale

    def shrink(self) -> float:
        """A power of two that brings the cut points to at most 1 in magnitude: distances are
        computed on values divided by it, so nothing near 1e308 overflows (and the division is
        exact)."""
        largest = max(abs(self.low), abs(self.high), self.scale)
        if not math.isfinite(largest) or largest == 0:
            return 1.0
        return float(2.0 ** math.ceil(math.log2(largest)))


_CACHE: weakref.WeakKeyDictionary[NumericSummary, RobustScale] = weakref.WeakKeyDictionary()


def robust_scale(summary: NumericSummary) -> RobustScale:
    """The reference's cut points and scale (cached per summary: a baseline's are computed once)."""
    cached = _CACHE.get(summary)
    if cached is None:
        cached = _CACHE[summary] = robust_scale_of(summary.sorted_values)
    return cached


def robust_scale_of(sorted_values: FloatArray) -> RobustScale:
    n = int(sorted_values.shape[0])
    if n == 0:
        return RobustScale(math.nan, math.nan, 1.0, "1 (no reference values)", 0.0)
    k = min(max(2, math.ceil(WINSOR_SHARE * n)), (n + 1) // 2)
    low, high = float(sorted_values[k - 1]), float(sorted_values[n - k])
    if low == high:
        # Constant within its cuts. Said here, not left to the standard deviation below: the
        # mean of equal values can be off by a rounding step, which gives a spread of noise.
        return RobustScale(
            -math.inf, math.inf, 1.0, "1 (the reference is constant within its cuts)", 0.0
        )
    # Work on values divided by a power of two near their size: no overflow, exact division.
    top = max(abs(low), abs(high))
    unit = float(2.0 ** math.ceil(math.log2(top))) if top > 0 and math.isfinite(top) else 1.0
    values = np.clip(sorted_values, low, high) / unit
    q1, q3 = np.quantile(values, [0.25, 0.75])
    scale, source = float(q3 - q1) / NORMAL_IQR, "interquartile range / 1.349"
    if not scale > 0:
        scale, source = float(np.std(values)), "standard deviation of the winsorised reference"
    if not scale * unit > 0:  # also where the spread is below the smallest float (denormals)
        return RobustScale(
            -math.inf, math.inf, 1.0, "1 (the reference is constant within its cuts)", 0.0
        )
    # The reference ECDF is constant between consecutive values: sum sqrt(F(1-F)) * width.
    cdf = np.arange(1, n, dtype=np.float64) / n
    widths = np.diff(values)
    bridge = float(np.sum(np.sqrt(cdf * (1 - cdf)) * widths)) / scale
    return RobustScale(low, high, scale * unit, source, bridge)
