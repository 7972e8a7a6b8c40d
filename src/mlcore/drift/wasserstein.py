"""Robust normalised Wasserstein-1 distance (numeric columns): the default numeric effect size.

The effect is the Wasserstein-1 distance between the two samples winsorised at
the reference's 1% and 99% quantiles, divided by a robust spread of the
reference (its IQR / 1.349), net of what chance gives at these sample sizes
(``scales`` and ``chance`` say how and cite why). On normal data it reads as
before: 0.1 is a shift of about a tenth of a standard deviation. It grows with
every kind of change (location, spread, a share of far-away sentinels, counted
at the cut), where KS's statistic saturates at the changed share; and unlike the
distance over the plain standard deviation (Evidently's normalisation, ours
before), one extreme value cannot blind it, a heavy tail cannot make a fixed
change look smaller as the sample grows, and values near 1e300 do not overflow.
Bands: 0.05 moderate, 0.1 major (Evidently's threshold for its normalised
distance). The significance test is KS (``significance``).

Exact mode integrates the gap between the two empirical CDFs over the cut
range. Sketch mode (the streaming and Spark engines) knows both CDFs at every
grid edge, and the cut points are grid edges: it bounds the integral over each
grid bin from below and above, and grades on the lower bound, so a sketch never
grades a column above what the exact engine would (``plug_in_upper`` and
``error_bound`` say how far the exact value can lie above it). The tails beyond
the cut points, where grid bins are widest on heavy-tailed data, do not enter.
"""

from __future__ import annotations

import numpy as np

from mlcore.drift._common import DriftTest, NumericInput, numeric_pair, untestable
from mlcore.drift.chance import net_of_chance, wasserstein_chance
from mlcore.drift.pairs import NumericPair
from mlcore.drift.results import TestResult
from mlcore.drift.scales import RobustScale, robust_scale
from mlcore.drift.significance import significance_of
from mlcore.drift.sketches import StreamingNumericPair
from mlcore.settings import Bands, DriftSettings

METHOD = "wasserstein"
DEFAULT_BANDS = Bands(moderate=0.05, major=0.1)


def wasserstein_drift(
    reference: NumericInput,
    current: NumericInput,
    *,
    alpha: float = 0.05,
    bands: Bands = DEFAULT_BANDS,
) -> TestResult:
    """Robust normalised Wasserstein distance of ``current`` from ``reference``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(0, 2, size=5000)
    >>> round(wasserstein_drift(ref, ref + 1.0).statistic, 1)
    0.5
    """
    pair = numeric_pair(reference, current)
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    return _exact(pair, alpha=alpha, bands=bands)


def wasserstein_distance_of(pair: NumericPair) -> float:
    """The raw Wasserstein-1 distance, equal to ``scipy.stats.wasserstein_distance``."""
    merged, gap = pair.ecdf_gap
    return float(np.sum(np.multiply(np.abs(gap[:-1]), np.diff(merged))))


def winsorised_distance(pair: NumericPair, cuts: RobustScale) -> float:
    """The Wasserstein-1 distance of both samples winsorised at the reference's cut points,
    in units of the scale: the integral of the CDF gap over [low, high]."""
    merged, gap = pair.ecdf_gap
    unit = cuts.shrink()
    widths = np.diff(np.clip(merged, cuts.low, cuts.high) / unit)
    return float(np.sum(np.abs(gap[:-1]) * widths)) / (cuts.scale / unit)


def wasserstein_exact(pair: NumericPair, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.wasserstein, settings.p_value_threshold
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    return _exact(pair, alpha=alpha, bands=bands)


def _exact(pair: NumericPair, *, alpha: float, bands: Bands) -> TestResult:
    cuts = robust_scale(pair.reference)
    plug_in = winsorised_distance(pair, cuts)
    return _graded(pair, cuts, plug_in, {"plug_in": plug_in}, alpha=alpha, bands=bands)


def wasserstein_streaming(pair: StreamingNumericPair, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.wasserstein, settings.p_value_threshold
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    cuts = pair.reference.cuts
    ref_lo, ref_hi, cur_lo, cur_hi, _ = pair.cdf_bounds()
    edges = pair.reference.edges
    unit = cuts.shrink()
    # Nothing cut (a constant reference): the outer bins end at the data's extremes.
    low = cuts.low if np.isfinite(cuts.low) else min(pair.reference.low, pair.current.low)
    high = cuts.high if np.isfinite(cuts.high) else max(pair.reference.high, pair.current.high)
    # Bin k is (edges[k-1], edges[k]]; only its part inside [low, high] counts.
    left = np.clip(np.concatenate([[low], edges]), low, high) / unit
    right = np.clip(np.concatenate([edges, [high]]), low, high) / unit
    width = right - left
    largest_gap = np.maximum(ref_hi - cur_lo, cur_hi - ref_lo)
    smallest_gap = np.clip(np.maximum(ref_lo - cur_hi, cur_lo - ref_hi), 0.0, None)
    scale = cuts.scale / unit
    lower = float(np.sum(width * smallest_gap)) / scale
    upper = float(np.sum(width * largest_gap)) / scale
    return _graded(
        pair,
        cuts,
        lower,
        {"plug_in_lower": lower, "plug_in_upper": upper, "error_bound": upper - lower},
        alpha=alpha,
        bands=bands,
    )


def _graded(
    pair: NumericPair | StreamingNumericPair,
    cuts: RobustScale,
    plug_in: float,
    extra: dict[str, float],
    *,
    alpha: float,
    bands: Bands,
) -> TestResult:
    n_ref, n_cur = pair.reference.n_valid, pair.current.n_valid
    chance = wasserstein_chance(n_ref, n_cur, cuts.bridge_integral)
    significance = significance_of(pair)
    return TestResult.graded(
        METHOD,
        statistic=net_of_chance(plug_in, chance * chance, form="quadrature"),
        p_value=significance.p_value,
        bands=bands,
        alpha=alpha,
        significance_test=significance.test,
        parameters={
            "effect_size": (
                "Wasserstein-1 distance of both samples winsorised at the reference's cut "
                "points, over the scale, net of chance: sqrt(plug_in^2 - chance^2)"
            ),
            **extra,
            "chance": chance,
            "winsorised_at": (cuts.low, cuts.high),
            "normalised_by": cuts.scale_source,
            "scale": cuts.scale,
            **significance.parameters,
            "reference_size": n_ref,
            "current_size": n_cur,
        },
    )


TEST = DriftTest(
    name=METHOD,
    kinds=("numeric",),
    implementations={"exact": wasserstein_exact, "streaming": wasserstein_streaming},
    on_demand=True,
)
