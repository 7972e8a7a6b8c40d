"""Kullback-Leibler divergence and Jensen-Shannon distance on the same bins as PSI.

Jensen-Shannon distance (the square root of the JS divergence) uses log base 2,
so it lies in [0, 1], and needs no smoothing: it is finite for empty bins. KL
divergence (reference || current) uses the natural log and the same recorded
additive smoothing as PSI, without which one empty current bin makes it
infinite.

Bands: for small changes every such divergence is a multiple of the same
chi-squared distance, with PSI ~ 2 KL ~ 8 ln(2) JS^2. PSI's 0.1 / 0.2 become
0.05 / 0.1 for KL and 0.13 / 0.19 for the JS distance. Both are graded net of
chance (``chance``): KL minus its mean over same-distribution tables, the JS
distance as sqrt(JS^2 - mean of JS^2 there); the plug-in values are recorded.
The significance test is the column's (``significance``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

from mlcore.drift._common import DriftTest, NumericInput, numeric_pair, untestable
from mlcore.drift.chance import net_of_chance, null_mean
from mlcore.drift.pairs import PSEUDO_COUNT, BinnablePair
from mlcore.drift.psi import binning_parameters
from mlcore.drift.results import TestResult
from mlcore.drift.significance import significance_of
from mlcore.drift.summaries import FloatArray
from mlcore.settings import Bands, DriftSettings

JS_METHOD = "jensenshannon"
KL_METHOD = "kl"
JS_LOG_BASE = 2.0
JS_BANDS = Bands(moderate=0.13, major=0.19)
KL_BANDS = Bands(moderate=0.05, major=0.1)


def jensenshannon_drift(
    reference: NumericInput,
    current: NumericInput,
    *,
    alpha: float = 0.05,
    bands: Bands = JS_BANDS,
    bins: int = 10,
) -> TestResult:
    """Jensen-Shannon distance (base 2) between the binned numeric samples."""
    return jensenshannon_graded(
        numeric_pair(reference, current), alpha=alpha, bands=bands, bins=bins
    )


def kl_drift(
    reference: NumericInput,
    current: NumericInput,
    *,
    alpha: float = 0.05,
    bands: Bands = KL_BANDS,
    bins: int = 10,
) -> TestResult:
    """KL divergence (natural log) of the binned reference from the binned current sample."""
    return kl_graded(numeric_pair(reference, current), alpha=alpha, bands=bands, bins=bins)


def jensenshannon_test(pair: BinnablePair, settings: DriftSettings) -> TestResult:
    return jensenshannon_graded(
        pair,
        alpha=settings.p_value_threshold,
        bands=settings.bands.jensenshannon,
        bins=settings.psi_bins,
    )


def kl_test(pair: BinnablePair, settings: DriftSettings) -> TestResult:
    return kl_graded(
        pair, alpha=settings.p_value_threshold, bands=settings.bands.kl, bins=settings.psi_bins
    )


def jensenshannon_graded(
    pair: BinnablePair, *, alpha: float, bands: Bands, bins: int
) -> TestResult:
    if not pair.testable:
        return untestable(JS_METHOD, bands, alpha, pair)
    counts = pair.binned(bins)
    plug_in = float(js_of(counts.reference, counts.current)[()])
    chance = null_mean(pair, bins, lambda r, c: js_of(r, c) ** 2)
    parameters = binning_parameters(pair, bins)
    parameters["smoothing"] = {"method": "none", "reason": "finite for empty bins"}
    significance = significance_of(pair)
    return TestResult.graded(
        JS_METHOD,
        statistic=net_of_chance(plug_in, chance, form="quadrature"),
        p_value=significance.p_value,
        bands=bands,
        alpha=alpha,
        significance_test=significance.test,
        parameters={
            **parameters,
            **significance.parameters,
            "log_base": JS_LOG_BASE,
            "form": "distance (sqrt of divergence)",
            "effect_size": "JS distance net of chance: sqrt(plug_in^2 - chance)",
            "plug_in": plug_in,
            "chance": chance,
        },
    )


def kl_graded(pair: BinnablePair, *, alpha: float, bands: Bands, bins: int) -> TestResult:
    if not pair.testable:
        return untestable(KL_METHOD, bands, alpha, pair)
    counts = pair.binned(bins)
    plug_in = float(kl_of(counts.reference, counts.current)[()])
    chance = null_mean(pair, bins, kl_of)
    significance = significance_of(pair)
    return TestResult.graded(
        KL_METHOD,
        statistic=net_of_chance(plug_in, chance, form="linear"),
        p_value=significance.p_value,
        bands=bands,
        alpha=alpha,
        significance_test=significance.test,
        parameters={
            **binning_parameters(pair, bins),
            **significance.parameters,
            "log_base": "e",
            "direction": "KL(reference || current)",
            "effect_size": "KL net of chance: plug_in - chance",
            "plug_in": plug_in,
            "chance": chance,
        },
    )


def js_of(reference: npt.ArrayLike, current: npt.ArrayLike) -> FloatArray:
    """Jensen-Shannon distance (base 2) of count tables (last axis: bins), vectorised."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    found = distance.jensenshannon(ref, cur, base=JS_LOG_BASE, axis=-1)
    return np.asarray(found, dtype=np.float64)


def kl_of(reference: npt.ArrayLike, current: npt.ArrayLike) -> FloatArray:
    """KL(reference || current) of count tables, smoothed as PSI is; vectorised."""
    ref = np.asarray(reference, dtype=np.float64) + PSEUDO_COUNT
    cur = np.asarray(current, dtype=np.float64) + PSEUDO_COUNT
    return np.asarray(stats.entropy(ref, cur, axis=-1), dtype=np.float64)


JENSENSHANNON_TEST = DriftTest(
    name=JS_METHOD,
    kinds=("numeric", "categorical"),
    implementations={"exact": jensenshannon_test, "streaming": jensenshannon_test},
)
KL_TEST = DriftTest(
    name=KL_METHOD,
    kinds=("numeric", "categorical"),
    implementations={"exact": kl_test, "streaming": kl_test},
)
