"""Wasserstein-1 distance divided by the reference's standard deviation (numeric columns).

Dividing by the reference spread makes one threshold usable across columns of
different units: 0.1 means the current distribution moved, on average, a tenth
of a reference standard deviation. This is the default numeric method: it
grows with every kind of change (location, spread, a share of far-away
sentinel values), where KS's statistic saturates at the changed share. Bands:
0.05 moderate, 0.1 major (the threshold Evidently uses for this distance). A
constant reference has no spread; the raw distance is then reported (scale 1)
and the result says so. The significance test is KS (``significance``).

Streaming mode bounds the integral of the CDF gap over each grid bin and
reports the midpoint of the bounds, with the half-width as ``error_bound``.
"""

from __future__ import annotations

import numpy as np

from mlcore.drift._common import DriftTest, NumericInput, numeric_pair, untestable
from mlcore.drift.pairs import NumericPair
from mlcore.drift.results import TestResult
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
    """Normalised Wasserstein distance of ``current`` from ``reference``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> ref = rng.normal(0, 2, size=5000)
    >>> round(wasserstein_drift(ref, ref + 1.0).statistic, 2)
    0.5
    """
    pair = numeric_pair(reference, current)
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    return _graded(pair, wasserstein_distance_of(pair), {}, alpha=alpha, bands=bands)


def wasserstein_distance_of(pair: NumericPair) -> float:
    """The raw Wasserstein-1 distance, equal to ``scipy.stats.wasserstein_distance``."""
    merged, gap = pair.ecdf_gap
    return float(np.sum(np.multiply(np.abs(gap[:-1]), np.diff(merged))))


def wasserstein_exact(pair: NumericPair, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.wasserstein, settings.p_value_threshold
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    return _graded(pair, wasserstein_distance_of(pair), {}, alpha=alpha, bands=bands)


def wasserstein_streaming(pair: StreamingNumericPair, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.wasserstein, settings.p_value_threshold
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    ref_lo, ref_hi, cur_lo, cur_hi, _ = pair.cdf_bounds()
    low = min(pair.reference.low, pair.current.low)
    high = max(pair.reference.high, pair.current.high)
    edges = pair.reference.edges
    left = np.concatenate([[low], edges])
    right = np.concatenate([edges, [high]])
    width = np.clip(np.minimum(right, high) - np.maximum(left, low), 0.0, None)
    largest_gap = np.maximum(ref_hi - cur_lo, cur_hi - ref_lo)
    smallest_gap = np.clip(np.maximum(ref_lo - cur_hi, cur_lo - ref_hi), 0.0, None)
    upper, lower = float(np.sum(width * largest_gap)), float(np.sum(width * smallest_gap))
    scale = _scale(pair.reference_std)[0]
    return _graded(
        pair,
        (upper + lower) / 2,
        {"error_bound": (upper - lower) / 2 / scale},
        alpha=alpha,
        bands=bands,
    )


def _scale(reference_std: float) -> tuple[float, str]:
    if reference_std > 0:
        return reference_std, "reference standard deviation (ddof=0)"
    return 1.0, "1 (the reference is constant, so it has no spread)"


def _graded(
    pair: NumericPair | StreamingNumericPair,
    distance: float,
    extra: dict[str, float],
    *,
    alpha: float,
    bands: Bands,
) -> TestResult:
    scale, scale_source = _scale(pair.reference_std)
    significance = significance_of(pair)
    return TestResult.graded(
        METHOD,
        statistic=distance / scale,
        p_value=significance.p_value,
        bands=bands,
        alpha=alpha,
        significance_test=significance.test,
        parameters={
            "distance": distance,
            "normalised_by": scale_source,
            "scale": scale,
            **extra,
            **significance.parameters,
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
    )


# Needs a full merge of both samples (about 3x the cost of all other tests together on a large
# column) in exact mode: it runs only when it is the configured method.
TEST = DriftTest(
    name=METHOD,
    kinds=("numeric",),
    implementations={"exact": wasserstein_exact, "streaming": wasserstein_streaming},
    on_demand=True,
)
