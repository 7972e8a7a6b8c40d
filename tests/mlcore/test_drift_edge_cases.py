"""Edge cases get a defined result or a clear error: never a crash, never a silent wrong answer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlcore.data import DatasetSpec
from mlcore.drift import (
    CategoricalSummary,
    NumericSummary,
    build_baseline,
    chi2_drift,
    detect_drift,
)
from mlcore.errors import DataError
from mlcore.settings import DriftSettings

pytestmark = pytest.mark.filterwarnings(
    "ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning"
)

SPEC = DatasetSpec(target="y", numeric=("x",), categorical=("c",))
# The domain classifier has tests of its own (test_drift_classifier.py).
QUICK = DriftSettings(domain_classifier={"enabled": False})
# Magnitudes beyond 1e100 overflow sums of squares in float64 itself; such columns are corrupt
# data rather than something to measure drift on.
any_float = st.one_of(
    st.floats(min_value=-1e100, max_value=1e100),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
)
columns = hnp.arrays(np.float64, st.integers(1, 60), elements=any_float)
category = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "new"]))


def frame(x: np.ndarray, c: list[str | None]) -> pd.DataFrame:
    n = min(len(x), len(c))
    return pd.DataFrame({"x": x[:n], "c": pd.Series(c[:n], dtype=object), "y": 0})


def _is_number_or_none(value: float | None) -> bool:
    return value is None or math.isfinite(value)


@settings(max_examples=80, deadline=None)
@given(
    ref_x=columns,
    cur_x=columns,
    ref_c=st.lists(category, min_size=60, max_size=60),
    cur_c=st.lists(category, min_size=60, max_size=60),
)
def test_any_values_give_a_complete_report_with_finite_numbers(
    ref_x: np.ndarray, cur_x: np.ndarray, ref_c: list[str | None], cur_c: list[str | None]
) -> None:
    report = detect_drift(frame(ref_x, ref_c), frame(cur_x, cur_c), spec=SPEC, settings=QUICK)
    assert [f.name for f in report.features] == ["x", "c"]
    for feature in report.features:
        for test in (*feature.tests, *feature.checks):
            assert _is_number_or_none(test.statistic), test
            assert _is_number_or_none(test.p_value), test
            if test.statistic is None:
                assert test.note and test.grade == "insufficient_data"
        assert 0.0 <= feature.missing.parameters["current_rate"] <= 1.0
    assert 0.0 <= report.share_drifted <= 1.0


@settings(max_examples=40, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(0, 50), elements=any_float))
def test_numeric_summary_counts_every_value_once(values: np.ndarray) -> None:
    summary = NumericSummary.from_values(values)
    assert summary.n_total == values.size
    assert summary.n_missing == int(np.isnan(values).sum())
    assert summary.n_posinf + summary.n_neginf == int(np.isinf(values).sum())
    assert np.all(np.diff(summary.sorted_values) >= 0)


def test_infinities_are_not_a_distribution_but_raise_the_missing_rate() -> None:
    reference = pd.DataFrame({"x": np.arange(1000.0), "c": "a", "y": 0})
    current = reference.copy()
    current.loc[:199, "x"] = np.inf
    result = detect_drift(reference, current, spec=SPEC, settings=QUICK).feature("x")
    assert result.missing.parameters["current_rate"] == pytest.approx(0.2)
    assert result.missing.grade == "major" and result.grade == "major"


def test_constant_columns_have_defined_results() -> None:
    reference = pd.DataFrame({"x": np.full(500, 3.0), "c": "a", "y": 0})
    same = detect_drift(reference, reference.copy(), spec=SPEC, settings=QUICK)
    assert same.drifted_features == () and same.grade == "none"
    assert same.feature("x").test("wasserstein").parameters["scale"] == 1.0
    moved = detect_drift(reference, reference.assign(x=4.0), spec=SPEC, settings=QUICK)
    assert moved.feature("x").grade == "major"
    assert moved.feature("x").statistic == 1.0


def test_a_single_row_on_each_side_is_insufficient_data_never_drift() -> None:
    one = pd.DataFrame({"x": [1.0], "c": ["a"], "y": [0]})
    report = detect_drift(one, one.assign(x=1e6, c="z"), spec=SPEC, settings=QUICK)
    assert report.grade == "insufficient_data" and not report.dataset_drift
    assert {f.grade for f in report.features} == {"insufficient_data"}
    assert f"minimum window of {QUICK.min_window}" in (report.note or "")


def test_empty_data_gives_an_insufficient_data_report() -> None:
    good = pd.DataFrame({"x": np.arange(200.0), "c": ["a", "b"] * 100, "y": 0})
    empty = good.iloc[:0]
    for reference, current in ((good, empty), (empty, good)):
        report = detect_drift(reference, current, spec=SPEC, settings=QUICK)
        assert report.grade == "insufficient_data" and not report.dataset_drift


def test_an_all_null_current_column_drifts_through_its_missing_rate() -> None:
    reference = pd.DataFrame({"x": np.arange(200.0), "c": ["a", "b"] * 100, "y": 0})
    current = reference.assign(x=np.nan, c=None)
    report = detect_drift(reference, current, spec=SPEC, settings=QUICK)
    for name in ("x", "c"):
        feature = report.feature(name)
        assert feature.statistic is None and "no non-missing values" in (feature.primary.note or "")
        assert feature.grade == "major" and feature.missing.parameters["current_rate"] == 1.0
    assert report.dataset_drift


def test_categories_seen_only_in_current_are_counted_and_tested() -> None:
    reference = ["a"] * 500 + ["b"] * 500
    current = ["a"] * 400 + ["b"] * 400 + ["zebra"] * 200
    result = chi2_drift(reference, current)
    assert result.grade == "major" and result.parameters["categories"] == 3
    report = detect_drift(
        pd.DataFrame({"x": 1.0, "c": reference, "y": 0}),
        pd.DataFrame({"x": 1.0, "c": current, "y": 0}),
        spec=SPEC,
        settings=QUICK,
    )
    feature = report.feature("c")
    assert feature.unseen_categories == ("zebra",)
    assert feature.unseen_share == pytest.approx(0.2)
    assert feature.check("unseen_values").grade == "major"


def test_very_high_cardinality_is_handled() -> None:
    rng = np.random.default_rng(0)
    reference = rng.integers(0, 50_000, size=100_000).astype(str)
    current = rng.integers(0, 50_000, size=100_000).astype(str)
    summary = CategoricalSummary.from_values(reference)
    assert summary.n_valid == 100_000
    assert chi2_drift(reference, current).grade == "none"


def test_integer_codes_match_across_csv_floats_and_parquet_ints() -> None:
    as_floats = CategoricalSummary.from_values(pd.Series([1.0, 2.0, np.nan]))
    as_ints = CategoricalSummary.from_values(pd.Series([1, 2]))
    assert as_floats.labels == as_ints.labels == ("1", "2")


def test_a_reference_without_a_feature_column_is_refused() -> None:
    good = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"], "y": [0, 1]})
    with pytest.raises(DataError, match=r"reference data lacks column\(s\) \['c'\]"):
        detect_drift(good.drop(columns="c"), good, spec=SPEC)
    with pytest.raises(DataError, match="must be a pandas DataFrame"):
        detect_drift(good, good.to_dict(), spec=SPEC)  # type: ignore[arg-type]


def test_a_dataframe_reference_needs_a_spec_and_a_baseline_must_match_it() -> None:
    good = pd.DataFrame({"x": [1.0, 2.0], "c": ["a", "b"], "y": [0, 1]})
    with pytest.raises(DataError, match="give spec="):
        detect_drift(good, good)
    baseline = build_baseline(good, SPEC)
    other = DatasetSpec(target="y", numeric=("x",))
    with pytest.raises(DataError, match="differ from the baseline"):
        detect_drift(baseline, good, spec=other)
