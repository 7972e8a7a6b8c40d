"""Chi-squared test of homogeneity (categorical columns), and its effect size.

Both samples are treated as samples: the 2 x k table of counts over the union
of categories. The goodness-of-fit form that takes the reference proportions
as exact ignores the reference's own sampling error and, with two large
samples, flags drift far more often than the nominal rate.

Significance. Categories whose pooled count is too small for the asymptotic
test (an expected count below 5 on either side) are pooled into one "rare"
cell first; which categories those are depends only on the pooled counts, so
the test stays valid. When the table is still sparse, or small (fewer than
20,000 values), the p-value is a permutation p-value: 1,999 tables drawn with
the same margins (multivariate hypergeometric), p = (1 + #{draws at least as
extreme}) / 2,000, exact in level at every sample size; drawing stops early
once 20 draws were at least as extreme (Besag and Clifford's sequential
p-value, h / draws, equally valid), so unchanged data costs few draws.
Otherwise scipy's asymptotic ``chi2_contingency``.

Effect size of the ``chi2`` method: Cramér's V of the two distributions as if
both samples had the same size, ``sqrt(sum((p - q)^2 / (p + q)) / 2)``, in
[0, 1]. Cramér's V of the raw table shrinks when one side is much larger (a
100,000-row baseline against a 1,000-row window), so it is no effect size for
monitoring. Its bands (0.16 / 0.22) are PSI's 0.1 / 0.2 by the local relation
PSI ~ 4 V^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mlcore.drift._common import CategoricalInput, DriftTest, categorical_pair, untestable
from mlcore.drift.pairs import CategoricalPair
from mlcore.drift.results import TestResult
from mlcore.settings import Bands, DriftSettings

METHOD = "chi2"
DEFAULT_BANDS = Bands(moderate=0.16, major=0.22)
PERMUTATIONS = 1999
# Besag and Clifford's sequential stop: after this many draws at least as extreme, p = h / draws.
SEQUENTIAL_STOP = 20
SEQUENTIAL_BATCH = 100
# Below this many values in the table the permutation p-value is used even when dense.
_PERMUTATION_BELOW = 20_000
_MIN_EXPECTED = 5.0
_DRAWS_PER_BATCH_CELLS = 2_000_000


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


def chi2_test(pair: CategoricalPair, settings: DriftSettings) -> TestResult:
    return chi2_graded(pair, alpha=settings.p_value_threshold, bands=settings.bands.chi2)


def chi2_graded(pair: CategoricalPair, *, alpha: float, bands: Bands) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, bands, alpha, pair)
    result = homogeneity_test(pair)
    table = pair.table
    ref, cur = table.proportions()
    total = ref + cur
    nonzero = total > 0
    v_balanced = math.sqrt(float(np.sum((ref[nonzero] - cur[nonzero]) ** 2 / total[nonzero])) / 2)
    n_total = int(table.reference.sum() + table.current.sum())
    raw_v = math.sqrt(result.statistic / n_total) if n_total and len(ref) > 1 else 0.0
    return TestResult.graded(
        METHOD,
        statistic=v_balanced,
        p_value=result.p_value,
        bands=bands,
        alpha=alpha,
        significance_test="chi2",
        parameters={
            "test": "homogeneity (2 x k contingency table)",
            "effect_size": "Cramér's V of the two distributions at equal sample sizes",
            "chi2_statistic": result.statistic,
            "degrees_of_freedom": result.dof,
            "p_value_method": result.method,
            "cells_tested": result.cells_tested,
            # scipy applies Yates' continuity correction when there is one degree of freedom.
            "yates_correction": result.dof == 1,
            "categories": len(ref),
            "cramers_v_of_the_table": raw_v,
            "reference_size": pair.reference.n_valid,
            "current_size": pair.current.n_valid,
        },
    )


def homogeneity_test(pair: CategoricalPair) -> Homogeneity:
    """The chi-squared homogeneity test behind every categorical grade (see the docstring);
    computed once per pair."""
    cached: Homogeneity | None = pair.__dict__.get("_homogeneity")
    if cached is None:
        cached = pair.__dict__["_homogeneity"] = _homogeneity(pair)
    return cached


def _homogeneity(pair: CategoricalPair) -> Homogeneity:
    reference = pair.table.reference.astype(np.int64)
    current = pair.table.current.astype(np.int64)
    if reference.shape[0] < 2:
        # One category on both sides: identical distributions, nothing to test.
        return Homogeneity(0.0, 1.0, 0, "single category", 1)
    statistic = float(stats.chi2_contingency(np.vstack([reference, current])).statistic)
    ref_cells, cur_cells = _pool_rare_cells(reference, current)
    dof = ref_cells.shape[0] - 1
    if dof < 1:
        return Homogeneity(statistic, 1.0, 0, "all categories rare: nothing to test", 1)
    n_ref, n_cur = int(ref_cells.sum()), int(cur_cells.sum())
    pooled = ref_cells + cur_cells
    expected_min = float(pooled.min()) * min(n_ref, n_cur) / (n_ref + n_cur)
    if n_ref + n_cur >= _PERMUTATION_BELOW and expected_min >= _MIN_EXPECTED:
        p_value = float(stats.chi2_contingency(np.vstack([ref_cells, cur_cells])).pvalue)
        method = "asymptotic"
    else:
        p_value = _permutation_p_value(ref_cells, cur_cells)
        method = f"permutation ({PERMUTATIONS} tables with the same margins)"
    return Homogeneity(statistic, p_value, dof, method, ref_cells.shape[0])


def _pool_rare_cells(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Categories too rare for the asymptotic test, pooled into one cell (by pooled count only)."""
    n_ref, n_cur = int(reference.sum()), int(current.sum())
    pooled = reference + current
    smaller = min(n_ref, n_cur)
    rare = pooled * smaller / (n_ref + n_cur) < _MIN_EXPECTED
    if rare.sum() <= 1:
        return reference, current
    return (
        np.append(reference[~rare], reference[rare].sum()),
        np.append(current[~rare], current[rare].sum()),
    )


def _chi2_statistics(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Pearson's statistic (no continuity correction) of each row of tables (last axis: cells)."""
    pooled = reference + current
    total = pooled.sum(axis=-1, keepdims=True)
    expected_ref = pooled * reference.sum(axis=-1, keepdims=True) / total
    expected_cur = pooled * current.sum(axis=-1, keepdims=True) / total
    return np.asarray(
        np.sum((reference - expected_ref) ** 2 / expected_ref, axis=-1)
        + np.sum((current - expected_cur) ** 2 / expected_cur, axis=-1),
        dtype=np.float64,
    )


def _permutation_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """P-value of Pearson's statistic over tables with the same margins (seeded: reproducible)."""
    pooled = reference + current
    n_cur = int(current.sum())
    observed = float(_chi2_statistics(reference[None, :], current[None, :])[0])
    rng = np.random.default_rng(0)
    batch = min(SEQUENTIAL_BATCH, max(1, _DRAWS_PER_BATCH_CELLS // pooled.shape[0]))
    at_least, drawn = 0, 0
    while drawn < PERMUTATIONS:
        size = min(batch, PERMUTATIONS - drawn)
        draws = rng.multivariate_hypergeometric(pooled, n_cur, size=size, method="marginals")
        simulated = _chi2_statistics(pooled[None, :] - draws, draws)
        # A relative tolerance so that ties with the observed table count as "as extreme".
        at_least += int(np.count_nonzero(simulated >= observed * (1 - 1e-9)))
        drawn += size
        if at_least >= SEQUENTIAL_STOP:
            return float(at_least / drawn)
    return float((1 + at_least) / (1 + PERMUTATIONS))


TEST = DriftTest(
    name=METHOD,
    kinds=("categorical",),
    implementations={"exact": chi2_test, "streaming": chi2_test},
)
