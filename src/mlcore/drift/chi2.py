"""Chi-squared test of homogeneity (categorical columns), and its effect size.

Both samples are treated as samples: the 2 x k table of counts over the
column's bins (the reference's categories with enough values, plus "other":
``pairs``). The goodness-of-fit form that takes the reference proportions as
exact ignores the reference's own sampling error and, with two large samples,
flags drift far more often than the nominal rate.

Significance. Cells too small for the asymptotic test (an expected count
below 5 on either side, Cochran's rule) are pooled into one cell, and while
that cell is still too small it is merged with the next smallest one; which
cells those are depends only on the pooled counts, so the test stays valid.
Every table is then dense enough for scipy's asymptotic ``chi2_contingency``
(with Yates' correction at one degree of freedom), whose p-value reaches any
level a correction across columns asks for: a permutation p-value of B draws
cannot go below 1 / (B + 1), which left corrected categorical columns unable to
ever drift.

Effect size of the ``chi2`` method: Cramér's V of the two distributions as if
both samples had the same size, ``sqrt(sum((p - q)^2 / (p + q)) / 2)``, in
[0, 1], graded net of chance (``chance``: sqrt(V^2 - mean V^2 over
same-distribution tables)). Cramér's V of the raw table shrinks when one side
is much larger (a 100,000-row baseline against a 1,000-row window), so it is no
effect size for monitoring. Its bands (0.16 / 0.22) are PSI's 0.1 / 0.2 by the
local relation PSI ~ 4 V^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import stats

from mlcore.drift._common import CategoricalInput, DriftTest, categorical_pair, untestable
from mlcore.drift.chance import net_of_chance, null_mean
from mlcore.drift.pairs import CategoricalComparison
from mlcore.drift.results import TestResult
from mlcore.drift.summaries import FloatArray
from mlcore.settings import Bands, DriftSettings

METHOD = "chi2"
DEFAULT_BANDS = Bands(moderate=0.16, major=0.22)
_MIN_EXPECTED = 5.0
# Categorical pairs bin by category whatever the bin count: one key for their null tables.
_CATEGORY_BINS = 0


@dataclass(frozen=True)
class Homogeneity:
    statistic: float  # scipy's chi2_contingency statistic on the full table
    p_value: float
    dof: int
    method: str
    cells_tested: int


def chi2_drift(
    reference: CategoricalInput,
    current: CategoricalInput,
    *,
    alpha: float = 0.05,
    bands: Bands = DEFAULT_BANDS,
) -> TestResult:
    """Chi-squared homogeneity test of ``current`` against ``reference``, graded on Cramér's V.

    Examples
    --------
    >>> result = chi2_drift(["a"] * 500 + ["b"] * 500, ["a"] * 800 + ["b"] * 200)
    >>> result.grade
    'major'
    """
    return chi2_graded(categorical_pair(reference, current), alpha=alpha, bands=bands)


def chi2_test(pair: CategoricalComparison, settings: DriftSettings) -> TestResult:
    return chi2_graded(pair, alpha=settings.p_value_threshold, bands=settings.bands.chi2)


def chi2_graded(pair: CategoricalComparison, *, alpha: float, bands: Bands) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    result = homogeneity_test(pair)
    table = pair.table
    plug_in = float(balanced_v(table.reference, table.current)[()])
    chance = null_mean(pair, _CATEGORY_BINS, lambda r, c: balanced_v(r, c) ** 2)
    n_total = int(table.reference.sum() + table.current.sum())
    raw_v = math.sqrt(result.statistic / n_total) if n_total and len(table.labels) > 1 else 0.0
    return TestResult.graded(
        METHOD,
        statistic=net_of_chance(plug_in, chance, form="quadrature"),
        p_value=result.p_value,
        bands=bands,
        alpha=alpha,
        significance_test="chi2",
        parameters={
            "test": "homogeneity (2 x k contingency table)",
            "effect_size": (
                "Cramér's V of the two distributions at equal sample sizes, net of chance: "
                "sqrt(plug_in^2 - chance)"
            ),
            "plug_in": plug_in,
            "chance": chance,
            "chi2_statistic": result.statistic,
            "degrees_of_freedom": result.dof,
            "p_value_method": result.method,
            "cells_tested": result.cells_tested,
            # scipy applies Yates' continuity correction when there is one degree of freedom.
            "yates_correction": result.dof == 1,
            "categories": len(table.labels),
            "cramers_v_of_the_table": raw_v,
            "reference_size": pair.side.n_valid,
            "current_size": pair.current_valid,
        },
    )


def balanced_v(reference: npt.ArrayLike, current: npt.ArrayLike) -> FloatArray:
    """Cramér's V at equal sample sizes of count tables (last axis: bins), vectorised."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref = ref / ref.sum(axis=-1, keepdims=True)
    cur = cur / cur.sum(axis=-1, keepdims=True)
    total = ref + cur
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(total > 0, (ref - cur) ** 2 / total, 0.0)
    return np.asarray(np.sqrt(np.sum(terms, axis=-1) / 2), dtype=np.float64)


def homogeneity_test(pair: CategoricalComparison) -> Homogeneity:
    """The chi-squared homogeneity test behind every categorical grade (see the docstring);
    computed once per pair."""
    cached: Homogeneity | None = pair.__dict__.get("_homogeneity")
    if cached is None:
        cached = pair.__dict__["_homogeneity"] = _homogeneity(pair)
    return cached


def _homogeneity(pair: CategoricalComparison) -> Homogeneity:
    reference = pair.table.reference.astype(np.int64)
    current = pair.table.current.astype(np.int64)
    keep = (reference + current) > 0
    reference, current = reference[keep], current[keep]
    if reference.shape[0] < 2:
        # One category on both sides: identical distributions, nothing to test.
        return Homogeneity(0.0, 1.0, 0, "single category", 1)
    statistic = float(stats.chi2_contingency(np.vstack([reference, current])).statistic)
    ref_cells, cur_cells = dense_cells(reference, current)
    dof = ref_cells.shape[0] - 1
    if dof < 1:
        return Homogeneity(statistic, 1.0, 0, "all categories rare: nothing to test", 1)
    p_value = float(stats.chi2_contingency(np.vstack([ref_cells, cur_cells])).pvalue)
    method = "asymptotic, every expected count at least 5"
    return Homogeneity(statistic, p_value, dof, method, ref_cells.shape[0])


def dense_cells(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cells with an expected count of at least 5 on both sides: the rare ones pooled into one
    cell, merged with the next smallest while still too small (by pooled counts only)."""
    n_ref, n_cur = int(reference.sum()), int(current.sum())
    share = min(n_ref, n_cur) / (n_ref + n_cur)
    pooled = reference + current
    rare = pooled * share < _MIN_EXPECTED
    if rare.sum() > 1:
        reference = np.append(reference[~rare], reference[rare].sum())
        current = np.append(current[~rare], current[rare].sum())
    order = np.argsort(reference + current, kind="stable")
    reference, current = reference[order], current[order]
    while reference.shape[0] > 1 and (reference[0] + current[0]) * share < _MIN_EXPECTED:
        merged_ref, merged_cur = reference[0] + reference[1], current[0] + current[1]
        reference, current = reference[1:].copy(), current[1:].copy()
        reference[0], current[0] = merged_ref, merged_cur
        order = np.argsort(reference + current, kind="stable")
        reference, current = reference[order], current[order]
    return reference, current


TEST = DriftTest(
    name=METHOD,
    kinds=("categorical",),
    implementations={"exact": chi2_test, "streaming": chi2_test},
)
