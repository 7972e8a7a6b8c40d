"""SageMaker Model Monitor's file formats: statistics.json, constraints.json, violations.

As documented by AWS for bring-your-own-container monitors
(docs.aws.amazon.com/sagemaker/latest/dg/model-monitor-byoc-constraints.html and
model-monitor-interpreting-violations.html): ``statistics.json`` (per-feature
statistics; our statistics are exact, so it carries the 10 materialised
buckets but no KLL sketch), ``constraints.json`` (what the baseline expects)
and ``constraint_violations.json`` (what broke). Keys Model Monitor does not
define are only added under ``mlcore``.

Violation names are Model Monitor's: ``baseline_drift_check``,
``completeness_check``, ``categorical_values_check``, ``data_type_check``,
``missing_column_check`` and ``extra_column_check``; ``out_of_range_check`` is
ours (Model Monitor checks ranges only as ``is_non_negative``). A drift
violation's description ends in Model Monitor's "distance: X exceeds
threshold: Y", which AWS's sample post-processors parse with
``re.search("distance: (.+) exceeds threshold: (.+)", description)``
(aws-samples/amazon-sagemaker-drift-detection,
batch_pipeline/pipelines/postprocess_monitor_script.py); the numbers come
last so that pattern reads them as floats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlcore.drift.grading import at_least
from mlcore.drift.profiles import ColumnProfile, profile
from mlcore.drift.results import DriftReport, FeatureDrift, TestResult
from mlcore.settings import DriftSettings

if TYPE_CHECKING:
    from mlcore.drift.baseline import Baseline

_VIOLATION_OF_CHECK = {
    "missing_rate": "completeness_check",
    "unseen_values": "categorical_values_check",
    "out_of_range": "out_of_range_check",
}


def statistics_document(
    columns: list[tuple[str, ColumnProfile]], item_count: int
) -> dict[str, Any]:
    features = []
    for name, prof in columns:
        common = {"num_present": prof.num_present, "num_missing": prof.num_missing}
        if prof.inferred_type == "String":
            features.append(
                {
                    "name": name,
                    "inferred_type": "String",
                    "string_statistics": {
                        "common": common,
                        "distinct_count": len(prof.categories),
                        "distribution": {
                            "categorical": {
                                "buckets": [{"value": v, "count": c} for v, c in prof.categories]
                            }
                        },
                    },
                }
            )
        else:
            features.append(
                {
                    "name": name,
                    "inferred_type": prof.inferred_type,
                    "numerical_statistics": {
                        "common": common,
                        "mean": prof.mean,
                        "sum": prof.sum,
                        "std_dev": prof.std_dev,
                        "min": prof.min,
                        "max": prof.max,
                        "distribution": {
                            "kll": {
                                "buckets": [
                                    {"lower_bound": lo, "upper_bound": hi, "count": c}
                                    for lo, hi, c in prof.buckets
                                ]
                            }
                        },
                    },
                }
            )
    return {"version": 0, "dataset": {"item_count": item_count}, "features": features}


def constraints_document(
    columns: list[tuple[str, ColumnProfile]], settings: DriftSettings
) -> dict[str, Any]:
    """What the baseline expects, with Model Monitor's thresholds holding distances.

    ``comparison_threshold`` is documented as a distance between the two CDFs
    (the KS statistic), so it holds the KS method's major band;
    ``categorical_comparison_threshold`` holds the configured categorical
    method's major band (a distance too, as AWS documents it). The rules that
    actually grade are under ``mlcore``.
    """
    features = []
    for name, prof in columns:
        entry: dict[str, Any] = {
            "name": name,
            "inferred_type": prof.inferred_type,
            "completeness": prof.completeness,
        }
        if prof.inferred_type == "String":
            entry["string_constraints"] = {"domains": [v for v, _ in prof.categories]}
        else:
            entry["num_constraints"] = {"is_non_negative": prof.min is not None and prof.min >= 0}
        features.append(entry)
    return {
        "version": 0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            # Every value must have the baseline's type: one "N/A" among numbers is a violation.
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": settings.bands.unseen_values.major,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": settings.bands.ks.major,
                # "Robust" is Model Monitor's KS-test-based comparison; ours also needs significance.
                "comparison_method": "Robust",
                "categorical_comparison_threshold": settings.band(
                    settings.categorical_method
                ).major,
                "categorical_drift_method": "ChiSquared",
            },
        },
        "mlcore": {
            "numeric_method": settings.numeric_method,
            "categorical_method": settings.categorical_method,
            "drift_settings": settings.model_dump(),
        },
    }


def violations_document(report: DriftReport) -> dict[str, Any]:
    violations: list[dict[str, str]] = []
    for name in report.missing_columns:
        violations.append(
            {
                "feature_name": name,
                "constraint_check_type": "missing_column_check",
                "description": (
                    f"the baseline's column {name!r} is missing from the current data; "
                    "it was not checked for drift"
                ),
            }
        )
    for name in report.extra_columns:
        violations.append(
            {
                "feature_name": name,
                "constraint_check_type": "extra_column_check",
                "description": f"column {name!r} is in the current data but not in the baseline",
            }
        )
    for column in report.columns:
        violations.extend(_violations_of(column))
    if report.domain_classifier is not None and at_least(
        report.domain_classifier.grade, "moderate"
    ):
        violations.append(
            {
                "feature_name": "(dataset)",
                "constraint_check_type": "baseline_drift_check",
                "description": drift_description(report.domain_classifier),
            }
        )
    return {"violations": violations}


def drift_description(result: TestResult) -> str:
    """Model Monitor's wording for a graded drift, numbers last."""
    band = result.bands.major if result.grade == "major" else result.bands.moderate
    p_value = result.deciding_p_value
    return (
        f"{result.grade} drift by {result.method} ({result.significance_test} p-value "
        f"{p_value:.3g} < {result.alpha:.3g}). Baseline drift distance: "
        f"{result.statistic:.6g} exceeds threshold: {band:g}"
    )


def _violations_of(column: FeatureDrift) -> list[dict[str, str]]:
    found = []
    if at_least(column.primary.grade, "moderate"):
        found.append(
            {
                "feature_name": column.name,
                "constraint_check_type": "baseline_drift_check",
                "description": drift_description(column.primary),
            }
        )
    for check in column.checks:
        if at_least(check.grade, "moderate"):
            found.append(
                {
                    "feature_name": column.name,
                    "constraint_check_type": _VIOLATION_OF_CHECK[check.method],
                    "description": _check_description(column, check),
                }
            )
    if column.data_type.violated:
        data_type = column.data_type
        examples = ", ".join(repr(e) for e in data_type.examples)
        found.append(
            {
                "feature_name": column.name,
                "constraint_check_type": "data_type_check",
                "description": (
                    f"Data type match requirement is not met. Expected data type: "
                    f"{data_type.expected}, Expected match: 100.0%. Observed: Only "
                    f"{data_type.observed_share:.4%} of data is {data_type.expected}."
                    + (f" Values that are not numbers: {examples}." if examples else "")
                ),
            }
        )
    return found


def _check_description(column: FeatureDrift, check: TestResult) -> str:
    parameters = check.parameters
    if check.method == "missing_rate":
        return (
            f"completeness {1 - parameters['current_rate']:.4f} is below the baseline's "
            f"{1 - parameters['reference_rate']:.4f}: the missing-value rate rose by "
            f"{check.statistic:.4f}, {check.grade} (threshold {_band(check):g})"
        )
    if check.method == "unseen_values":
        shown = ", ".join(repr(c) for c in column.unseen_categories[:5])
        # The distinct count (estimated from a sketch): the column lists the most frequent only.
        more = round(float(parameters["unseen_categories"])) - min(5, len(column.unseen_categories))
        return (
            f"{parameters['unseen_share']:.2%} of values are categories absent from the "
            f"baseline (chance gives {parameters['expected_share']:.2%}): "
            f"{shown}{f' and {more} more' if more > 0 else ''}; {check.grade} (threshold "
            f"{_band(check):g})"
        )
    return (
        f"{parameters['share_outside']:.2%} of values lie outside the baseline's range "
        f"[{column.reference_profile.min:g}, {column.reference_profile.max:g}] "
        f"({parameters['below_reference_min']} below, {parameters['above_reference_max']} above; "
        f"chance gives {parameters['expected_share']:.2%}); {check.grade} (threshold "
        f"{_band(check):g})"
    )


def _band(check: TestResult) -> float:
    return check.bands.major if check.grade == "major" else check.bands.moderate


def baseline_statistics(baseline: Baseline) -> dict[str, Any]:
    return statistics_document(
        [(c.name, profile(c.summary)) for c in baseline.columns], baseline.rows
    )


def baseline_constraints(baseline: Baseline) -> dict[str, Any]:
    return constraints_document(
        [(c.name, profile(c.summary)) for c in baseline.columns], baseline.settings
    )
