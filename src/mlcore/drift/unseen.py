"""Unseen values: the share of current values in categories the reference never showed.

New values count in the verdict, but a sample never shows every category: a
column with many rare categories shows new ones in the next window by chance
alone. If both samples come from one distribution, a category whose ``c``
pooled values all land in the current sample does so with probability
``C(n_current, c) / C(n_total, c)``; the expected unseen share is the sum of
``c`` times that over the categories, divided by ``n_current``. The effect size
is the observed share minus the expected share, graded on
``bands.unseen_values``; the p-value is that of the observed unseen count
among 1,999 simulated ones (each category independently entirely current with
its probability; categories too frequent for that to matter are bounded
together; stopped early, as the chi-squared permutations are, once 20
simulated counts reached the observed one). Model Monitor reports it as ``categorical_values_check``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from mlcore.drift._common import DriftTest
from mlcore.drift.chi2 import SEQUENTIAL_BATCH, SEQUENTIAL_STOP
from mlcore.drift.pairs import CategoricalPair
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "unseen_values"
SIMULATIONS = 1999
# Categories less likely than this to be entirely current are bounded together, not simulated.
_NEGLIGIBLE = 1e-12
_CELLS_PER_BATCH = 2_000_000


def unseen_values_check(pair: CategoricalPair, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.unseen_values, settings.p_value_threshold
    n_ref, n_cur = pair.reference.n_valid, pair.current.n_valid
    if n_ref == 0 or n_cur == 0:
        return TestResult.insufficient(
            METHOD,
            bands=bands,
            alpha=alpha,
            parameters={"reference_size": n_ref, "current_size": n_cur},
            note="needs values on both sides",
        )
    table = pair.table
    pooled = (table.reference + table.current).astype(np.float64)
    unseen = int(table.current[table.reference == 0].sum())
    probability = np.exp(log_all_in_current(pooled, n_cur, n_ref + n_cur))
    expected = float(np.sum(pooled * probability))
    p_value = unseen_p_value(unseen, pooled, probability)
    return TestResult.graded(
        METHOD,
        statistic=unseen / n_cur - expected / n_cur,
        p_value=p_value,
        bands=bands,
        alpha=alpha,
        significance_test="simulated unseen count under one distribution",
        parameters={
            "effect_size": "share of values in unseen categories minus the share chance gives",
            "unseen_share": unseen / n_cur,
            "expected_share": expected / n_cur,
            "unseen_categories": len(pair.unseen_categories),
            "reference_size": n_ref,
            "current_size": n_cur,
        },
    )


def log_all_in_current(pooled: np.ndarray, n_current: int, n_total: int) -> np.ndarray:
    """log P(all ``pooled`` values of a category land in the current sample):
    log C(n_current, c) - log C(n_total, c) = log n_current!/(n_current - c)! - log n_total!/(n_total - c)!."""
    c = np.asarray(pooled, dtype=np.float64)
    fits = c <= n_current
    safe = np.where(fits, c, 0.0)
    value = (
        special.gammaln(n_current + 1)
        - special.gammaln(n_current - safe + 1)
        - special.gammaln(n_total + 1)
        + special.gammaln(n_total - safe + 1)
    )
    return np.where(fits, value, -np.inf)


def unseen_p_value(observed: int, pooled: np.ndarray, probability: np.ndarray) -> float:
    """P(unseen count >= observed) if the samples share one distribution (seeded simulation)."""
    if observed == 0:
        return 1.0
    relevant = probability >= _NEGLIGIBLE
    # Union bound for the categories not simulated: any of them entirely current at all.
    bound = float(np.sum(probability[~relevant]))
    weights, chances = pooled[relevant], probability[relevant]
    if weights.size == 0:
        return min(1.0, bound)
    rng = np.random.default_rng(0)
    batch = min(SEQUENTIAL_BATCH, max(1, _CELLS_PER_BATCH // weights.size))
    at_least, drawn = 0, 0
    while drawn < SIMULATIONS:
        size = min(batch, SIMULATIONS - drawn)
        counts = (rng.random((size, weights.size)) < chances) @ weights
        at_least += int(np.count_nonzero(counts >= observed))
        drawn += size
        if at_least >= SEQUENTIAL_STOP:  # Besag and Clifford's sequential p-value
            return min(1.0, at_least / drawn + bound)
    return min(1.0, (1 + at_least) / (1 + SIMULATIONS) + bound)


TEST = DriftTest(
    name=METHOD,
    kinds=("categorical",),
    implementations={"exact": unseen_values_check, "streaming": unseen_values_check},
)
