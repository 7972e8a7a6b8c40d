"""The Spark engine: the streaming engine's summaries, computed per partition by Spark executors.

The driver builds the streaming plan from the training baseline (the
reference side: grids and category counts, no raw rows) and broadcasts it.
Each executor task reduces its partition of the current data, one Arrow batch
at a time (``mapInPandas``), to the same :class:`~mlcore.drift.streaming.CurrentSketch`
the streaming engine builds per chunk. Sketches add up (merging equals
summarising the concatenation), so Spark combines them in a tree on the
executors (``treeAggregate``) and the driver receives a few sketches, each of
bounded size whatever the rows or the categories' cardinality; the only rows in
them are the domain classifier's sample (at most
``drift.domain_classifier.max_rows``, chosen by a hash of their content, so the
same whatever the partitioning). The driver grades the merged sketch with the streaming
implementations of every registered check (:mod:`mlcore.drift.registry`), so
the report, its statistics and the output files are the streaming engine's,
whatever the partitioning; only ``mode`` says ``"spark"``.

Inputs: Parquet (a file or a folder; files of different columns are read with
Spark's schema merging) or SageMaker data capture (``.jsonl`` files under a
prefix, read whole with Spark's ``binaryFile`` source and decoded by
:mod:`mlcore.capture`, broken lines skipped and counted as there). Any URI Spark's
file systems read works: a local path, ``s3://``/``s3a://`` or ``abfss://``;
mlcore itself imports no cloud SDK.

One difference from the streaming engine: a column that some Parquet files
lack is read by Spark as missing values in those files' rows (the missing-value
check flags it), where the streaming engine reads file by file and reports the
column missing.

pyspark is the optional extra ``mlcore[spark]`` and is imported only here, when
the engine runs.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from mlcore.drift.baseline import Baseline
from mlcore.drift.results import DriftReport, ReferenceInfo
from mlcore.drift.sources import CAPTURE_METADATA_COLUMNS
from mlcore.drift.streaming import (
    DEFAULT_CHUNK_ROWS,
    CurrentSketch,
    StreamingPlan,
    WindowSummary,
)
from mlcore.errors import ConfigError, DataError
from mlcore.settings import DriftSettings

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import DataFrame, SparkSession

logger = logging.getLogger(__name__)

ENGINE: Final = "spark"
INSTALL_HINT = "pip install 'mlcore[spark]'"
CAPTURE_SUFFIX = ".jsonl"
_SKETCH_COLUMN = "sketch"
# How many partial merges the driver receives at most (each is one sketch: the grid counts of
# every numeric column, the category counts and the domain classifier's row sample).
MAX_DRIVER_SKETCHES = 16


def require_pyspark() -> ModuleType:
    """pyspark, or a ConfigError that says how to install it."""
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError(
            f"the spark drift engine needs pyspark, which is not installed: {INSTALL_HINT} "
            "(or choose --engine streaming)"
        ) from exc
    return pyspark


def spark_session(
    master: str | None = None, *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> SparkSession:
    """The active Spark session, or a new one on ``master`` (default: Spark's own, such as
    what spark-submit or the cloud's Spark job set; plain ``python`` gets local mode).

    Arrow batches of ``chunk_rows`` rows: one batch is what an executor summarises at a time.
    """
    require_pyspark()
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("mlcore-drift")
    if master is not None:
        builder = builder.master(master)
    resolved = master or SparkConf().get("spark.master", None)
    if (resolved is None or resolved.startswith("local")) and not os.environ.get("PYSPARK_PYTHON"):
        # Local executors are this machine's processes: run them on this interpreter (with
        # mlcore and its pins), not whichever python3 is first on PATH. pyspark reads the
        # variable when the context starts (the spark.pyspark.python setting is spark-submit's).
        os.environ["PYSPARK_PYTHON"] = sys.executable
    spark = (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    return spark


def detect_drift_spark(
    baseline: Baseline,
    current: DataFrame,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    reference_info: ReferenceInfo | None = None,
    expected_columns: Sequence[str] = (),
) -> DriftReport:
    """Drift of a Spark DataFrame of current rows against ``baseline``.

    Prediction columns default to the baseline's that ``current`` holds; ``expected_columns``
    are never reported as extra (the capture metadata, for instance).
    """
    summary = summarise_spark(
        baseline,
        current,
        settings=settings,
        prediction_columns=prediction_columns,
        expected_columns=expected_columns,
    )
    return summary.report(reference_info)


def summarise_spark(
    baseline: Baseline,
    current: DataFrame,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    expected_columns: Sequence[str] = (),
) -> WindowSummary:
    """The summary :func:`detect_drift_spark` grades, before grading."""
    names = [str(c) for c in current.columns]
    if prediction_columns is None:
        prediction_columns = tuple(c for c in baseline.prediction_columns if c in names)
    plan = StreamingPlan.from_baseline(baseline, settings, prediction_columns=prediction_columns)
    present = [c for c in plan.columns if c in names]
    if not present:
        # Nothing to summarise: every checked column is reported missing, over the row count.
        empty = dataclasses.replace(plan.empty_sketch(), rows=int(current.count()))
        return _summary(plan, empty, names, expected_columns)
    shipped = _broadcast_plan(current.sparkSession, plan)
    sketches = current.select(*present).mapInPandas(
        lambda batches: _sketch_table_partition(shipped, batches),
        schema=f"{_SKETCH_COLUMN} binary",
    )
    total = _merge_all(sketches.rdd.map(lambda row: bytes(row[0])), plan)
    shipped.unpersist()
    return _summary(plan, total, names, expected_columns)


def detect_drift_spark_path(
    baseline: Baseline,
    uri: str,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    reference_info: ReferenceInfo | None = None,
    spark: SparkSession | None = None,
    master: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> DriftReport:
    """Drift of the Parquet data or SageMaker data capture at ``uri`` (a local path or any URI
    Spark reads: ``s3://``, ``s3a://``, ``abfss://``) against ``baseline``."""
    summary = summarise_spark_path(
        baseline,
        uri,
        settings=settings,
        prediction_columns=prediction_columns,
        spark=spark,
        master=master,
        chunk_rows=chunk_rows,
    )
    return summary.report(reference_info)


def summarise_spark_path(
    baseline: Baseline,
    uri: str,
    *,
    settings: DriftSettings | None = None,
    prediction_columns: Sequence[str] | None = None,
    spark: SparkSession | None = None,
    master: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> WindowSummary:
    """The summary :func:`detect_drift_spark_path` grades, before grading."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    spark = spark or spark_session(master, chunk_rows=chunk_rows)
    if _holds_capture(spark, uri):
        return _summarise_capture(
            spark,
            baseline,
            uri,
            settings=settings,
            prediction_columns=prediction_columns,
            chunk_rows=chunk_rows,
        )
    current = _read_parquet(spark, uri)
    logger.info(
        "checking drift of %s with Spark (%d partitions)", uri, current.rdd.getNumPartitions()
    )
    return summarise_spark(
        baseline, current, settings=settings, prediction_columns=prediction_columns
    )


def _summarise_capture(
    spark: SparkSession,
    baseline: Baseline,
    uri: str,
    *,
    settings: DriftSettings | None,
    prediction_columns: Sequence[str] | None,
    chunk_rows: int,
) -> WindowSummary:
    from mlcore.capture import capture_columns

    # Capture records hold every model output the endpoint returned: all prediction columns.
    if prediction_columns is None:
        prediction_columns = baseline.prediction_columns
    plan = StreamingPlan.from_baseline(baseline, settings, prediction_columns=prediction_columns)
    shipped = _broadcast_plan(spark, plan)
    files = _capture_files(spark, uri).select("path", "content")
    spec = baseline.spec
    # One row per file (not per record): a task decodes its files one at a time, chunk by chunk.
    sketches = files.rdd.mapPartitions(
        lambda rows: _sketch_capture_partition(shipped, spec, chunk_rows, rows)
    )
    total = _merge_all(sketches, plan)
    shipped.unpersist()
    return _summary(plan, total, capture_columns(spec), CAPTURE_METADATA_COLUMNS)


def _summary(
    plan: StreamingPlan,
    total: CurrentSketch,
    names: Sequence[str],
    expected_columns: Sequence[str],
) -> WindowSummary:
    # Which columns exist is a property of the data's schema, not of the partitions that held
    # rows: an empty window still reports a missing column.
    total = dataclasses.replace(
        total,
        absent=frozenset(c for c in plan.columns if c not in names),
        seen=frozenset(names),
    )
    logger.info("Spark summarised %d current rows", total.rows)
    return WindowSummary(plan, total, expected_columns=tuple(expected_columns), mode=ENGINE)


def _broadcast_plan(spark: SparkSession, plan: StreamingPlan) -> Broadcast[StreamingPlan]:
    # The reference rows kept for the domain classifier are used on the driver only.
    return spark.sparkContext.broadcast(dataclasses.replace(plan, reference_sample=None))


def _merge_all(sketches: Any, plan: StreamingPlan) -> CurrentSketch:
    """Merge serialised partition sketches on the executors, in a tree, then on the driver."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PythonException

    zero = pickle.dumps(plan.empty_sketch())
    # Deep enough that at most MAX_DRIVER_SKETCHES partial merges reach the driver at once.
    depth, partitions = 2, max(1, sketches.getNumPartitions())
    while partitions ** (1 / depth) > MAX_DRIVER_SKETCHES:
        depth += 1
    try:
        with warnings.catch_warnings():
            # pyspark 3.5 leaves the socket that brings results to the driver to the garbage
            # collector; the warning says nothing about our data.
            warnings.filterwarnings("ignore", "unclosed <socket", ResourceWarning)
            merged: bytes = sketches.treeAggregate(
                zero, _merge_serialised, _merge_serialised, depth=depth
            )
    except (PythonException, Py4JJavaError) as exc:
        raise DataError(f"a Spark task failed: {_task_error(str(exc))}") from exc
    total: CurrentSketch = pickle.loads(merged)  # our own executors' output
    return total


def _task_error(text: str) -> str:
    """What an executor's Python error said, from the traceback text Spark hands back (inside
    Java's stack trace when an RDD action failed): mlcore's own error when there is one."""
    raised = [
        line.strip()
        for line in text.splitlines()
        if re.match(r"^\s*[\w.]*(Error|Exception): ", line)
        and not line.strip().startswith(("py4j.", "org.apache.", "java."))
    ]
    ours = [line for line in raised if line.startswith("mlcore.")]
    if ours:
        return ours[-1].removeprefix("mlcore.errors.")
    return raised[-1] if raised else _first_line(Exception(text))


def _merge_serialised(first: bytes, second: bytes) -> bytes:
    merged = pickle.loads(first).merge(pickle.loads(second))
    return pickle.dumps(merged)


def _sketch_table_partition(
    shipped: Broadcast[StreamingPlan], batches: Iterable[pd.DataFrame]
) -> Iterator[pd.DataFrame]:
    """One partition's Arrow batches reduced to one sketch (an empty one for no rows)."""
    plan = shipped.value
    total = plan.empty_sketch()
    for batch in batches:
        total = total.merge(plan.sketch(batch, workers=1))
    yield pd.DataFrame({_SKETCH_COLUMN: [pickle.dumps(total)]})


def _sketch_capture_partition(
    shipped: Broadcast[StreamingPlan], spec: Any, chunk_rows: int, rows: Iterable[Any]
) -> Iterator[bytes]:
    """One partition's capture files decoded and reduced to one sketch."""
    from mlcore.capture import file_record_lines, frames_of_records

    plan = shipped.value
    total = plan.empty_sketch()
    for row in rows:
        lines = bytes(row["content"]).splitlines(keepends=True)
        records = file_record_lines(lines, str(row["path"]))
        for frame in frames_of_records(records, spec, chunk_rows=chunk_rows):
            total = total.merge(plan.sketch(frame, workers=1))
    yield pickle.dumps(total)


def _holds_capture(spark: SparkSession, uri: str) -> bool:
    """Capture when the URI names a ``.jsonl`` file or a folder holding some (at any depth)."""
    if uri.rstrip("/").lower().endswith(CAPTURE_SUFFIX):
        return True
    if uri.rstrip("/").lower().endswith((".parquet", ".pq")):
        return False
    # Listing only: the binaryFile source reads a file's content only when it is selected.
    return bool(_capture_files(spark, uri).select("path").limit(1).count())


def _capture_files(spark: SparkSession, uri: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    reader = (
        spark.read.format("binaryFile")
        .option("pathGlobFilter", f"*{CAPTURE_SUFFIX}")
        .option("recursiveFileLookup", "true")
    )
    try:
        return reader.load(uri)
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise DataError(f"data path does not exist: {uri}") from exc
        raise DataError(f"cannot list the current data at {uri}: {_first_line(exc)}") from exc


def _read_parquet(spark: SparkSession, uri: str) -> DataFrame:
    from pyspark.errors import AnalysisException

    try:
        return spark.read.option("mergeSchema", "true").parquet(uri)
    except AnalysisException as exc:
        raise DataError(
            f"cannot read the current data at {uri} as Parquet or data capture (.jsonl): "
            f"{_first_line(exc)}"
        ) from exc


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


__all__ = [
    "ENGINE",
    "INSTALL_HINT",
    "detect_drift_spark",
    "detect_drift_spark_path",
    "require_pyspark",
    "spark_session",
    "summarise_spark",
    "summarise_spark_path",
]
