"""Streaming mode: mergeable summaries, exact where promised, within its bound where not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mlcore.data import CHURN_SPEC, DatasetSpec, make_churn
from mlcore.drift import (
    Baseline,
    CategoricalSummary,
    DriftReport,
    NumericSummary,
    build_baseline,
    detect_drift,
)
from mlcore.drift.streaming import (
    NumericSketch,
    ReferenceGrid,
    StreamingPlan,
    detect_drift_streaming,
    iter_chunks,
)
from mlcore.settings import DriftSettings

# The domain classifier is compared across engines in its own test below.
QUICK = DriftSettings(domain_classifier={"enabled": False})

values = hnp.arrays(
    np.float64,
    st.integers(0, 200),
    elements=st.one_of(st.floats(-1e6, 1e6), st.sampled_from([np.nan, np.inf, -np.inf, 1.0, 2.0])),
)


@settings(max_examples=50, deadline=None)
@given(first=values, second=values)
def test_merging_exact_summaries_equals_summarising_the_concatenation(
    first: np.ndarray, second: np.ndarray
) -> None:
    merged = NumericSummary.from_values(first).merge(NumericSummary.from_values(second))
    whole = NumericSummary.from_values(np.concatenate([first, second]))
    assert np.array_equal(merged.sorted_values, whole.sorted_values)
    assert (merged.n_missing, merged.n_posinf, merged.n_neginf) == (
        whole.n_missing,
        whole.n_posinf,
        whole.n_neginf,
    )


@settings(max_examples=50, deadline=None)
@given(
    first=values, second=values, reference=hnp.arrays(np.float64, 50, elements=st.floats(-1e3, 1e3))
)
def test_merging_sketches_equals_sketching_the_concatenation(
    first: np.ndarray, second: np.ndarray, reference: np.ndarray
) -> None:
    grid = ReferenceGrid.from_summary(NumericSummary.from_values(reference), psi_bins=10)
    parts = NumericSketch.of_values(pd.Series(first), grid, name="x").merge(
        NumericSketch.of_values(pd.Series(second), grid, name="x")
    )
    whole = NumericSketch.of_values(pd.Series(np.concatenate([first, second])), grid, name="x")
    assert np.array_equal(parts.counts, whole.counts)
    assert (parts.count, parts.n_missing, parts.n_posinf, parts.n_neginf) == (
        whole.count,
        whole.n_missing,
        whole.n_posinf,
        whole.n_neginf,
    )
    assert (parts.low, parts.high) == (whole.low, whole.high)
    assert parts.mean == pytest.approx(whole.mean, rel=1e-9, abs=1e-6)
    assert parts.m2 == pytest.approx(whole.m2, rel=1e-9, abs=1e-3)


@settings(max_examples=30, deadline=None)
@given(
    first=st.lists(st.sampled_from(["a", "b", "z", None]), max_size=50),
    second=st.lists(st.sampled_from(["a", "c", None]), max_size=50),
)
def test_merging_category_counts_equals_counting_the_concatenation(
    first: list[str | None], second: list[str | None]
) -> None:
    parts = CategoricalSummary.from_values(pd.Series(first, dtype=object)).merge(
        CategoricalSummary.from_values(pd.Series(second, dtype=object))
    )
    whole = CategoricalSummary.from_values(pd.Series(first + second, dtype=object))
    assert parts.count_map() == whole.count_map() and parts.n_missing == whole.n_missing


@pytest.fixture(scope="module")
def churn_baseline() -> Baseline:
    return build_baseline(make_churn(20_000, seed=1), CHURN_SPEC, QUICK)


@pytest.mark.parametrize("shift", [0.0, 1.0])
def test_streaming_agrees_with_exact_mode_within_its_bound(
    churn_baseline: Baseline, shift: float
) -> None:
    current = make_churn(20_000, seed=2, covariate_shift=shift)
    exact = detect_drift(churn_baseline, current, settings=QUICK)
    chunks = (current.iloc[i : i + 3000] for i in range(0, len(current), 3000))
    streamed = detect_drift_streaming(churn_baseline, chunks, settings=QUICK)
    assert streamed.mode == "streaming" and streamed.current_rows == len(current)
    assert streamed.drifted_features == exact.drifted_features
    assert streamed.dataset_drift == exact.dataset_drift
    for feature in exact.features:
        other = streamed.feature(feature.name)
        for method in ("psi", "jensenshannon", "kl", "chi2"):
            if any(t.method == method for t in feature.tests):
                assert other.test(method).statistic == pytest.approx(
                    feature.test(method).statistic, abs=1e-12
                )
        assert other.checks == feature.checks  # missing rate, out-of-range, unseen: exact
        assert other.grade == feature.grade
        if feature.kind == "numeric":
            ks, exact_ks = other.test("ks"), feature.test("ks")
            bound = ks.parameters["error_bound"]
            assert ks.parameters["plug_in"] <= exact_ks.parameters["plug_in"] + 1e-12
            assert exact_ks.parameters["plug_in"] <= ks.parameters["plug_in"] + bound + 1e-12
            assert ks.statistic <= exact_ks.statistic + 1e-12  # graded on the lower bound
            assert bound <= streamed.ks_error_bound
    for feature in exact.features:
        if feature.kind == "numeric":
            w, expected = streamed.feature(feature.name).primary, feature.primary
            assert w.method == expected.method == "wasserstein"
            exact_value = expected.parameters["plug_in"]
            assert w.parameters["plug_in_lower"] <= exact_value + 1e-9
            assert exact_value <= w.parameters["plug_in_upper"] + 1e-9
            assert w.statistic <= expected.statistic + 1e-9


def test_the_ks_bound_is_small_on_continuous_data(churn_baseline: Baseline) -> None:
    current = make_churn(20_000, seed=3)
    report = detect_drift_streaming(churn_baseline, [current], settings=QUICK)
    bound = report.feature("monthly_charges").test("ks").parameters["error_bound"]
    assert bound < 0.002


def test_one_chunk_or_many_give_the_same_report(churn_baseline: Baseline) -> None:
    current = make_churn(9000, seed=4, covariate_shift=0.5)
    whole = detect_drift_streaming(churn_baseline, [current], settings=QUICK).to_dict()
    parts = detect_drift_streaming(
        churn_baseline, (current.iloc[i : i + 1000] for i in range(0, 9000, 1000)), settings=QUICK
    ).to_dict()
    for a, b in zip(whole["features"], parts["features"], strict=True):
        assert a["tests"] == b["tests"] and a["checks"] == b["checks"]
        assert a["grade"] == b["grade"]


def test_sketches_from_partitions_merge_into_one_report(churn_baseline: Baseline) -> None:
    plan = StreamingPlan.from_baseline(churn_baseline, QUICK)
    current = make_churn(6000, seed=5)
    left, right = plan.sketch(current.iloc[:2500]), plan.sketch(current.iloc[2500:])
    merged: DriftReport = plan.report(left.merge(right))
    single: DriftReport = plan.report(plan.sketch(current))
    assert merged.to_dict()["features"][0]["tests"] == single.to_dict()["features"][0]["tests"]


def test_chunks_come_from_csv_and_parquet_files_and_folders(tmp_path: Path) -> None:
    frame = make_churn(2500, seed=6)
    frame.to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "folder").mkdir()
    frame.iloc[:1000].to_parquet(tmp_path / "folder" / "a.parquet")
    frame.iloc[1000:].to_parquet(tmp_path / "folder" / "b.parquet")
    columns = list(CHURN_SPEC.features)
    for path in (tmp_path / "data.csv", tmp_path / "folder"):
        chunks = list(iter_chunks(path, CHURN_SPEC, columns=columns, chunk_rows=700))
        assert sum(len(c) for c in chunks) == 2500
        assert max(len(c) for c in chunks) <= 700
        assert list(chunks[0].columns) == columns


def test_cli_streaming_writes_a_streaming_report(tmp_path: Path) -> None:
    import argparse

    from mlcore.drift.cli import add_drift_parser

    spec = DatasetSpec(target="y", numeric=("x",), categorical=("c",))
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=5000), "c": "a", "y": 0})
    build_baseline(reference, spec, QUICK).save(tmp_path / "baseline")
    pd.DataFrame({"x": rng.normal(1.0, size=5000), "c": "a"}).to_csv(
        tmp_path / "cur.csv", index=False
    )
    parser = argparse.ArgumentParser()
    add_drift_parser(parser.add_subparsers())
    args = parser.parse_args(
        [
            "drift",
            "--baseline",
            str(tmp_path / "baseline"),
            "--current",
            str(tmp_path / "cur.csv"),
            "--output",
            str(tmp_path / "out"),
            "--streaming",
            "--chunk-rows",
            "1000",
        ]
    )
    assert args.handler(args) == 0
    report = json.loads((tmp_path / "out" / "drift_report.json").read_text())
    assert report["mode"] == "streaming" and report["drifted_features"] == ["x"]
    assert 0 <= report["ks_error_bound"] < 0.01


def test_parquet_is_read_one_column_chunk_at_a_time_with_the_same_result(
    tmp_path: Path, churn_baseline: Baseline
) -> None:
    from mlcore.drift.streaming import detect_drift_streaming_path

    current = make_churn(5000, seed=7, covariate_shift=0.5)
    (tmp_path / "parts").mkdir()
    current.iloc[:3000].to_parquet(tmp_path / "parts" / "a.parquet", row_group_size=700)
    current.iloc[3000:].to_parquet(tmp_path / "parts" / "b.parquet", row_group_size=700)
    from_parquet = detect_drift_streaming_path(churn_baseline, tmp_path / "parts", settings=QUICK)
    from_frame = detect_drift_streaming(churn_baseline, [current], settings=QUICK)
    assert from_parquet.current_rows == 5000
    for a, b in zip(from_parquet.features, from_frame.features, strict=True):
        assert a.tests == b.tests and a.checks == b.checks


def test_ks_is_exact_in_streaming_mode_for_discrete_values() -> None:
    spec = DatasetSpec(target="y", numeric=("calls",))
    rng = np.random.default_rng(8)
    reference = pd.DataFrame({"calls": rng.poisson(4, 50_000).astype(float), "y": 0})
    current = pd.DataFrame({"calls": rng.poisson(4.3, 50_000).astype(float), "y": 0})
    baseline = build_baseline(reference, spec, QUICK)
    streamed = (
        detect_drift_streaming(baseline, [current], settings=QUICK).feature("calls").test("ks")
    )
    exact = detect_drift(baseline, current, settings=QUICK).feature("calls").test("ks")
    assert streamed.parameters["error_bound"] == 0.0
    assert streamed.statistic == pytest.approx(exact.statistic, abs=1e-12)


def test_data_quality_problems_grade_the_same_in_both_engines() -> None:
    spec = DatasetSpec(target="y", numeric=("x",), categorical=("c",))
    rng = np.random.default_rng(9)
    reference = pd.DataFrame(
        {"x": rng.normal(size=4000), "c": rng.choice(["a", "b"], 4000), "y": 0}
    )
    current = pd.DataFrame(
        {
            "x": pd.Series(np.r_[rng.normal(size=3600), np.full(400, -999.0)], dtype=object),
            "c": np.r_[rng.choice(["a", "b"], 3700), np.full(300, "new")],
            "extra": 1,
        }
    )
    current.loc[5, "x"] = "N/A"
    baseline = build_baseline(reference, spec, QUICK)
    exact = detect_drift(baseline, current, settings=QUICK)
    streamed = detect_drift_streaming(
        baseline, (current.iloc[i : i + 900] for i in range(0, 4000, 900)), settings=QUICK
    )
    for report in (exact, streamed):
        x, c = report.feature("x"), report.feature("c")
        assert x.check("out_of_range").grade == "major"
        assert x.data_type.violated and x.data_type.examples == ("N/A",)
        assert c.check("unseen_values").grade == "major"
        assert report.extra_columns == ("extra",)
    assert exact.feature("x").checks == streamed.feature("x").checks
    assert exact.feature("c").checks == streamed.feature("c").checks


def test_a_column_missing_from_the_stream_is_reported_not_graded() -> None:
    spec = DatasetSpec(target="y", numeric=("x",), categorical=("c",))
    rng = np.random.default_rng(10)
    reference = pd.DataFrame({"x": rng.normal(size=2000), "c": "a", "y": 0})
    baseline = build_baseline(reference, spec, QUICK)
    report = detect_drift_streaming(baseline, [reference[["x"]]], settings=QUICK)
    assert report.missing_columns == ("c",)
    assert [f.name for f in report.features] == ["x"]


def test_the_domain_classifier_runs_on_a_mergeable_row_sample_in_streaming_mode() -> None:
    baseline = build_baseline(make_churn(6000, seed=1), CHURN_SPEC)
    current = make_churn(6000, seed=2, covariate_shift=1.0)
    streamed = detect_drift_streaming(
        baseline, (current.iloc[i : i + 1000] for i in range(0, 6000, 1000))
    )
    classifier = streamed.domain_classifier
    assert classifier is not None and classifier.grade == "major"
    assert classifier.parameters["current_size"] == 5000  # the sample cap, across chunks
    assert classifier.parameters["separating_features"][0][0] == "monthly_charges"
