"""What chance alone gives an effect size, and the effect net of it.

A plug-in effect size (PSI, KL, Jensen-Shannon, Cramér's V, KS's D, the
Wasserstein distance) is biased upward: two samples of one distribution
differ by chance, and by more the smaller they are (100 categories at 1,000
rows a side have a PSI of about 0.2 with nothing changed). Graded on the raw
value, a change below the bands is flagged more often at mid sizes than at
large ones. Every distribution effect is therefore graded net of its
same-distribution expectation ``E0`` at the sizes compared:

* divergences, whose bias adds to the true value (PSI and KL: the plug-in is
  about the true value plus a chi-squared variable's mean, as a noncentral
  chi-squared's mean is its non-centrality plus its degrees of freedom):
  ``max(0, plug_in - E0)``;
* distances (JS distance, Cramér's V: square roots of such divergences; KS's
  D and the Wasserstein distance: averages or maxima of absolute CDF gaps, to
  which independent noise adds in quadrature): ``sqrt(max(0, plug_in**2 -
  E0**2))``, or for the two square roots ``sqrt(max(0, plug_in**2 -
  E0[plug_in**2]))``.

``E0`` comes from the conditional null where it is cheap to draw (binned
statistics: ``NULL_DRAWS`` tables with both samples' margins, multivariate
hypergeometric, seeded, so every engine gets the same number), and from the
large-sample laws otherwise: for KS, the mean of Kolmogorov's distribution,
sqrt(pi/2) ln 2 / sqrt(n_eff); for Wasserstein-1, del Barrio, Giné and Matrán
(1999, Ann. Probab. 27) give sqrt(n) W(F_n, F) -> integral of |B(F(x))| dx for
a Brownian bridge B, whose mean is sqrt(2/pi) times the integral of
sqrt(F(1-F)); two samples add their variances, hence sqrt(1/n_ref + 1/n_cur).
The significance test still decides whether chance explains the change; the
net effect decides whether what is left is large enough to matter
(``grading``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from mlcore.drift.summaries import FloatArray

NULL_DRAWS = 200
# Mean of Kolmogorov's limiting distribution of sqrt(n) D.
KOLMOGOROV_MEAN = math.sqrt(math.pi / 2) * math.log(2)

Form = Literal["linear", "quadrature"]


def net_of_chance(plug_in: float, expected: float, *, form: Form) -> float:
    """The effect beyond what chance gives (see the module docstring), never below 0."""
    if form == "linear":
        return max(0.0, plug_in - expected)
    return math.sqrt(max(0.0, plug_in * plug_in - expected))


def ks_chance(n_ref: int, n_cur: int) -> float:
    """E0[D] for two continuous samples; ties only make D smaller, so this never undercorrects
    a continuous column and overcorrects a discrete one (a conservative grade)."""
    effective = n_ref * n_cur / (n_ref + n_cur)
    return KOLMOGOROV_MEAN / math.sqrt(effective)


def wasserstein_chance(n_ref: int, n_cur: int, bridge_integral: float) -> float:
    """E0 of the normalised Wasserstein distance (``bridge_integral`` is the integral of
    sqrt(F(1-F)) over the measured range, in units of the scale)."""
    return math.sqrt(2 / math.pi) * math.sqrt(1 / n_ref + 1 / n_cur) * bridge_integral


def null_tables(pair: Any, bins: int) -> tuple[FloatArray, FloatArray]:
    """``NULL_DRAWS`` (reference, current) count tables with the pair's margins and no change,
    drawn once per pair and shared by every binned statistic."""
    cache: dict[int, tuple[FloatArray, FloatArray]] = pair.__dict__.setdefault("_null", {})
    if bins not in cache:
        counts = pair.binned(bins)
        pooled = (counts.reference + counts.current).astype(np.int64)
        n_cur = int(counts.current.sum())
        rng = np.random.default_rng(0)
        current = rng.multivariate_hypergeometric(
            pooled, n_cur, size=NULL_DRAWS, method="marginals"
        )
        cache[bins] = ((pooled - current).astype(np.float64), current.astype(np.float64))
    return cache[bins]


def null_mean(
    pair: Any, bins: int, statistic: Callable[[FloatArray, FloatArray], FloatArray]
) -> float:
    """Mean of a vectorised binned ``statistic(reference_counts, current_counts)`` (rows are
    tables) over the null tables of ``null_tables``."""
    reference, current = null_tables(pair, bins)
    return float(np.mean(statistic(reference, current)))
