"""Two-sample Kolmogorov-Smirnov test with an effect-size floor (numeric columns).

At large sample sizes KS flags differences far too small to matter, so a
column drifts only when the p-value is below the threshold AND the KS statistic
(the largest gap between the two empirical CDFs, itself an effect size in
[0, 1]) is at least ``min_effect_size``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import special, stats

from mlcore.drift._common import NumericInput, numeric_pair, untestable
from mlcore.drift.pairs import NumericPair
from mlcore.drift.results import TestResult
from mlcore.settings import DriftSettings

METHOD = "ks"
# scipy's ks_2samp(method="auto") is exact up to this sample size and asymptotic beyond it.
_SCIPY_EXACT_MAX_N = 10_000
# scipy's kstwo uses other methods up to this size; they are fast there.
_SMIRNOV_MIN_N = 140


def ks_drift(
    reference: NumericInput,
    current: NumericInput,
    *,
    threshold: float = 0.05,
    min_effect_size: float = 0.0,
) -> TestResult:
    """KS test of ``current`` against ``reference``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> result = ks_drift(rng.normal(size=500), rng.normal(1.0, size=500), min_effect_size=0.1)
    >>> result.drifted, result.statistic > 0.3
    (True, True)
    """
    return ks_test_pair(
        numeric_pair(reference, current), threshold=threshold, min_effect_size=min_effect_size
    )


def ks_test(pair: NumericPair, settings: DriftSettings) -> TestResult:
    return ks_test_pair(
        pair, threshold=settings.p_value_threshold, min_effect_size=settings.min_effect_size
    )


def ks_test_pair(pair: NumericPair, *, threshold: float, min_effect_size: float) -> TestResult:
    if not pair.testable:
        return untestable(METHOD, threshold, pair)
    n_ref, n_cur = pair.reference.n_valid, pair.current.n_valid
    if max(n_ref, n_cur) <= _SCIPY_EXACT_MAX_N:
        # Small samples: scipy's exact distribution; sorting is cheap at this size.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exact = stats.ks_2samp(pair.reference.sorted_values, pair.current.sorted_values)
        statistic, p_value, mode = float(exact.statistic), float(exact.pvalue), "exact"
        if any("Switching to" in str(w.message) for w in caught):
            # scipy gives up on the exact sum for some tied samples and falls back itself.
            mode = "asymp (scipy's exact calculation failed)"
    else:
        statistic = pair.ks_statistic
        p_value = ks_asymptotic_p_value(statistic, n_ref, n_cur)
        mode = "asymp"
    return TestResult(
        method=METHOD,
        statistic=statistic,
        p_value=p_value,
        threshold=threshold,
        drifted=ks_drifted(
            p_value, statistic, threshold=threshold, min_effect_size=min_effect_size
        ),
        parameters={
            "alternative": "two-sided",
            "p_value_method": mode,
            "min_effect_size": min_effect_size,
            "effect_size": statistic,
            "reference_size": n_ref,
            "current_size": n_cur,
        },
    )


def ks_asymptotic_p_value(statistic: float, n_ref: int, n_cur: int) -> float:
    """The two-sided p-value scipy's ks_2samp gives for large samples, computed faster.

    scipy evaluates ``kstwo.sf(D, round(n_ref * n_cur / (n_ref + n_cur)))``. In
    the tail (n * D**2 between 2.2 and 370, below p of about 0.005) that is
    ``2 * scipy.special.smirnov(n, D)``, whose term-by-term loop takes about
    0.4 s at n = 500,000. The same exact sum (Birnbaum and Tingey's formula) is
    evaluated here vectorised in log space, in milliseconds; it agrees with
    scipy's to about 1e-11 at n = 1,000,000 (tests check 1e-9). Everywhere else
    scipy itself is called.
    """
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    effective_n = int(np.round(m * n / (m + n)))
    n_d = effective_n * statistic
    in_smirnov_branch = 2.2 <= n_d * statistic < 370.0  # where scipy uses 2 * smirnov(n, D)
    plain = effective_n > _SMIRNOV_MIN_N and 1.0 < n_d < effective_n - 1 and statistic < 0.5
    if plain and in_smirnov_branch:
        return float(np.clip(2.0 * smirnov_sf(effective_n, statistic), 0.0, 1.0))
    return float(np.clip(stats.kstwo.sf(statistic, effective_n), 0.0, 1.0))


def smirnov_sf(n: int, d: float) -> float:
    """P(D+_n >= d), the exact one-sided Smirnov tail; the value of ``scipy.special.smirnov``.

    Birnbaum and Tingey (1951): d * sum_j C(n, j) (1 - d - j/n)^(n - j) (d + j/n)^(j - 1)
    for j = 0 .. floor(n (1 - d)). Every term is positive, so summing them in
    floating point loses nothing to cancellation.
    """
    j = np.arange(0, int(np.floor(n * (1 - d))) + 1, dtype=np.float64)
    log_factorials = special.gammaln(np.arange(1, n + 2, dtype=np.float64))  # log k! for k = 0..n
    counts = j.astype(np.int64)
    with np.errstate(divide="ignore"):  # a zero base gives log 0 = -inf: a term of 0
        log_terms = (
            log_factorials[n]
            - log_factorials[counts]
            - log_factorials[n - counts]
            + (n - j) * np.log1p(-d - j / n)
            + (j - 1) * np.log(d + j / n)
        )
    return float(d * np.sum(np.exp(log_terms)))


def ks_drifted(
    p_value: float, statistic: float, *, threshold: float, min_effect_size: float
) -> bool:
    return p_value < threshold and statistic >= min_effect_size
