"""detect_drift on realistic data, the saved baseline, and every output file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest

from mlcore.data import CHURN_SPEC, DatasetSpec, make_churn
from mlcore.drift import Baseline, DriftReport, build_baseline, detect_drift, write_drift_outputs
from mlcore.drift.outputs import REPORT_SCHEMA_PATH
from mlcore.settings import DriftSettings

# The domain classifier is tested on its own (test_drift_classifier.py); here it only slows.
QUICK = DriftSettings(domain_classifier={"enabled": False})


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_churn(8000, seed=1)


@pytest.fixture(scope="module")
def shifted() -> pd.DataFrame:
    return make_churn(8000, seed=2, covariate_shift=1.0)


@pytest.fixture(scope="module")
def shifted_report(reference: pd.DataFrame, shifted: pd.DataFrame) -> DriftReport:
    return detect_drift(reference, shifted, spec=CHURN_SPEC, settings=QUICK)


def test_covariate_shift_is_found(shifted_report: DriftReport) -> None:
    assert shifted_report.grade == "major" and shifted_report.dataset_drift
    assert "monthly_charges" in shifted_report.drifted_features
    assert "region" not in shifted_report.alerting_features  # the generator leaves it alone
    reason = shifted_report.feature("monthly_charges").reasons[0]
    assert re.match(r"wasserstein [0-9.]+ >= major threshold 0.1 \(ks p-value", reason), reason
    graded = [f for f in shifted_report.features if f.grade != "insufficient_data"]
    assert shifted_report.share_drifted == pytest.approx(
        len(shifted_report.drifted_features) / len(graded)
    )


def test_a_sample_of_the_same_distribution_is_not_flagged(reference: pd.DataFrame) -> None:
    report = detect_drift(reference, make_churn(8000, seed=3), spec=CHURN_SPEC, settings=QUICK)
    assert report.grade == "none"
    assert len(report.alerting_features) <= 1


def test_every_feature_records_its_tests_and_checks_and_the_configured_one_decides(
    shifted_report: DriftReport,
) -> None:
    for feature in shifted_report.features:
        methods = [t.method for t in feature.tests]
        checks = [c.method for c in feature.checks]
        if feature.kind == "numeric":
            assert methods == ["ks", "psi", "wasserstein", "jensenshannon", "kl"]
            assert checks == ["missing_rate", "out_of_range"]
            assert feature.method == "wasserstein"
        else:
            assert methods == ["chi2", "psi", "jensenshannon", "kl"]
            assert checks == ["missing_rate", "unseen_values"]
            assert feature.method == "psi"
        # The column's three checks share its significance level.
        assert all(t.alpha == pytest.approx(0.05 / 3) for t in (*feature.tests, *feature.checks))


def test_configured_methods_and_bands_are_used(
    reference: pd.DataFrame, shifted: pd.DataFrame
) -> None:
    by_ks = detect_drift(
        reference,
        shifted,
        spec=CHURN_SPEC,
        settings=QUICK.model_copy(update={"numeric_method": "ks"}),
    )
    assert "wasserstein" not in [t.method for t in by_ks.feature("age").tests]  # on demand only
    assert by_ks.feature("age").method == "ks"
    settings = DriftSettings.model_validate(
        {
            "numeric_method": "psi",
            "categorical_method": "jensenshannon",
            "psi_bins": 5,
            "bands": {"psi": {"moderate": 0.3, "major": 0.6}},
            "domain_classifier": {"enabled": False},
        }
    )
    report = detect_drift(reference, shifted, spec=CHURN_SPEC, settings=settings)
    charges = report.feature("monthly_charges")
    assert charges.method == "psi" and charges.threshold == 0.6
    assert charges.primary.bands.moderate == 0.3
    assert charges.primary.parameters["bin_count"] == 5
    assert report.feature("region").method == "jensenshannon"


def test_a_missing_rate_rise_alone_is_drift(reference: pd.DataFrame) -> None:
    current = reference.copy()
    rng = np.random.default_rng(0)
    current.loc[rng.random(len(current)) < 0.10, "age"] = np.nan  # 2% -> about 12%
    feature = detect_drift(reference, current, spec=CHURN_SPEC, settings=QUICK).feature("age")
    assert feature.primary.grade == "none"  # the distribution of the present values is unchanged
    assert feature.missing.grade == "major" and feature.grade == "major"
    assert feature.reasons[0].startswith("missing_rate 0.")


def test_prediction_drift_is_reported_apart_from_features(reference: pd.DataFrame) -> None:
    rng = np.random.default_rng(4)
    ref = reference.assign(score=rng.beta(2, 5, len(reference)))
    cur = reference.assign(score=rng.beta(5, 2, len(reference)))
    report = detect_drift(ref, cur, spec=CHURN_SPEC, prediction_columns=("score",), settings=QUICK)
    assert report.prediction_grade == "major" and report.prediction_drift is True
    assert "score" not in report.drifted_features
    assert report.grade == "none"  # features are the same rows: only predictions moved


def test_a_target_in_both_tables_is_checked_as_label_drift_not_as_a_feature(
    reference: pd.DataFrame,
) -> None:
    flipped = reference.assign(churned=1 - reference["churned"])
    report = detect_drift(reference, flipped, spec=CHURN_SPEC, settings=QUICK)
    assert CHURN_SPEC.target not in [f.name for f in report.features]
    assert [label.name for label in report.labels] == [CHURN_SPEC.target]
    assert report.label_grade == "major" and report.grade == "none"
    assert report.to_dict()["label_drift"] is True


def test_correction_adjusts_p_values_and_can_only_remove_drift(
    reference: pd.DataFrame, shifted: pd.DataFrame
) -> None:
    loose = detect_drift(reference, shifted, spec=CHURN_SPEC, settings=QUICK)
    strict = detect_drift(
        reference,
        shifted,
        spec=CHURN_SPEC,
        settings=QUICK.model_copy(update={"correction": "bonferroni"}),
    )
    m = len(strict.columns)
    for a, b in zip(loose.features, strict.features, strict=True):
        assert b.primary.p_value_adjusted == pytest.approx(min(1.0, a.p_value * m))  # type: ignore[operator]
    assert set(strict.drifted_features) <= set(loose.drifted_features)


def test_a_saved_baseline_gives_the_same_report(
    tmp_path: Path, reference: pd.DataFrame, shifted: pd.DataFrame, shifted_report: DriftReport
) -> None:
    build_baseline(reference, CHURN_SPEC, QUICK).save(tmp_path / "baseline")
    assert (tmp_path / "baseline" / "statistics.json").is_file()
    loaded = Baseline.load(tmp_path / "baseline")
    assert loaded.spec == CHURN_SPEC and loaded.rows == len(reference)
    from_baseline = detect_drift(loaded, shifted, settings=QUICK)
    assert from_baseline.to_dict() == shifted_report.to_dict()


def test_drift_report_json_follows_its_documented_schema_and_the_grade_contract(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    paths = write_drift_outputs(shifted_report, tmp_path)
    document = json.loads(paths["drift_report"].read_text())
    jsonschema.validate(document, json.loads(REPORT_SCHEMA_PATH.read_text()))
    # Contract 5: graded verdicts at the top and per feature; the booleans mean "major".
    assert document["grade"] == "major" and document["dataset_drift"] is True
    for feature in document["features"]:
        assert feature["grade"] in ("none", "moderate", "major", "insufficient_data")
        assert feature["drifted"] is (feature["grade"] == "major")
    charges = next(f for f in document["features"] if f["name"] == "monthly_charges")
    assert charges["method"] == "wasserstein" and charges["grade"] == "major"
    assert charges["statistic"] >= charges["threshold"] and charges["p_value"] < 0.05 / 3
    psi = next(t for t in charges["tests"] if t["method"] == "psi")
    assert (
        len(psi["parameters"]["edges"]) == 9
        and psi["parameters"]["smoothing"]["pseudo_count_per_bin"]
    )
    assert document["drifted_features"] == list(shifted_report.drifted_features)
    assert document["reference"]["mode"] == "training"


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
    assert {f["name"] for f in constraints["features"]} >= set(CHURN_SPEC.features)

    violations = json.loads(paths["constraint_violations"].read_text())["violations"]
    drift_checks = {
        v["feature_name"]
        for v in violations
        if v["constraint_check_type"] == "baseline_drift_check"
    }
    assert drift_checks == {
        f.name for f in shifted_report.columns if f.primary.grade in ("moderate", "major")
    }


def test_html_report_is_one_self_contained_file_with_the_grade_first(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    page = write_drift_outputs(shifted_report, tmp_path)["html"].read_text()
    assert "Major dataset drift" in page
    assert page.index("Major dataset drift") < page.index("monthly_charges")
    assert "<svg" in page and "insufficient data" in page
    assert "src=" not in page and "http://" not in page and "<link" not in page
    positions = [page.index(f"<h3>{name}") for name in shifted_report.drifted_features]
    assert max(positions) < min(
        page.index(f"<h3>{f.name}") for f in shifted_report.features if f.grade == "none"
    )


def _card(page: str, column: str) -> str:
    start = page.index(f"<h3>{column}")
    return page[start : page.index("</div>", start)]


def test_a_card_lists_the_deciding_statistic_and_the_checks_unless_all_are_asked_for(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    # Before: every distance was listed for every column, whichever decided.
    page = write_drift_outputs(shifted_report, tmp_path / "short")["html"].read_text()
    card = _card(page, "monthly_charges")
    checks = re.findall(r"<tr><td>(?:<strong>)?([a-z_ ]+?)(?:</strong>)?</td>", card)
    assert checks == ["wasserstein", "missing rate", "out of range"]
    full = write_drift_outputs(shifted_report, tmp_path / "full", all_statistics=True)["html"]
    every = re.findall(
        r"<tr><td>(?:<strong>)?([a-z_ ]+?)(?:</strong>)?</td>",
        _card(full.read_text(), "monthly_charges"),
    )
    assert every == [
        "ks",
        "psi",
        "wasserstein",
        "jensenshannon",
        "kl",
        "missing rate",
        "out of range",
    ]


def test_out_of_range_reads_as_shares_never_as_a_negative_effect_size(
    tmp_path: Path, shifted_report: DriftReport
) -> None:
    column = shifted_report.feature("age")
    check = column.check("out_of_range")
    assert check.statistic is not None and check.statistic < 0  # nothing out of range: below chance
    row = next(
        line
        for line in _card(
            write_drift_outputs(shifted_report, tmp_path)["html"].read_text(), "age"
        ).split("<tr>")
        if line.startswith("<td>out of range")
    )
    assert f"{check.statistic:.4g}" not in row and "-0." not in row
    share = check.parameters["share_outside"]
    assert f"{100 * share:.2f}% of current values outside the reference&#x27;s range" in row
    assert "chance alone gives" in row


def test_numeric_charts_are_densities_on_common_bins_so_the_reference_keeps_its_shape(
    tmp_path: Path,
) -> None:
    # Before: shares on the reference's own quantile bins, flat (a tenth each) by construction.
    rng = np.random.default_rng(4)
    spec = DatasetSpec(target="y", numeric=("amount",))
    reference = pd.DataFrame({"amount": rng.lognormal(3, 1, 5000), "y": 0})
    current = pd.DataFrame({"amount": rng.lognormal(3.3, 1, 5000), "y": 0})
    report = detect_drift(reference, current, spec=spec, settings=QUICK)
    page = write_drift_outputs(report, tmp_path)["html"].read_text()
    heights = [
        float(h)
        for h in re.findall(
            r"height='([0-9.]+)' fill='#8c959f' fill-opacity", _card(page, "amount")
        )
    ]
    assert len(heights) == 10  # the ten bins the statistics use, the reference drawn on each
    assert max(heights) > 5 * min(heights)  # a skewed shape, not a flat line
    assert "density" in _card(page, "amount") and "<line" in _card(page, "amount")  # an axis
