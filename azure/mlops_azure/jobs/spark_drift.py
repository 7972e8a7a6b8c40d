"""mlcore's drift job on Azure ML serverless Spark: the collected traffic of one window
against the live model's training baseline, graded as on AWS and locally.

The entry file of the Spark drift job (:mod:`mlops_azure.spark_drift` defines it). It
runs on the Spark driver, where spark-submit has started the session:

1. The window is the whole hours since the firing of ``monitoring.schedule`` before this
   run's ``--trigger-time`` (:meth:`mlcore.schedule.Schedule.window_before`: the rule the
   AWS monitors and Azure's MonitorSchedule follow, so every hour is judged once). The data collector
   writes ``<collection>/YYYY/MM/DD/HH/*.jsonl`` (one record per request, its rows in
   ``data``), and this reads the hour folders of the window, as Azure's own monitor does
   (azureml-assets, model_monitoring/components/src/model_data_collector_preprocessor).
2. Sizing: the window's captured bytes (file lengths; no data read) choose the engine
   for ``monitoring.engine: auto``: Spark above ``monitoring.spark_min_capture_mb``, else
   the streaming engine on the driver.
3. Spark joins the rows of ``model_inputs`` and ``model_outputs`` by ``inference_id``,
   renames the outputs to mlcore's ``prediction``/``score`` and writes the window as
   Parquet to ``--prepared``. Nothing is collected to the driver.
4. ``mlcore drift`` (``from mlcore.cli import main``) grades it against the baseline the
   training run stored in the prediction reference asset (``<reference>/baseline``), and
   the reports go to ``--report``.
5. A ``major`` dataset grade tags the run as Azure's monitors tag a breached signal, so
   the retrain subscription (:mod:`mlops_azure.retrain`) starts retraining, with its cooldown.

Run as ``spark_drift.py --model-inputs URI --model-outputs URI --reference URI --settings
URI --prepared URI --report URI --trigger-time TIME``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlcore.drift.grading import GRADE_LEVELS
from mlcore.errors import ConfigError, DataError, MlcoreError
from mlcore.jsonio import write_json
from mlcore.model import PREDICTION_COLUMN, SCORE_COLUMN
from mlcore.settings import MlopsSettings, load_settings
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.jobs.reference import output_columns

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

SIGNAL_NAME = "mlcore_drift"
INFERENCE_ID_COLUMN = "inference_id"
# The reference asset holds the model's drift baseline beside its MLTable (jobs/reference.py).
BASELINE_FOLDER = "baseline"
ENGINE_FILE = "engine.json"
SKIPPED_FILE = "skipped.json"
REPORT_FILE = "drift_report.json"
_MIB = 1024 * 1024

Engine = Literal["spark", "streaming"]


@dataclass(frozen=True)
class Window:
    """``[start, end)`` on whole hours, the granularity of the collector's folders."""

    start: datetime
    end: datetime

    @classmethod
    def of_run(cls, settings: MlopsSettings, trigger_time: datetime) -> Window:
        """The hours the run triggered at ``trigger_time`` judges."""
        start, end = settings.monitoring.schedule.window_before(trigger_time)
        return cls(start, end)

    def hour_folders(self) -> list[str]:
        hours, current = [], self.start
        while current < self.end:
            hours.append(current.strftime("%Y/%m/%d/%H"))
            current += timedelta(hours=1)
        return hours


def choose_engine(configured: str, captured_bytes: int, min_capture_mb: float) -> Engine:
    """The engine for this window: ``auto`` is Spark only above ``min_capture_mb``."""
    if configured == "auto":
        return "spark" if captured_bytes > min_capture_mb * _MIB else "streaming"
    if configured in ("spark", "streaming"):
        return configured  # type: ignore[return-value]
    raise ConfigError(f"monitoring.engine {configured!r} is not one of streaming, spark, auto")


# --- Hadoop file system: abfss:// on Azure, local paths in tests ---------------------------


def _path(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    assert jvm is not None, "no JVM behind the Spark session"
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def _join(root: str, child: str) -> str:
    return f"{root.rstrip('/')}/{child}"


def existing_hours(spark: SparkSession, root: str, window: Window) -> dict[str, int]:
    """Hour folder -> bytes of its ``.jsonl`` files, for the window's folders that exist."""
    found = {}
    for hour in window.hour_folders():
        fs, path = _path(spark, _join(root, hour))
        if fs.exists(path):
            statuses = fs.listStatus(path)
            found[hour] = sum(
                int(s.getLen()) for s in statuses if s.getPath().getName().endswith(".jsonl")
            )
    return found


def fetch(spark: SparkSession, uri: str, local: Path) -> Path:
    """Copy a file or folder from storage to the driver's disk."""
    fs, path = _path(spark, uri)
    if not fs.exists(path):
        raise DataError(f"{uri} does not exist")
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    local.parent.mkdir(parents=True, exist_ok=True)
    # useRawLocalFileSystem: no .crc files beside the copies.
    fs.copyToLocalFile(False, path, jvm.org.apache.hadoop.fs.Path(str(local)), True)
    return local


def publish(spark: SparkSession, local: Path, uri: str) -> None:
    """Copy every file of a local folder to the storage folder ``uri``."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    for file in sorted(p for p in local.rglob("*") if p.is_file()):
        fs, target = _path(spark, _join(uri, file.relative_to(local).as_posix()))
        fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(str(file)), target)


# --- the window's rows --------------------------------------------------------------------


def _collected_rows(spark: SparkSession, root: str, hours: Sequence[str]) -> DataFrame:
    """One row per scored row of the collector's records (``data`` exploded)."""
    from pyspark.sql import functions as F

    records = spark.read.json([_join(_join(root, hour), "*.jsonl") for hour in hours])
    if "dataref" in records.columns:
        by_reference = records.filter(F.col("dataref").isNotNull()).limit(1).count()
        if by_reference:
            raise DataError(
                f"records under {root} store their rows by reference (dataref): the collector "
                "does that for large payloads, which this job does not read; send smaller requests"
            )
    if "data" not in records.columns:
        raise DataError(f"records under {root} are not data collector records (no 'data' list)")
    return records.select(F.explode("data").alias("row")).select("row.*")


def prepare_window(
    spark: SparkSession,
    *,
    model_inputs: str,
    model_outputs: str,
    input_hours: Sequence[str],
    output_hours: Sequence[str],
    target: str,
) -> DataFrame:
    """The features beside mlcore's ``prediction``/``score``, joined by inference id."""
    inputs = _collected_rows(spark, model_inputs, input_hours)
    if INFERENCE_ID_COLUMN not in inputs.columns:
        raise DataError(
            f"rows collected under {model_inputs} carry no {INFERENCE_ID_COLUMN!r}: they were "
            "collected by an older scoring script (azure/scoring/score.py adds it)"
        )
    if not output_hours:
        return inputs.drop(INFERENCE_ID_COLUMN)
    prediction, score = output_columns(target)
    outputs = _collected_rows(spark, model_outputs, output_hours)
    if prediction not in outputs.columns:
        raise DataError(
            f"collected model outputs lack {prediction!r}; they have {sorted(outputs.columns)}"
        )
    renamed = {prediction: PREDICTION_COLUMN, score: SCORE_COLUMN}
    outputs = outputs.select(
        INFERENCE_ID_COLUMN,
        *(outputs[c].alias(renamed[c]) for c in (prediction, score) if c in outputs.columns),
    )
    # Rows whose outputs were not collected keep their features (a null prediction).
    joined = inputs.join(outputs, on=INFERENCE_ID_COLUMN, how="left")
    return joined.drop(INFERENCE_ID_COLUMN)


# --- the verdict --------------------------------------------------------------------------


def drift_argv(
    engine: Engine, *, current: str, baseline: Path, output: Path, settings: Path
) -> list[str]:
    """``mlcore drift`` for the chosen engine (contract 7: ``--engine spark``; ``--streaming``)."""
    common = ["--current", current, "--baseline", str(baseline), "--output", str(output)]
    common += ["--settings", str(settings)]
    if engine == "spark":
        return ["drift", "--engine", "spark", *common]
    return ["drift", "--streaming", *common]


def breach_message(report: dict[str, Any]) -> str:
    drifted = ", ".join(report.get("drifted_features") or []) or "none named"
    return (
        f"The signal '{SIGNAL_NAME}' {BREACH_WORDING}.\n"
        f"mlcore drift graded the dataset major; major features: {drifted}"
    )


def tag_run(report: dict[str, Any], engine: Engine, environ: dict[str, str]) -> str | None:
    """Grade metrics on the job's MLflow run, and the breach tag on a major grade.

    Returns the breach message when the run was tagged. Outside Azure ML (no
    ``MLFLOW_RUN_ID``) nothing can be tagged, and the log says so.
    """
    run_id = environ.get("MLFLOW_RUN_ID")
    grade = report["grade"]
    message = breach_message(report) if grade == "major" else None
    if not run_id:
        logger.warning(
            "not an Azure ML run (no MLFLOW_RUN_ID): grade %s is in the report only", grade
        )
        return None
    from mlflow import MlflowClient  # azureml-mlflow, in the job's conda conf

    client = MlflowClient()
    if grade in GRADE_LEVELS:
        client.log_metric(run_id, "drift_grade", GRADE_LEVELS[grade])
    client.set_tag(run_id, "drift_grade", grade)
    client.set_tag(run_id, "drift_engine", engine)
    if message is not None:
        # The tag Azure's monitors set on a breached signal: the retrain subscription's filter.
        client.set_tag(run_id, BREACH_TAG, message)
    return message


def run(
    spark: SparkSession,
    *,
    model_inputs: str,
    model_outputs: str,
    reference: str,
    settings_uri: str,
    prepared: str,
    report_uri: str,
    trigger_time: datetime,
    environ: dict[str, str] | None = None,
    drift_main: Any = None,
) -> int:
    """The whole job; returns ``mlcore drift``'s exit code (0 also for a skipped window)."""
    if drift_main is None:
        from mlcore.cli import main as drift_main
    environ = dict(os.environ) if environ is None else environ
    with tempfile.TemporaryDirectory(prefix="mlcore-drift-") as tmp:
        local = Path(tmp)
        settings_file = fetch(spark, settings_uri, local / "mlops.yaml")
        settings: MlopsSettings = load_settings(settings_file)
        window = Window.of_run(settings, trigger_time)
        baseline = fetch(spark, _join(reference, BASELINE_FOLDER), local / BASELINE_FOLDER)
        report_dir = local / "report"
        report_dir.mkdir()
        inputs = existing_hours(spark, model_inputs, window)
        facts: dict[str, Any] = {
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "configured_engine": settings.monitoring.engine,
            "captured_bytes": sum(inputs.values()),
            "spark_min_capture_mb": settings.monitoring.spark_min_capture_mb,
        }
        if not inputs:
            # Too little evidence is never drift (as an insufficient_data grade).
            write_json(report_dir / SKIPPED_FILE, {**facts, "reason": "nothing was collected"})
            publish(spark, report_dir, report_uri)
            logger.warning("nothing collected between %s and %s", window.start, window.end)
            return 0
        engine = choose_engine(
            settings.monitoring.engine, facts["captured_bytes"], facts["spark_min_capture_mb"]
        )
        frame = prepare_window(
            spark,
            model_inputs=model_inputs,
            model_outputs=model_outputs,
            input_hours=sorted(inputs),
            output_hours=sorted(existing_hours(spark, model_outputs, window)),
            target=load_baseline_target(baseline),
        )
        frame.write.mode("overwrite").parquet(prepared)
        # The streaming engine reads local files: the window is at most spark_min_capture_mb.
        current = prepared if engine == "spark" else str(fetch(spark, prepared, local / "current"))
        argv = drift_argv(
            engine, current=current, baseline=baseline, output=report_dir, settings=settings_file
        )
        code = int(drift_main(argv))
        if code != 0:
            return code
        write_json(report_dir / ENGINE_FILE, {**facts, "engine": engine})
        publish(spark, report_dir, report_uri)
        report = json.loads((report_dir / REPORT_FILE).read_text())
        tag_run(report, engine, environ)
        logger.info("dataset grade %s (%s engine)", report["grade"], engine)
    return 0


def load_baseline_target(baseline: Path) -> str:
    """The target the model predicts: its outputs are collected under that name."""
    from mlcore.drift.baseline import Baseline

    return Baseline.load(baseline).spec.target


def parse_trigger_time(value: str) -> datetime:
    """The schedule's trigger time; an unfilled expression or a bad time is an error, not "now"."""
    try:
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"--trigger-time {value!r} is not an ISO 8601 time: the job runs from its schedule, "
            "which passes ${{creation_context.trigger_time}}; to run it by hand, pass the time "
            "whose window to judge"
        ) from exc
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark_drift.py")
    parser.add_argument("--model-inputs", required=True, help="collected model_inputs folder")
    parser.add_argument("--model-outputs", required=True, help="collected model_outputs folder")
    parser.add_argument("--reference", required=True, help="the model's prediction reference")
    parser.add_argument("--settings", required=True, help="mlops.yaml")
    parser.add_argument("--prepared", required=True, help="folder for the window as Parquet")
    parser.add_argument("--report", required=True, help="folder for the drift reports")
    parser.add_argument(
        "--trigger-time",
        required=True,
        help="the run's trigger time (ISO 8601; the schedule passes creation_context.trigger_time)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()
    try:
        return run(
            spark,
            model_inputs=args.model_inputs,
            model_outputs=args.model_outputs,
            reference=args.reference,
            settings_uri=args.settings,
            prepared=args.prepared,
            report_uri=args.report,
            trigger_time=parse_trigger_time(args.trigger_time),
        )
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
