"""Data-quality problems are Model Monitor violations and count in the verdict; nothing aborts
(issue 11, findings 4 and 5)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlcore.data import DatasetSpec, infer_spec, load_table, make_churn
from mlcore.drift import build_baseline, detect_drift, write_drift_outputs
from mlcore.drift.monitor_formats import violations_document
from mlcore.drift.pairs import OTHER_LABEL
from mlcore.drift.streaming import detect_drift_streaming
from mlcore.settings import DriftSettings

QUICK = DriftSettings(domain_classifier={"enabled": False})
SPEC = DatasetSpec(target="y", numeric=("x",), categorical=("c",))
# AWS's sample Model Monitor post-processor reads drift violations with exactly this pattern
# (aws-samples/amazon-sagemaker-drift-detection, batch_pipeline/pipelines/
# postprocess_monitor_script.py: get_baseline_drift).
MODEL_MONITOR_DRIFT = re.compile("distance: (.+) exceeds threshold: (.+)")


def _frames(rows: int = 5000, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    categories = [f"k{i}" for i in range(20)]
    reference = pd.DataFrame(
        {"x": rng.normal(50, 5, rows), "c": rng.choice(categories, rows), "y": 0}
    )
    current = pd.DataFrame(
        {"x": rng.normal(50, 5, rows), "c": rng.choice(categories, rows), "y": 0}
    )
    return reference, current


def _violations(report: object) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for violation in violations_document(report)["violations"]:  # type: ignore[arg-type]
        found.setdefault(violation["constraint_check_type"], []).append(violation)
    return found


def test_a_window_of_only_unseen_values_is_major_drift() -> None:
    # Finding 4: 5,000 current values, all unseen, gave chi-squared p = 0.495, "not drifted".
    reference, current = _frames()
    current["c"] = [f"new{i}" for i in range(len(current))]
    report = detect_drift(reference, current, spec=SPEC, settings=QUICK)
    feature = report.feature("c")
    assert feature.unseen_share == 1.0
    assert feature.check("unseen_values").grade == "major" and feature.grade == "major"
    [violation] = _violations(report)["categorical_values_check"]
    assert violation["feature_name"] == "c" and "100.00% of values" in violation["description"]


def test_a_tenth_of_new_values_counts_in_the_verdict() -> None:
    reference, current = _frames(seed=1)
    current.loc[current.index[:500], "c"] = "brand-new"
    feature = detect_drift(reference, current, spec=SPEC, settings=QUICK).feature("c")
    assert feature.check("unseen_values").statistic == pytest.approx(0.1, abs=0.005)
    assert feature.grade == "major"


def test_new_values_of_a_long_tailed_column_are_expected_not_drift() -> None:
    # Rare categories show up for the first time in any window: chance, not drift.
    rng = np.random.default_rng(2)
    tail = 1 / np.arange(1, 3001) ** 1.1
    labels = np.array([f"shop{i}" for i in range(3000)])
    flagged = 0
    for _ in range(20):
        reference = pd.DataFrame(
            {"x": 1.0, "c": rng.choice(labels, 5000, p=tail / tail.sum()), "y": 0}
        )
        current = reference.assign(c=rng.choice(labels, 5000, p=tail / tail.sum()))
        check = detect_drift(reference, current, spec=SPEC, settings=QUICK).feature("c")
        assert check.unseen_share > 0.02  # new values do appear ...
        flagged += check.check("unseen_values").grade != "none"
    assert flagged <= 1  # ... and are expected


def _city_names(rng: np.random.Generator, n: int) -> np.ndarray:
    """A long tail: 40% of the values from 20 big cities, 60% from cities seen about once."""
    big = rng.choice([f"city{i}" for i in range(20)], n)
    rare = np.array([f"town{k}" for k in rng.integers(0, 10**7, n)])
    return np.where(rng.random(n) < 0.4, big, rare)


def test_a_long_tail_column_whose_values_all_turn_unknown_is_major_drift() -> None:
    # Issue 21, finding 4: a reference with 60% one-off values made every check "insufficient
    # data", so a column whose every value became "UNKNOWN" got no verdict. Rare values now
    # share an "other" bin, and the unseen-values check still runs.
    rng = np.random.default_rng(4)
    reference, current = _frames()
    reference["c"] = _city_names(rng, len(reference))
    current["c"] = "UNKNOWN"
    feature = detect_drift(reference, current, spec=SPEC, settings=QUICK).feature("c")
    assert feature.primary.grade == "major"  # PSI over the big cities and "other"
    assert feature.check("unseen_values").grade == "major"
    assert feature.grade == "major"


def test_a_long_tail_column_drawn_again_is_graded_and_is_not_drift() -> None:
    # The same long tail in both windows: graded (not insufficient data), and new one-off
    # values are what chance gives, in every engine.
    rng = np.random.default_rng(5)
    reference, current = _frames()
    reference["c"] = _city_names(rng, len(reference))
    current["c"] = _city_names(rng, len(current))
    baseline = build_baseline(reference, SPEC, QUICK)
    exact = detect_drift(baseline, current, settings=QUICK).feature("c")
    streamed = detect_drift_streaming(baseline, [current], settings=QUICK).feature("c")
    for feature in (exact, streamed):
        assert feature.unseen_share > 0.5
        assert feature.grade == "none"
    assert exact.primary.parameters["labels"][-1] == OTHER_LABEL


def test_a_missing_column_is_a_violation_not_an_abort(tmp_path: Path) -> None:
    # Finding 5: a missing column aborted the run.
    reference, current = _frames()
    report = detect_drift(reference, current.drop(columns="c"), spec=SPEC, settings=QUICK)
    assert report.missing_columns == ("c",)
    assert [f.name for f in report.features] == ["x"]
    [violation] = _violations(report)["missing_column_check"]
    assert violation["feature_name"] == "c"
    document = json.loads(write_drift_outputs(report, tmp_path)["drift_report"].read_text())
    assert document["missing_columns"] == ["c"]


def test_an_extra_column_is_an_extra_column_check_violation() -> None:
    # Finding 5: an extra column was ignored.
    reference, current = _frames()
    report = detect_drift(reference, current.assign(surprise=1), spec=SPEC, settings=QUICK)
    assert report.extra_columns == ("surprise",)
    assert [v["feature_name"] for v in _violations(report)["extra_column_check"]] == ["surprise"]


def test_one_na_string_in_a_numeric_column_is_a_data_type_violation_not_an_abort() -> None:
    # Finding 5: one "N/A" string in a numeric column aborted the run.
    reference, current = _frames()
    current["x"] = current["x"].astype(object)
    current.loc[7, "x"] = "N/A"
    report = detect_drift(reference, current, spec=SPEC, settings=QUICK)
    feature = report.feature("x")
    assert feature.data_type.violated and feature.data_type.examples == ("N/A",)
    assert feature.grade == "none"  # one value in 5,000 is a data problem, not drift
    [violation] = _violations(report)["data_type_check"]
    assert violation["description"].startswith(
        "Data type match requirement is not met. Expected data type: Fractional, "
        "Expected match: 100.0%. Observed: Only 99.9800% of data is Fractional."
    )


def test_text_replacing_a_numeric_column_grades_major_through_its_missing_rate() -> None:
    reference, current = _frames()
    current["x"] = np.where(np.arange(len(current)) % 4 == 0, "unknown", current["x"].astype(str))
    feature = detect_drift(reference, current, spec=SPEC, settings=QUICK).feature("x")
    assert feature.missing.grade == "major" and feature.data_type.observed_share == pytest.approx(
        0.75
    )


def test_fractions_in_an_integral_column_break_its_data_type() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.integers(0, 10, 2000).astype(float), "y": 0})
    current = reference.assign(x=reference["x"] + 0.5)
    spec = DatasetSpec(target="y", numeric=("x",))
    feature = detect_drift(reference, current, spec=spec, settings=QUICK).feature("x")
    assert feature.data_type.expected == "Integral" and feature.data_type.observed_share == 0.0


def test_sentinels_outside_the_reference_range_are_out_of_range_violations() -> None:
    reference, current = _frames()
    current.loc[current.index[:250], "x"] = -999.0  # 5% sentinels
    report = detect_drift(reference, current, spec=SPEC, settings=QUICK)
    check = report.feature("x").check("out_of_range")
    assert check.parameters["below_reference_min"] == 250 and check.grade == "major"
    [violation] = _violations(report)["out_of_range_check"]
    assert "of values lie outside the baseline's range" in violation["description"]
    assert "(250 below" in violation["description"]


def test_same_distribution_values_stay_within_the_range_check() -> None:
    flagged = 0
    for seed in range(30):
        reference, current = _frames(rows=300, seed=seed)
        check = detect_drift(reference, current, spec=SPEC, settings=QUICK).feature("x")
        flagged += check.check("out_of_range").grade != "none"
    assert flagged <= 1


def test_drift_violations_use_model_monitors_distance_wording() -> None:
    # Finding 5: the descriptions did not use "distance: X exceeds threshold: Y".
    reference, current = _frames()
    current["x"] += 3.0
    report = detect_drift(reference, current, spec=SPEC, settings=QUICK)
    [violation] = _violations(report)["baseline_drift_check"]
    match = MODEL_MONITOR_DRIFT.search(violation["description"])
    assert match is not None
    primary = report.feature("x").primary
    assert float(match.group(1)) == pytest.approx(primary.statistic, rel=1e-5)
    assert float(match.group(2)) == primary.bands.major


def test_categorical_comparison_threshold_holds_a_distance_as_aws_documents(tmp_path: Path) -> None:
    # Finding 5: categorical_comparison_threshold held a p-value. AWS documents both
    # comparison thresholds as distances (model-monitor-byoc-constraints: comparison_threshold is
    # the largest gap between the two CDFs; categorical_comparison_threshold defaults to it).
    reference, current = _frames()
    settings = QUICK.model_copy(update={"p_value_threshold": 0.01})
    report = detect_drift(reference, current, spec=SPEC, settings=settings)
    constraints = json.loads(write_drift_outputs(report, tmp_path)["constraints"].read_text())
    distribution = constraints["monitoring_config"]["distribution_constraints"]
    assert distribution["categorical_comparison_threshold"] == settings.bands.psi.major
    assert distribution["comparison_threshold"] == settings.bands.ks.major
    assert 0.01 not in distribution.values()


def test_csv_and_parquet_give_the_same_features_when_a_datetime_is_not_the_timestamp(
    tmp_path: Path,
) -> None:
    # Finding 5: a CSV datetime column became a categorical feature (8 vs 6 features).
    frame = make_churn(300, seed=4)
    frame["signup_time"] = pd.date_range("2024-01-01", periods=300, freq="h", tz="UTC")
    frame["renewal_date"] = pd.date_range("2024-06-01", periods=300, freq="D").date
    frame.to_csv(tmp_path / "data.csv", index=False)
    frame.to_parquet(tmp_path / "data.parquet")
    specs = [
        infer_spec(
            load_table(tmp_path / name),
            target="churned",
            timestamp="event_time",
            exclude=["customer_id"],
        )
        for name in ("data.csv", "data.parquet")
    ]
    assert specs[0] == specs[1]
    assert "signup_time" not in specs[0].features and "renewal_date" not in specs[0].features


def test_a_numeric_baseline_reads_text_numbers_of_a_csv_capture_alike() -> None:
    reference, current = _frames()
    baseline = build_baseline(reference, SPEC, QUICK)
    as_text = current.assign(x=current["x"].map(str))
    same = detect_drift(baseline, current, settings=QUICK).feature("x")
    parsed = detect_drift(baseline, as_text, settings=QUICK).feature("x")
    assert parsed.primary.statistic == pytest.approx(same.primary.statistic, rel=1e-9)
    assert not parsed.data_type.violated
