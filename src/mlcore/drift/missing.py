"""The missing-value-rate check: a column whose only change is more missing values still drifts.

Distribution tests drop missing values, so they cannot see a column going from
2% to 10% missing. This check grades the rise of the rate (absolute, current
minus reference) on its bands, once Fisher's exact test (one-sided: the
current side holds more missing values than chance gives) rejects. Infinite
values and values that are not numbers count as missing here because the
distribution tests drop them too. Model Monitor reports it as
``completeness_check``.
"""

from __future__ import annotations

from typing import Any

from scipy import stats

from mlcore.drift._common import DriftTest
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "missing_rate"


def missing_rate_check(pair: Any, settings: DriftSettings) -> TestResult:
    """Grade the rise of the missing-value rate of ``pair.current`` over ``pair.reference``."""
    reference, current = pair.reference, pair.current
    ref_missing = reference.n_total - reference.n_valid
    cur_missing = current.n_total - current.n_valid
    ref_rate = ref_missing / reference.n_total if reference.n_total else 0.0
    cur_rate = cur_missing / current.n_total if current.n_total else 0.0
    total = reference.n_total + current.n_total
    if cur_missing == 0 or total == 0:
        p_value = 1.0
    else:
        # P(at least cur_missing of the missing values land in the current sample).
        p_value = float(
            stats.hypergeom.sf(cur_missing - 1, total, ref_missing + cur_missing, current.n_total)
        )
    return TestResult.graded(
        METHOD,
        statistic=cur_rate - ref_rate,
        p_value=p_value,
        bands=settings.bands.missing_rate,
        alpha=settings.p_value_threshold,
        significance_test="fisher_exact (one-sided)",
        parameters={
            "effect_size": "current missing rate minus reference missing rate",
            "reference_rate": ref_rate,
            "current_rate": cur_rate,
            "reference_size": reference.n_total,
            "current_size": current.n_total,
        },
    )


TEST = DriftTest(
    name=METHOD,
    kinds=("numeric", "categorical"),
    implementations={"exact": missing_rate_check, "streaming": missing_rate_check},
)
