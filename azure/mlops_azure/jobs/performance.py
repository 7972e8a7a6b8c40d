"""The model-performance signal on Azure: live metrics from collected traffic and late labels.

The deployment's data collector writes JSON Lines under
``modelDataCollector/<endpoint>/<deployment>/<collection>/YYYY/MM/DD/HH/``; each line
holds one scored request, its rows in ``data``. The scoring script gives every row an
``inference_id`` in both collections and returns those ids to the caller, who uploads
labels later as CSV or Parquet with ``inference_id`` and the target column.

This job joins the model's inputs and outputs by inference id, then the labels, and
scores them with mlcore's own model-quality code (:mod:`mlcore.quality`): the same
primary metric (``gate.primary_metric``) and floor (``monitoring.min_live_metric``) as
the AWS model-quality monitor. When the metric is below the floor it tags its run the
way Azure's own monitors tag a breached signal, so the same Event Grid subscription
starts retraining.

Run as ``python -m mlops_azure.jobs.performance --inputs DIR --outputs DIR --labels DIR
--model-dir DIR --settings FILE --output DIR [--lookback-days N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlcore.data import DatasetSpec
from mlcore.errors import DataError, MlcoreError
from mlcore.jsonio import write_json
from mlcore.model import METADATA_FILE, PREDICTION_COLUMN, SCORE_COLUMN
from mlcore.problem import Problem
from mlcore.quality import (
    INFERENCE_ID_COLUMN,
    QualityReport,
    evaluate_quality,
    join_ground_truth,
    read_ground_truth,
    write_quality_outputs,
)
from mlcore.settings import MlopsSettings, load_settings
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.jobs.reference import output_columns

logger = logging.getLogger(__name__)

SIGNAL_NAME = "model_performance"
SKIPPED_FILE = "skipped.json"


def collected_files(folder: Path, *, since: date | None) -> list[Path]:
    """The collector's JSON Lines files under ``folder``, those from ``since`` on when given.

    The date comes from the ``YYYY/MM/DD`` folders the collector writes; a file outside
    that layout is always read.
    """
    files = []
    for path in sorted(folder.rglob("*.jsonl")):
        parts = path.relative_to(folder).parts
        day = _folder_date(parts)
        if since is None or day is None or day >= since:
            files.append(path)
    return files


def _folder_date(parts: tuple[str, ...]) -> date | None:
    for i in range(len(parts) - 2):
        try:
            return date(int(parts[i]), int(parts[i + 1]), int(parts[i + 2]))
        except ValueError:
            continue
    return None


def _records(files: Sequence[Path]) -> Iterator[dict[str, Any]]:
    for file in files:
        with file.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{file}:{line_number} is not JSON: {exc}") from exc
                rows = record.get("data") if isinstance(record, dict) else None
                if rows is None and isinstance(record, dict) and record.get("dataref"):
                    raise DataError(
                        f"{file}:{line_number} stores its rows by reference ({record['dataref']}); "
                        "the collector does that for large payloads, which this job does not read: "
                        "send smaller requests"
                    )
                if not isinstance(rows, list):
                    raise DataError(
                        f"{file}:{line_number} is not a data collector record (no 'data' list)"
                    )
                yield from rows


def read_collection(folder: Path, *, since: date | None = None) -> pd.DataFrame:
    """Every collected row under ``folder`` as one frame (empty when nothing was collected)."""
    rows = list(_records(collected_files(folder, since=since)))
    frame = pd.DataFrame(rows)
    if not frame.empty and INFERENCE_ID_COLUMN not in frame.columns:
        raise DataError(
            f"rows collected under {folder} carry no {INFERENCE_ID_COLUMN!r}: they were "
            "collected by an older scoring script; only rows scored since the rollout of "
            "azure/scoring/score.py can be labelled"
        )
    return frame


def predictions_frame(
    inputs: pd.DataFrame, outputs: pd.DataFrame, spec: DatasetSpec
) -> pd.DataFrame:
    """Features beside mlcore's ``prediction``/``score``, one row per inference id."""
    prediction, score = output_columns(spec.target)
    if outputs.empty:
        return pd.DataFrame(columns=[INFERENCE_ID_COLUMN, PREDICTION_COLUMN])
    missing = [c for c in (prediction,) if c not in outputs.columns]
    if missing:
        raise DataError(
            f"collected model outputs lack {missing}; they have {list(outputs.columns)}"
        )
    renamed = outputs.rename(columns={prediction: PREDICTION_COLUMN, score: SCORE_COLUMN})
    if inputs.empty:
        return renamed
    features = inputs.drop(
        columns=[c for c in inputs.columns if c in renamed.columns and c != INFERENCE_ID_COLUMN]
    )
    return renamed.merge(features, on=INFERENCE_ID_COLUMN, how="left", validate="one_to_one")


def breach_message(report: QualityReport) -> str:
    return (
        f"The signal '{SIGNAL_NAME}' {BREACH_WORDING}.\n"
        f"live {report.primary_metric} {report.primary_value:.4f} on {report.rows} labelled rows "
        f"is below monitoring.min_live_metric {report.min_live_metric}"
    )


def log_to_mlflow(report: QualityReport) -> None:
    """Metrics to the job's MLflow run (Azure ML's Metrics tab); the breach tag when below."""
    import mlflow  # in the job environment (azure/requirements-job.txt)

    with mlflow.start_run():  # Azure ML sets MLFLOW_RUN_ID: this is the job's own run
        mlflow.log_metrics({f"live_{k}": v for k, v in report.metrics.items() if v == v})
        mlflow.log_metric("labelled_rows", report.rows)
        if report.below_threshold:
            mlflow.set_tag(BREACH_TAG, breach_message(report))


def run(
    *,
    inputs: Path,
    outputs: Path,
    labels: Path,
    model_dir: Path,
    settings: MlopsSettings,
    output: Path,
    lookback_days: int | None,
    now: datetime | None = None,
) -> QualityReport | None:
    """Score the labelled live traffic; None (and ``skipped.json``) when nothing is labelled yet."""
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    spec = DatasetSpec.from_dict(metadata["spec"])
    since = (
        (now or datetime.now(UTC)).date() - timedelta(days=lookback_days) if lookback_days else None
    )
    predictions = predictions_frame(
        read_collection(inputs, since=since), read_collection(outputs, since=since), spec
    )
    truth = read_ground_truth(labels, target=spec.target)
    joined = join_ground_truth(predictions, truth, target=spec.target)
    if joined.labelled == 0:
        # Too little evidence is never a breach (as an insufficient_data drift grade).
        write_json(
            output / SKIPPED_FILE,
            {
                "reason": "no collected prediction has a label yet",
                "collected_rows": len(predictions),
                "labels": len(truth),
            },
        )
        logger.warning(
            "no labelled predictions yet: %d collected, %d labels", len(predictions), len(truth)
        )
        return None
    # Scored as the model's problem (its classes, positive label), whatever the window holds.
    problem = Problem.from_metadata(spec, metadata)
    report = evaluate_quality(joined, spec=spec, settings=settings, problem=problem)
    write_quality_outputs(report, output)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_azure.jobs.performance")
    parser.add_argument("--inputs", required=True, help="collected model_inputs folder")
    parser.add_argument("--outputs", required=True, help="collected model_outputs folder")
    parser.add_argument(
        "--labels", required=True, help="ground truth: CSV/Parquet with inference_id"
    )
    parser.add_argument("--model-dir", required=True, help="the live model")
    parser.add_argument("--settings", required=True, help="mlops.yaml")
    parser.add_argument("--output", required=True, help="folder for quality_report.json")
    parser.add_argument("--lookback-days", type=int, default=None, help="only traffic this recent")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        report = run(
            inputs=Path(args.inputs),
            outputs=Path(args.outputs),
            labels=Path(args.labels),
            model_dir=Path(args.model_dir),
            settings=load_settings(args.settings),
            output=Path(args.output),
            lookback_days=args.lookback_days,
        )
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if report is not None:
        log_to_mlflow(report)
    # Like `mlcore quality`: exit 0 either way; the breach tag is what acts.
    return 0


if __name__ == "__main__":
    sys.exit(main())
