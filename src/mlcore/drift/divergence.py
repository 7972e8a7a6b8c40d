"""Kullback-Leibler divergence and Jensen-Shannon distance on the same bins as PSI.

Jensen-Shannon distance (the square root of the JS divergence) uses log base 2,
so it lies in [0, 1], and needs no smoothing: it is finite for empty bins. KL
divergence (reference || current) uses the natural log and the same recorded
additive smoothing as PSI, without which one empty current bin makes it
infinite.
"""

from __future__ import annotations

from scipy import stats
from scipy.spatial import distance

from mlcore.drift._common import NumericInput, numeric_pair, untestable
from mlcore.drift.pairs import PSEUDO_COUNT, BinnablePair
from mlcore.drift.psi import binning_parameters
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

JS_METHOD = "jensenshannon"
KL_METHOD = "kl"
JS_LOG_BASE = 2.0


def jensenshannon_drift(
    reference: NumericInput, current: NumericInput, *, threshold: float = 0.1, bins: int = 10
) -> TestResult:
    """Jensen-Shannon distance (base 2) between the binned numeric samples."""
    return jensenshannon_test_pair(numeric_pair(reference, current), threshold=threshold, bins=bins)


def kl_drift(
    reference: NumericInput, current: NumericInput, *, threshold: float = 0.1, bins: int = 10
) -> TestResult:
    """KL divergence (natural log) of the binned reference from the binned current sample."""
    return kl_test_pair(numeric_pair(reference, current), threshold=threshold, bins=bins)


def jensenshannon_test(pair: BinnablePair, settings: DriftSettings) -> TestResult:
    return jensenshannon_test_pair(
        pair, threshold=settings.distance_threshold, bins=settings.psi_bins
    )


def kl_test(pair: BinnablePair, settings: DriftSettings) -> TestResult:
    return kl_test_pair(pair, threshold=settings.distance_threshold, bins=settings.psi_bins)


def jensenshannon_test_pair(pair: BinnablePair, *, threshold: float, bins: int) -> TestResult:
    if not pair.testable:
        return untestable(JS_METHOD, threshold, pair)
    ref, cur = pair.binned(bins).proportions()
    statistic = float(distance.jensenshannon(ref, cur, base=JS_LOG_BASE))
    parameters = binning_parameters(pair, bins)
    parameters["smoothing"] = {"method": "none", "reason": "finite for empty bins"}
    return TestResult(
        method=JS_METHOD,
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=statistic >= threshold,
        parameters={**parameters, "log_base": JS_LOG_BASE, "form": "distance (sqrt of divergence)"},
    )


def kl_test_pair(pair: BinnablePair, *, threshold: float, bins: int) -> TestResult:
    if not pair.testable:
        return untestable(KL_METHOD, threshold, pair)
    ref, cur = pair.binned(bins).proportions(pseudo_count=PSEUDO_COUNT)
    statistic = float(stats.entropy(ref, cur))
    return TestResult(
        method=KL_METHOD,
        statistic=statistic,
        p_value=None,
        threshold=threshold,
        drifted=statistic >= threshold,
        parameters={
            **binning_parameters(pair, bins),
            "log_base": "e",
            "direction": "KL(reference || current)",
        },
    )
