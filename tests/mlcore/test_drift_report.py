"""detect_drift on realistic data, the saved baseline, and every output file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, make_churn
from mlcore.drift import Baseline, DriftReport, build_baseline, detect_drift, write_drift_outputs
from mlcore.drift.outputs import REPORT_SCHEMA_PATH
from mlcore.settings import DriftSettings


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_churn(8000, seed=1)


@pytest.fixture(scope="module")
def shifted() -> pd.DataFrame:
    return make_churn(8000, seed=2, covariate_shift=1.0)


@pytest.fixture(scope="module")
def shifted_report(reference: pd.DataFrame, shifted: pd.DataFrame) -> DriftReport:
    return detect_drift(reference, shifted, spec=CHURN_SPEC, settings=DriftSettings())


def test_covariate_shift_is_found(shifted_report: DriftReport) -> None:
    assert shifted_report.dataset_drift
    assert "monthly_charges" in shifted_report.drifted_features
    assert "region" not in shifted_report.drifted_features  # the generator leaves it alone
    reason = shifted_report.feature("monthly_charges").reasons[0]
    assert "p-value" in reason and ">= minimum effect size 0.1" in reason
    assert shifted_report.share_drifted == pytest.approx(
        len(shifted_report.drifted_features) / len(CHURN_SPEC.features)
    )


def test_a_sample_of_the_same_distribution_is_not_flagged(reference: pd.DataFrame) -> None:
    report = detect_drift(reference, make_churn(8000, seed=3), spec=CHURN_SPEC)
    assert not report.dataset_drift
    assert len(report.drifted_features) <= 1


def test_every_feature_records_its_tests_and_the_configured_one_decides(
    shifted_report: DriftReport,
) -> None:
    for feature in shifted_report.features:
        methods = [t.method for t in feature.tests]
        if feature.kind == "numeric":
            # Wasserstein needs a full merge of both samples: it runs only when configured.
            assert methods == ["ks", "psi", "jensenshannon", "kl"]
            assert feature.method == "ks"
        else:
            assert methods == ["chi2", "psi", "jensenshannon", "kl"]
            assert feature.method == "chi2"


def test_configured_methods_and_thresholds_are_used(
    reference: pd.DataFrame, shifted: pd.DataFrame
) -> None:
    by_distance = detect_drift(
        reference, shifted, spec=CHURN_SPEC, settings=DriftSettings(numeric_method="wasserstein")
    )
    assert "wasserstein" in [t.method for t in by_distance.feature("age").tests]
    assert by_distance.feature("age").method == "wasserstein"
    settings = DriftSettings(numeric_method="psi", categorical_method="jensenshannon", psi_bins=5)
    report = detect_drift(reference, shifted, spec=CHURN_SPEC, settings=settings)
    charges = report.feature("monthly_charges")
    assert charges.method == "psi" and charges.threshold == settings.psi_threshold
    assert charges.primary.parameters["bin_count"] == 5
    assert report.feature("region").method == "jensenshannon"


def test_a_missing_rate_rise_alone_is_drift(reference: pd.DataFrame) -> None:
    current = reference.copy()
    rng = np.random.default_rng(0)
    current.loc[rng.random(len(current)) < 0.10, "age"] = np.nan  # 2% -> about 12%
    feature = detect_drift(reference, current, spec=CHURN_SPEC).feature("age")
    assert not feature.primary.drifted  # the distribution of the present values is unchanged
    assert feature.missing.drifted and feature.drifted
    assert "missing-value rate rose" in feature.reasons[0]


def test_prediction_drift_is_reported_apart_from_features(reference: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    ref = reference.assign(score=rng.beta(2, 5, len(reference)))
    cur = reference.assign(score=rng.beta(5, 2, len(reference)))
    report = detect_drift(ref, cur, spec=CHURN_SPEC, prediction_columns=("score",))
    assert report.prediction_drift is True
    assert "score" not in report.drifted_features
    assert not report.dataset_drift  # features are the same rows: only predictions moved


def test_correction_adjusts_p_values_and_can_only_remove_drift(
    reference: pd.DataFrame, shifted: pd.DataFrame
) -> None:
    loose = detect_drift(
        reference, shifted, spec=CHURN_SPEC, settings=DriftSettings(min_effect_size=0.0)
    )
    strict = detect_drift(
        reference,
        shifted,
        spec=CHURN_SPEC,
        settings=DriftSettings(min_effect_size=0.0, correction="bonferroni"),
    )
    m = len(strict.columns)
    for a, b in zip(loose.features, strict.features, strict=True):
        assert b.primary.p_value_adjusted == pytest.approx(min(1.0, a.p_value * m))  # type: ignore[operator]
    assert set(strict.drifted_features) <= set(loose.drifted_features)


def test_a_saved_baseline_gives_the_same_report(
    tmp_path: Path, reference: pd.DataFrame, shifted: pd.DataFrame, shifted_report: DriftReport
) -> None:
    build_baseline(reference, CHURN_SPEC, DriftSettings()).save(tmp_path / "baseline")
    assert (tmp_path / "baseline" / "statistics.json").is_file()
    loaded = Baseline.load(tmp_path / "baseline")
    assert loaded.spec == CHURN_SPEC and loaded.rows == len(reference)
    from_baseline = detect_drift(loaded, shifted)
    assert from_baseline.to_dict() == shifted_report.to_dict()


def test_drift_report_json_follows_its_documented_schema(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    paths = write_drift_outputs(shifted_report, tmp_path)
    document = json.loads(paths["drift_report"].read_text())
    jsonschema.validate(document, json.loads(REPORT_SCHEMA_PATH.read_text()))
    charges = next(f for f in document["features"] if f["name"] == "monthly_charges")
    assert charges["method"] == "ks" and charges["drifted"] is True
    assert charges["p_value"] < charges["threshold"]
    psi = next(t for t in charges["tests"] if t["method"] == "psi")
    assert (
        len(psi["parameters"]["edges"]) == 9
        and psi["parameters"]["smoothing"]["pseudo_count_per_bin"]
    )
    assert document["drifted_features"] == list(shifted_report.drifted_features)


def test_model_monitor_files_follow_the_documented_formats(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    paths = write_drift_outputs(shifted_report, tmp_path)
    statistics = json.loads(paths["statistics"].read_text())
    assert statistics["version"] == 0 and statistics["dataset"]["item_count"] == 8000
    by_name = {f["name"]: f for f in statistics["features"]}
    numeric = by_name["monthly_charges"]["numerical_statistics"]
    assert set(numeric) >= {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    assert (
        sum(b["count"] for b in numeric["distribution"]["kll"]["buckets"])
        == (numeric["common"]["num_present"])
    )
    assert by_name["region"]["inferred_type"] == "String"
    assert by_name["region"]["string_statistics"]["distribution"]["categorical"]["buckets"]

    constraints = json.loads(paths["constraints"].read_text())
    assert constraints["monitoring_config"]["distribution_constraints"]["perform_comparison"] == (
        "Enabled"
    )
    assert {f["name"] for f in constraints["features"]} == set(CHURN_SPEC.features)

    violations = json.loads(paths["constraint_violations"].read_text())["violations"]
    drift_checks = {
        v["feature_name"]
        for v in violations
        if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert drift_checks == {f.name for f in shifted_report.features if f.primary.drifted}


def test_html_report_is_one_self_contained_file_with_the_verdict_first(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    page = write_drift_outputs(shifted_report, tmp_path)["html"].read_text()
    assert "Dataset drift detected" in page
    assert page.index("Dataset drift detected") < page.index("monthly_charges")
    assert "<svg" in page and "0.1 to 0.2" in page
    assert "src=" not in page and "http://" not in page and "<link" not in page
    positions = [page.index(f"<h3>{name}") for name in shifted_report.drifted_features]
    assert max(positions) < min(
        page.index(f"<h3>{f.name}") for f in shifted_report.features if not f.drifted
    )
