"""Writing a drift report: our JSON, SageMaker Model Monitor's files, and the HTML page."""

from __future__ import annotations

import logging
from pathlib import Path

from mlcore.drift.html import ReportContext, render_html
from mlcore.drift.monitor_formats import (
    constraints_document,
    statistics_document,
    violations_document,
)
from mlcore.drift.results import DriftReport
from mlcore.jsonio import write_json
from mlcore.settings import DriftSettings

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


def write_drift_outputs(
    report: DriftReport,
    out_dir: str | Path,
    *,
    context: ReportContext | None = None,
    all_statistics: bool = False,
) -> dict[str, Path]:
    """Write every output file of ``report`` into ``out_dir``; returns name -> path.

    ``context`` (when the report was generated, which model, the current window) heads the
    HTML page and is recorded in drift_report.json; ``all_statistics`` lists every method's
    statistic per column in the HTML, not only the deciding one's.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    context = context or ReportContext()
    settings = DriftSettings.model_validate(dict(report.settings))
    document = {**report.to_dict(), "context": context.to_dict()}
    paths = {
        "drift_report": write_json(out / OUTPUT_FILES["drift_report"], document),
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
    html_path.write_text(
        render_html(report, context, all_statistics=all_statistics), encoding="utf-8"
    )
    paths["html"] = html_path
    logger.info("drift outputs written to %s", out)
    return paths
