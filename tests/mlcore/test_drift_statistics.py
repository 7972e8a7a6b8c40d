"""Every plug-in statistic equals scipy's where scipy computes the same one, on random inputs.

The graded statistic is the plug-in net of chance (``mlcore.drift.chance``); the plug-in is
recorded beside it as ``parameters["plug_in"]`` and is what these tests compare.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial import distance

from mlcore.drift import (
    adjust_p_values,
    chi2_drift,
    jensenshannon_drift,
    kl_drift,
    ks_drift,
    psi_drift,
    wasserstein_drift,
)
from mlcore.drift._common import numeric_pair
from mlcore.drift.ks import ks_asymptotic_p_value
from mlcore.drift.pairs import PSEUDO_COUNT, counts_in_bins, ks_statistic_by_grid, quantile_edges
from mlcore.drift.wasserstein import wasserstein_distance_of

TOL = 1e-9

# scipy itself warns when its exact KS sum fails on some tied samples and it falls back.
pytestmark = pytest.mark.filterwarnings(
    "ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning"
)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
samples = hnp.arrays(np.float64, st.integers(1, 300), elements=finite)
# Few distinct values: ties are where CDF code goes wrong.
tied = hnp.arrays(np.float64, st.integers(1, 300), elements=st.integers(-3, 3).map(float))


@settings(max_examples=60, deadline=None)
@given(reference=st.one_of(samples, tied), current=st.one_of(samples, tied))
def test_ks_equals_scipy_on_small_samples(reference: np.ndarray, current: np.ndarray) -> None:
    ours = ks_drift(reference, current)
    theirs = stats.ks_2samp(reference, current)
    assert ours.parameters["plug_in"] == pytest.approx(theirs.statistic, abs=TOL)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=TOL)


@settings(max_examples=80, deadline=None)
@given(
    reference=st.one_of(samples, tied),
    current=st.one_of(samples, tied),
    grid_bins=st.integers(1, 40),
)
def test_ks_statistic_by_grid_equals_scipy_whatever_the_grid(
    reference: np.ndarray, current: np.ndarray, grid_bins: int
) -> None:
    # Coarse grids force the refinement step to look inside many bins.
    ours = ks_statistic_by_grid(np.sort(reference), np.sort(current), grid_bins=grid_bins)
    # For small samples scipy's exact mode rounds D to a multiple of 1/lcm(n, m), hence approx.
    assert ours == pytest.approx(stats.ks_2samp(reference, current).statistic, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.01, 0.05])
def test_ks_equals_scipy_on_large_samples_with_ties(shift: float) -> None:
    rng = np.random.default_rng(7)
    reference = np.round(rng.normal(size=40_000), 2)
    current = np.round(rng.normal(shift, size=25_000), 2)
    ours = ks_drift(reference, current)
    theirs = stats.ks_2samp(reference, current)
    assert ours.parameters["p_value_method"] == "asymp"
    assert ours.parameters["plug_in"] == pytest.approx(theirs.statistic, abs=TOL)
    assert ours.p_value == pytest.approx(theirs.pvalue, abs=TOL)


@pytest.mark.parametrize(("n", "points"), [(141, 40), (5_000, 40), (40_000, 20), (500_000, 6)])
def test_ks_p_values_equal_scipys_kstwo_across_the_tail(n: int, points: int) -> None:
    # Covers scipy's own branches (Pelz-Good, 2 * smirnov, zero) at monitoring sizes; scipy
    # itself is slow in the tail at large n, hence fewer points there.
    for statistic in np.linspace(0.2 / np.sqrt(n), 25 / np.sqrt(n), points):
        expected = stats.kstwo.sf(statistic, n)
        # Two samples of 2n give the effective size n that scipy's ks_2samp passes to kstwo.
        assert ks_asymptotic_p_value(statistic, 2 * n, 2 * n) == pytest.approx(expected, abs=TOL)


@settings(max_examples=60, deadline=None)
@given(reference=st.one_of(samples, tied), current=st.one_of(samples, tied))
def test_wasserstein_is_scipys_on_both_samples_winsorised_at_the_reference_cuts(
    reference: np.ndarray, current: np.ndarray
) -> None:
    # The documented rule, computed here from scratch: cut at the reference's order statistics
    # k and n + 1 - k (k = max(2, ceil(n / 100))), divide by the winsorised reference's IQR /
    # 1.349 (its standard deviation where the IQR is 0; where that is 0 too, nothing is cut and
    # the scale is 1).
    ordered = np.sort(reference)
    n = ordered.size
    k = min(max(2, int(np.ceil(0.01 * n))), (n + 1) // 2)
    low, high = ordered[k - 1], ordered[n - k]
    winsorised = np.clip(ordered, low, high)
    q1, q3 = np.quantile(winsorised, [0.25, 0.75])
    scale = (q3 - q1) / 1.3489795003921634
    if not scale > 0:
        # The standard deviation without underflow (squares of 1e-211 are 0 in floats): of
        # the values divided by a power of two near their size, times it.
        top = max(abs(low), abs(high))
        unit = 2.0 ** np.ceil(np.log2(top)) if top > 0 else 1.0
        scale = np.std(winsorised / unit) * unit
    if low == high or not scale > 0:
        low, high, scale, winsorised = -np.inf, np.inf, 1.0, ordered
    # Spreads of denormal size (below 1e-300) are read as constant: no ratio of them means much.
    assume(scale == 1.0 or scale > 1e-300)
    expected = stats.wasserstein_distance(winsorised, np.clip(current, low, high)) / scale
    result = wasserstein_drift(reference, current)
    assert result.parameters["winsorised_at"] == (low, high)
    assert result.parameters["plug_in"] == pytest.approx(expected, rel=1e-7, abs=1e-9)
    assert wasserstein_distance_of(numeric_pair(reference, current)) == pytest.approx(
        stats.wasserstein_distance(reference, current), rel=TOL, abs=TOL
    )


labels = st.sampled_from(["a", "b", "c", "d", "e"])


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(labels, min_size=1, max_size=200),
    current=st.lists(labels, min_size=1, max_size=200),
)
def test_chi2_is_scipys_homogeneity_test(reference: list[str], current: list[str]) -> None:
    result = chi2_drift(reference, current)
    # The documented bins: reference categories whose pooled count gives at least 5 expected
    # values in the smaller sample, then "other".
    share = min(len(reference), len(current)) / (len(reference) + len(current))
    pooled = {c: reference.count(c) + current.count(c) for c in set(reference)}
    own = sorted(c for c, count in pooled.items() if count * share >= 5)
    rows = [[side.count(c) for c in own] for side in (reference, current)]
    for row, side in zip(rows, (reference, current), strict=True):
        row.append(len(side) - sum(row))
    table = np.array(rows)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] == 1:
        assert (result.statistic, result.p_value) == (0.0, 1.0)
        return
    expected = stats.chi2_contingency(table)
    assert result.parameters["chi2_statistic"] == pytest.approx(
        expected.statistic, rel=TOL, abs=TOL
    )
    # The effect size: Cramér's V of the two distributions, as if both sides had one size.
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    assert result.parameters["plug_in"] == pytest.approx(
        np.sqrt(np.sum((p - q) ** 2 / (p + q)) / 2), abs=TOL
    )


def test_chi2_p_value_is_scipys_on_large_dense_tables() -> None:
    rng = np.random.default_rng(2)
    reference = rng.choice(list("abcd"), size=30_000, p=[0.4, 0.3, 0.2, 0.1])
    current = rng.choice(list("abcd"), size=20_000, p=[0.39, 0.31, 0.2, 0.1])
    result = chi2_drift(reference, current)
    table = np.array([[np.sum(side == c) for c in "abcd"] for side in (reference, current)])
    assert result.parameters["p_value_method"].startswith("asymptotic")
    assert result.p_value == pytest.approx(stats.chi2_contingency(table).pvalue, rel=TOL)


@settings(max_examples=60, deadline=None)
@given(reference=samples, current=samples, bins=st.integers(2, 20))
def test_binned_divergences_equal_scipy_on_recorded_bins(
    reference: np.ndarray, current: np.ndarray, bins: int
) -> None:
    edges = quantile_edges(np.sort(reference), bins)
    ref_counts = counts_in_bins(np.sort(reference), edges).astype(float)
    cur_counts = counts_in_bins(np.sort(current), edges).astype(float)

    js = jensenshannon_drift(reference, current, bins=bins)
    assert js.parameters["edges"] == pytest.approx(tuple(edges))
    assert js.parameters["log_base"] == 2.0
    assert js.parameters["plug_in"] == pytest.approx(
        distance.jensenshannon(ref_counts, cur_counts, base=2), abs=TOL
    )

    ref_smooth, cur_smooth = ref_counts + PSEUDO_COUNT, cur_counts + PSEUDO_COUNT
    kl = kl_drift(reference, current, bins=bins)
    assert kl.parameters["smoothing"]["pseudo_count_per_bin"] == PSEUDO_COUNT
    assert kl.parameters["plug_in"] == pytest.approx(stats.entropy(ref_smooth, cur_smooth), abs=TOL)

    p, q = ref_smooth / ref_smooth.sum(), cur_smooth / cur_smooth.sum()
    psi = psi_drift(reference, current, bins=bins)
    assert psi.parameters["plug_in"] == pytest.approx(np.sum((q - p) * np.log(q / p)), abs=TOL)
    assert psi.parameters["reference_counts"] == tuple(int(c) for c in ref_counts)


def test_psi_bins_are_reference_deciles_and_recorded() -> None:
    reference = np.arange(1, 1001, dtype=float)
    result = psi_drift(reference, reference + 500)
    assert result.parameters["bins"] == "reference_quantiles"
    assert result.parameters["edges"] == pytest.approx(
        np.quantile(reference, np.arange(1, 10) / 10)
    )
    assert result.parameters["reference_counts"] == (100,) * 10
    assert result.grade == "major" and result.statistic >= 0.2


@settings(max_examples=40, deadline=None)
@given(values=samples)
def test_psi_and_distances_of_identical_samples_are_zero(values: np.ndarray) -> None:
    assert psi_drift(values, values).statistic == 0.0
    assert kl_drift(values, values).statistic == pytest.approx(0.0, abs=TOL)
    assert jensenshannon_drift(values, values).statistic == pytest.approx(0.0, abs=1e-7)
    assert wasserstein_drift(values, values).statistic == 0.0
    assert ks_drift(values, values).statistic == 0.0


def test_a_significant_but_tiny_ks_distance_is_no_drift() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=200_000)
    current = rng.normal(0.03, size=200_000)  # real but tiny shift: p tiny, D about 0.012
    tiny = ks_drift(reference, current)
    assert tiny.p_value is not None and tiny.p_value < 1e-6
    assert tiny.statistic is not None and tiny.statistic < tiny.bands.moderate
    assert tiny.grade == "none"
    assert "< moderate threshold" in tiny.explanation()


def test_chi2_homogeneity_keeps_its_false_positive_rate_with_large_samples() -> None:
    # Both samples drawn from the same distribution: a homogeneity test flags about 5%;
    # a goodness-of-fit test that took the reference as exact would flag far more.
    rng = np.random.default_rng(11)
    probabilities = [0.5, 0.3, 0.15, 0.05]
    flagged = 0
    trials = 300
    for _ in range(trials):
        reference = rng.choice(4, size=20_000, p=probabilities).astype(str)
        current = rng.choice(4, size=20_000, p=probabilities).astype(str)
        flagged += chi2_drift(reference, current).p_value < 0.05  # type: ignore[operator]
    assert flagged / trials < 0.09


def test_injected_numeric_drift_is_found_and_same_distribution_is_not() -> None:
    rng = np.random.default_rng(5)
    flagged_same = sum(
        ks_drift(rng.normal(size=2000), rng.normal(size=2000)).grade != "none" for _ in range(200)
    )
    assert flagged_same / 200 < 0.09
    assert ks_drift(rng.normal(size=2000), rng.normal(0.5, size=2000)).grade == "major"


def test_corrections_match_their_definitions() -> None:
    p_values = [0.001, 0.01, 0.02, 0.04, 0.5]
    assert adjust_p_values(p_values, "none") == p_values
    assert adjust_p_values(p_values, "bonferroni") == pytest.approx([0.005, 0.05, 0.1, 0.2, 1.0])
    # Benjamini-Hochberg by hand: p_(i) * m / i, made monotone from the top.
    assert adjust_p_values(p_values, "fdr_bh") == pytest.approx([0.005, 0.025, 0.1 / 3, 0.05, 0.5])
    with pytest.raises(ValueError, match="bonferroni"):
        adjust_p_values(p_values, "holm")  # type: ignore[arg-type]


def test_a_constant_reference_is_constant_whatever_its_size() -> None:
    """Found by hypothesis in a CI run: seven copies of 4.87e-256 gave a 'spread' of 6e-272
    (the rounding of their mean) and were winsorised at one point instead of read as constant."""
    for value in (4.87420279e-256, 0.1, 3.0, 1e200, -7.25):
        result = wasserstein_drift(np.full(7, value), np.array([0.0]))
        assert result.parameters["winsorised_at"] == (-np.inf, np.inf), value
        assert result.parameters["scale"] == 1.0, value
