"""Out-of-range values: current values outside the reference's [min, max] (sentinels, units).

A share of -999 placeholders, or a column switching from euros to cents,
puts values where the reference never had any. If both samples come from one
continuous distribution, the number of current values outside the
reference's range follows a beta-binomial law, BetaBinomial(n_current, 2,
n_reference - 1) (the mass outside the extremes of n values is Beta(2, n - 1)),
with mean share 2 / (n_reference + 1); ties only make leaving the range
rarer, so the test stays valid for discrete data. The effect size is the
observed share minus that expected share, graded on ``bands.out_of_range``.
Model Monitor has no such check; the violation is ``out_of_range_check``.
"""

from __future__ import annotations

from typing import Any

from scipy import stats

from mlcore.drift._common import DriftTest
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "out_of_range"


def out_of_range_check(pair: Any, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.out_of_range, settings.p_value_threshold
    n_ref, n_cur = pair.reference.n_valid, pair.current.n_valid
    below, above = pair.out_of_range
    if n_ref < 2 or n_cur == 0:
        return TestResult.insufficient(
            METHOD,
            bands=bands,
            alpha=alpha,
            parameters={"reference_size": n_ref, "current_size": n_cur},
            note="needs at least two reference values and one current value",
        )
    outside = below + above
    expected = 2 / (n_ref + 1)
    p_value = 1.0 if outside == 0 else float(stats.betabinom.sf(outside - 1, n_cur, 2, n_ref - 1))
    return TestResult.graded(
        METHOD,
        statistic=outside / n_cur - expected,
        p_value=p_value,
        bands=bands,
        alpha=alpha,
        significance_test="beta-binomial (exceedances of the reference range)",
        parameters={
            "effect_size": "share outside the reference range minus the share chance gives",
            "share_outside": outside / n_cur,
            "expected_share": expected,
            "below_reference_min": below,
            "above_reference_max": above,
            "reference_size": n_ref,
            "current_size": n_cur,
        },
    )


TEST = DriftTest(
    name=METHOD,
    kinds=("numeric",),
    implementations={"exact": out_of_range_check, "streaming": out_of_range_check},
)
