"""Writing a drift report: our JSON, SageMaker Model Monitor's files, and the HTML page.

Model Monitor formats (as documented by AWS for bring-your-own-container
monitors): ``statistics.json`` (per-feature statistics of the analysed data),
``constraints.json`` (what the baseline expects) and
``constraint_violations.json`` (what broke). Our monitor computes exact
statistics, so ``statistics.json`` carries the 10 materialised buckets but no
KLL sketch. Keys Model Monitor does not define are only added under ``mlcore``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcore.drift.html import render_html
from mlcore.drift.profiles import ColumnProfile, profile
from mlcore.drift.results import DriftReport, FeatureDrift
from mlcore.jsonio import write_json
from mlcore.settings import DriftSettings

if TYPE_CHECKING:
    from mlcore.drift.baseline import Baseline

logger = logging.getLogger(__name__)

# The documented schema of drift_report.json, shipped with the package.
REPORT_SCHEMA_PATH = Path(__file__).with_name("drift_report.schema.json")

OUTPUT_FILES = {
    "drift_report": "drift_report.json",
    "statistics": "statistics.json",
    "constraints": "constraints.json",
    "constraint_violations": "constraint_violations.json",
    "html": "drift_report.html",
}


def write_drift_outputs(report: DriftReport, out_dir: str | Path) -> dict[str, Path]:
    """Write every output file of ``report`` into ``out_dir``; returns name -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = DriftSettings.model_validate(dict(report.settings))
    paths = {
        "drift_report": write_json(out / OUTPUT_FILES["drift_report"], report.to_dict()),
        "statistics": write_json(
            out / OUTPUT_FILES["statistics"],
            statistics_document(
                [(c.name, c.current_profile) for c in report.columns], report.current_rows
            ),
        ),
        "constraints": write_json(
            out / OUTPUT_FILES["constraints"],
            constraints_document([(c.name, c.reference_profile) for c in report.columns], settings),
        ),
        "constraint_violations": write_json(
            out / OUTPUT_FILES["constraint_violations"], violations_document(report)
        ),
    }
    html_path = out / OUTPUT_FILES["html"]
    html_path.write_text(render_html(report), encoding="utf-8")
    paths["html"] = html_path
    logger.info("drift outputs written to %s", out)
    return paths


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
            "datatype_check_threshold": 1.0,
            "domain_content_threshold": 0.0,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                # KS distance floor for numeric columns, chi-squared p-value for categorical ones.
                "comparison_threshold": settings.min_effect_size,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": settings.p_value_threshold,
                "categorical_drift_method": "ChiSquared",
            },
        },
        "mlcore": {"drift_settings": settings.model_dump()},
    }


def violations_document(report: DriftReport) -> dict[str, Any]:
    violations: list[dict[str, str]] = []
    for column in report.columns:
        violations.extend(_violations_of(column))
    return {"violations": violations}


def _violations_of(column: FeatureDrift) -> list[dict[str, str]]:
    found = []
    primary = column.primary
    if primary.drifted and primary.statistic is not None:
        found.append(
            {
                "feature_name": column.name,
                "constraint_check_type": "baseline_drift_check",
                "description": primary.explanation(),
            }
        )
    if column.missing.drifted:
        found.append(
            {
                "feature_name": column.name,
                "constraint_check_type": "completeness_check",
                "description": (
                    f"completeness {1 - column.missing.current_rate:.4f} is below the baseline's "
                    f"{1 - column.missing.reference_rate:.4f} by more than "
                    f"{column.missing.threshold:g}"
                ),
            }
        )
    if column.unseen_categories:
        shown = ", ".join(repr(c) for c in column.unseen_categories[:5])
        more = len(column.unseen_categories) - 5
        found.append(
            {
                "feature_name": column.name,
                "constraint_check_type": "categorical_values_check",
                "description": (
                    f"{column.unseen_share:.2%} of values are categories absent from the baseline: "
                    f"{shown}{f' and {more} more' if more > 0 else ''}"
                ),
            }
        )
    return found


def baseline_statistics(baseline: Baseline) -> dict[str, Any]:
    return statistics_document(
        [(c.name, profile(c.summary)) for c in baseline.columns], baseline.rows
    )


def baseline_constraints(baseline: Baseline) -> dict[str, Any]:
    return constraints_document(
        [(c.name, profile(c.summary)) for c in baseline.columns], baseline.settings
    )
