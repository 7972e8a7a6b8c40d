"""Unseen values: the share of current values in categories the reference never showed.

New values count in the verdict, but a sample never shows every category: a
column with many rare categories shows new ones in the next window by chance
alone. If both samples come from one distribution, a category whose ``c``
pooled values all land in the current sample does so with probability
``C(n_current, c) / C(n_total, c)``; the expected unseen share is the sum of
``c`` times that over the categories, divided by ``n_current``. The effect size
is the observed share minus the expected share, graded on
``bands.unseen_values``. Categories are grouped by pooled count, so a column of
a million one-off values (an identifier) costs as little as one of ten.

p-value: the observed unseen count against the sum, over the groups, of ``c``
times a binomial count of categories entirely current (each category
independently, with its probability): 1,999 simulated sums, stopped early as
Besag and Clifford's sequential p-value once 20 reached the observed count.
When none does, the p-value is the Chernoff bound of that sum's upper tail
(exp of min over t of log E[e^(tS)] - t s), capped at the simulation's floor
1/2000: it can reach any level a correction asks for, and is a valid upper
bound of the tail probability, so the test keeps its level.

From a sketch (``pairs.UnseenProfile``), the chances are bounded from above
category by category, which makes the expected share larger and the p-value
larger: a sketch never grades this check above the exact engine. The
distinct-count sketch's upper bound tightens the expected count of the unseen
values the frequent-items sketch did not keep. Model Monitor reports this check
as ``categorical_values_check``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

from mlcore.drift._common import DriftTest
from mlcore.drift.pairs import CategoricalComparison
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "unseen_values"
SIMULATIONS = 1999
SEQUENTIAL_STOP = 20
_BATCH = 200
# Groups less likely than this to be entirely current are bounded together, not simulated.
_NEGLIGIBLE = 1e-12


def unseen_values_check(pair: CategoricalComparison, settings: DriftSettings) -> TestResult:
    bands, alpha = settings.bands.unseen_values, settings.p_value_threshold
    n_ref, n_cur = pair.side.n_valid, pair.current_valid
    if n_ref == 0 or n_cur == 0:
        return TestResult.insufficient(
            METHOD,
            bands=bands,
            alpha=alpha,
            parameters={"reference_size": n_ref, "current_size": n_cur},
            note="needs values on both sides",
        )
    found = pair.unseen_profile()
    chance = np.exp(log_all_in_current(found.pooled_counts, n_cur, n_ref + n_cur))
    expected = float(np.sum(found.pooled_counts * found.categories * chance))
    if not found.exact and found.tail_values:
        # The unseen values the frequent-items sketch dropped were counted as one-value
        # categories; with at most ``tail_categories_at_most`` categories among them, fewer of
        # them can be one-value categories: the smaller of the two bounds is still a bound.
        singletons = found.tail_values * float(np.exp(log_all_in_current(1, n_cur, n_ref + n_cur)))
        tighter = tail_bound(found.tail_values, found.tail_categories_at_most, n_cur, n_ref)
        expected -= singletons - min(singletons, tighter)
    p_value = unseen_p_value(found.observed, found.pooled_counts, found.categories, chance)
    return TestResult.graded(
        METHOD,
        statistic=found.observed / n_cur - expected / n_cur,
        p_value=p_value,
        bands=bands,
        alpha=alpha,
        significance_test="unseen count against its law under one distribution",
        parameters={
            "effect_size": "share of values in unseen categories minus the share chance gives",
            "unseen_share": found.observed / n_cur,
            "expected_share": expected / n_cur,
            "unseen_categories": pair.unseen_distinct,
            "from_sketch": not found.exact,
            **dict(found.sketch_errors),
            "reference_size": n_ref,
            "current_size": n_cur,
        },
    )


def log_all_in_current(pooled: object, n_current: int, n_total: int) -> np.ndarray:
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


def tail_bound(values: int, categories: float, n_current: int, n_reference: int) -> float:
    """An upper bound of the expected unseen count from ``values`` values in at most
    ``categories`` categories: for any t, the categories of fewer than t values (at most
    ``categories`` of them) give at most max_{c<t} c P(c) each, and every value in a larger
    category at most P(t)."""
    limit = int(min(values, 4096))
    sizes = np.arange(1, limit + 2, dtype=np.float64)
    per_value = np.exp(log_all_in_current(sizes, n_current, n_current + n_reference))
    best_small = np.maximum.accumulate(sizes * per_value)  # max over c <= t of c P(c)
    small = min(categories, values) * np.concatenate([[0.0], best_small[:-1]])
    bounds = small + values * per_value
    return float(np.min(bounds))


def unseen_p_value(
    observed: int, pooled: np.ndarray, categories: np.ndarray, chance: np.ndarray
) -> float:
    """P(unseen count >= observed) if the samples share one distribution (seeded simulation,
    then the Chernoff bound where the simulation finds nothing as extreme)."""
    if observed == 0:
        return 1.0
    relevant = chance >= _NEGLIGIBLE
    # Union bound for the groups not simulated: any of their categories entirely current.
    bound = float(np.sum(categories[~relevant] * chance[~relevant]))
    sizes, counts, chances = pooled[relevant], categories[relevant], chance[relevant]
    if sizes.size == 0:
        return min(1.0, bound)
    rng = np.random.default_rng(0)
    at_least, drawn = 0, 0
    while drawn < SIMULATIONS:
        size = min(_BATCH, SIMULATIONS - drawn)
        sums = rng.binomial(counts, chances, size=(size, sizes.size)) @ sizes
        at_least += int(np.count_nonzero(sums >= observed))
        drawn += size
        if at_least >= SEQUENTIAL_STOP:  # Besag and Clifford's sequential p-value
            return min(1.0, at_least / drawn + bound)
    floor = 1 / (1 + SIMULATIONS)
    if at_least == 0:
        return min(floor, chernoff_tail(observed, pooled, categories, chance))
    return min(1.0, (1 + at_least) / (1 + SIMULATIONS) + bound)


def chernoff_tail(
    observed: int, pooled: np.ndarray, categories: np.ndarray, chance: np.ndarray
) -> float:
    """Chernoff's bound of P(sum over groups of c * Binomial(N_c, P_c) >= observed)."""
    if observed > float(np.sum(pooled * categories)):
        return 0.0
    sizes = pooled.astype(np.float64)
    counts = categories.astype(np.float64)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.log(chance), np.log1p(-np.minimum(chance, 1.0))

    def exponent(t: float) -> float:
        # log E[exp(t S)] - t s, each group's term in log space (no overflow).
        per_group = np.logaddexp(log_q, log_p + t * sizes)
        return float(np.sum(counts * per_group) - t * observed)

    best = optimize.minimize_scalar(exponent, bounds=(0.0, 50.0), method="bounded")
    return float(min(1.0, math.exp(min(0.0, best.fun))))


TEST = DriftTest(
    name=METHOD,
    kinds=("categorical",),
    implementations={"exact": unseen_values_check, "streaming": unseen_values_check},
)
