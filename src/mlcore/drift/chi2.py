"""Chi-squared test of homogeneity on the reference-vs-current contingency table (categorical).

Both samples are treated as samples: the 2 x k table of counts over the union
of categories goes to ``scipy.stats.chi2_contingency``. The goodness-of-fit form
that takes the reference proportions as exact ignores the reference's own
sampling error and, with two large samples, flags drift far more often than
the nominal rate. A category seen only in the current data is simply a column
with a zero reference count.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from mlcore.drift._common import CategoricalInput, categorical_pair, untestable
from mlcore.drift.pairs import CategoricalPair
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "chi2"


def chi2_drift(
    reference: CategoricalInput, current: CategoricalInput, *, threshold: float = 0.05
) -> TestResult:
    """Chi-squared homogeneity test of ``current`` against ``reference``.

    Examples
    --------
    >>> result = chi2_drift(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    >>> result.drifted
    True
    """
    return chi2_test_pair(categorical_pair(reference, current), threshold=threshold)


def chi2_test(pair: CategoricalPair, settings: DriftSettings) -> TestResult:
    return chi2_test_pair(pair, threshold=settings.p_value_threshold)


def chi2_test_pair(pair: CategoricalPair, *, threshold: float) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, threshold, pair)
    table = np.vstack([pair.table.reference, pair.table.current])
    n_categories = table.shape[1]
    if n_categories == 1:
        # One category on both sides: identical distributions, nothing to test.
        statistic, p_value, dof = 0.0, 1.0, 0
    else:
        result = stats.chi2_contingency(table)
        statistic, p_value, dof = float(result.statistic), float(result.pvalue), int(result.dof)
    total = int(table.sum())
    cramers_v = math.sqrt(statistic / total) if total and n_categories > 1 else 0.0
    return TestResult(
        method=METHOD,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        drifted=p_value < threshold,
        parameters={
            "test": "homogeneity (2 x k contingency table)",
            "degrees_of_freedom": dof,
            # scipy applies Yates' continuity correction when there is one degree of freedom.
            "yates_correction": dof == 1,
            "categories": n_categories,
            "cramers_v": cramers_v,
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
    )
