"""Wasserstein-1 distance divided by the reference's standard deviation (numeric columns).

Dividing by the reference spread makes one threshold usable across columns of
different units: 0.1 means the current distribution moved, on average, a tenth
of a reference standard deviation. A constant reference has no spread; the raw
distance is then reported (scale 1) and the result says so.
"""

from __future__ import annotations

import numpy as np

from mlcore.drift._common import NumericInput, numeric_pair, untestable
from mlcore.drift.pairs import NumericPair
from mlcore.drift.profiles import profile
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "wasserstein"


def wasserstein_drift(
    reference: NumericInput, current: NumericInput, *, threshold: float = 0.1
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
    return wasserstein_test_pair(numeric_pair(reference, current), threshold=threshold)


def wasserstein_test(pair: NumericPair, settings: DriftSettings) -> TestResult:
    return wasserstein_test_pair(pair, threshold=settings.distance_threshold)


def wasserstein_distance_of(pair: NumericPair) -> float:
    """The raw Wasserstein-1 distance, equal to ``scipy.stats.wasserstein_distance``."""
    merged, gap = pair.ecdf_gap
    return float(np.sum(np.multiply(np.abs(gap[:-1]), np.diff(merged))))


def wasserstein_test_pair(pair: NumericPair, *, threshold: float) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, threshold, pair)
    raw = wasserstein_distance_of(pair)
    reference_std = profile(pair.reference).std_dev or 0.0  # cached with the baseline
    if reference_std > 0:
        scale, scale_source = reference_std, "reference standard deviation (ddof=0)"
    else:
        scale, scale_source = 1.0, "1 (the reference is constant, so it has no spread)"
    statistic = raw / scale
    return TestResult(
        method=METHOD,
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=statistic >= threshold,
        parameters={
            "distance": raw,
            "normalised_by": scale_source,
            "scale": scale,
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
    )
