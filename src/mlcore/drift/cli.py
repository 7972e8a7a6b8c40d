"""``mlcore drift``: the drift job run by the monitors, the demo and users alike.

It exits 0 whatever the grade (the report says it) and non-zero, through
mlcore's CLI error handling, when the input is wrong. Any pair of tables works
(``--reference A --current B``, from any directory): the feature types are
inferred from the reference; the target, when both tables hold it, is
checked for label drift apart from the features. Heavy imports wait until the
command runs, so ``mlcore drift --help`` stays quick.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mlcore.settings_file import add_settings_option

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

    from mlcore.data import DatasetSpec
    from mlcore.drift.baseline import Baseline
    from mlcore.drift.html import ReportContext
    from mlcore.drift.results import DriftReport, ReferenceInfo
    from mlcore.drift.streaming import WindowSummary
    from mlcore.settings import MlopsSettings

logger = logging.getLogger(__name__)

# Kept in step with mlcore.settings.ReferenceMode and streaming.DEFAULT_CHUNK_ROWS (a test
# checks both) without importing them for --help.
REFERENCE_MODES = ("training", "same_period_last_year", "previous_window")
DEFAULT_CHUNK_ROWS = 100_000
ENGINES = ("exact", "streaming", "spark")


def add_drift_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``drift`` subcommand on the mlcore CLI."""
    parser = subparsers.add_parser(
        "drift",
        help="compare current data with the reference or the model's baseline",
        description=(
            "Per column a graded verdict (none, moderate, major, or insufficient data) from the "
            "configured method (Wasserstein, PSI, KS, chi-squared, JS or KL) and data-quality "
            "checks (missing rate, out-of-range and unseen values, data types, missing and extra "
            "columns); a domain classifier across columns; a dataset grade. Writes "
            "drift_report.json, statistics.json, constraints.json, constraint_violations.json "
            "and drift_report.html to --output, and with --baseline drift_profile.npz, the "
            "window's summary that --profiles merges later. Exits 0 whatever the grade."
        ),
    )
    parser.add_argument(
        "--reference",
        metavar="PATH",
        help="reference data: CSV or Parquet (file or folder), or data capture (with --baseline "
        "or --spec). With --baseline: the data of the seasonal or previous window",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a drift baseline folder (or a model folder holding baseline/, or model.tar.gz) "
        "written by training",
    )
    current = parser.add_mutually_exclusive_group(required=True)
    current.add_argument(
        "--current",
        metavar="PATH",
        help="data to check: CSV or Parquet (file or folder), or a folder of SageMaker "
        "data-capture JSON Lines files. With --engine spark: Parquet or data capture at a local "
        "path or any URI Spark reads (s3://, s3a://, abfss://)",
    )
    current.add_argument(
        "--profiles",
        metavar="PATH",
        nargs="+",
        help="instead of --current: grade the merge of saved drift profiles (the "
        "drift_profile.npz every run against a baseline writes; files, or folders searched for "
        "them), e.g. a day from its hourly runs. Needs the --baseline they were written with",
    )
    parser.add_argument("--output", metavar="DIR", required=True, help="folder for the reports")
    add_settings_option(
        parser,
        what=", else built-in defaults; its drift section sets methods, bands and windows",
    )
    parser.add_argument(
        "--reference-mode",
        choices=REFERENCE_MODES,
        help="what the current window is compared with (default: drift.reference.mode): the "
        "training baseline, the same period a year earlier or the previous window, both taken "
        "from --reference by timestamp",
    )
    parser.add_argument(
        "--timestamp",
        metavar="COL",
        help="event-time column for the windows (default: dataset.timestamp; inference_time "
        "for data capture)",
    )
    parser.add_argument(
        "--window-start",
        metavar="TIME",
        help="start of the current window, ISO 8601 (default: the current data's first time)",
    )
    parser.add_argument(
        "--window-end",
        metavar="TIME",
        help="end of the current window, ISO 8601 (default: the current data's last time)",
    )
    parser.add_argument(
        "--spec",
        metavar="FILE",
        help="dataset spec JSON (from mlcore prep); with --reference alone, default: inferred "
        "from the reference's column types",
    )
    parser.add_argument(
        "--target",
        metavar="COL",
        help="target column: never a feature, checked for label drift when both sides hold it "
        "(default: dataset.target from the settings; absent is fine)",
    )
    parser.add_argument(
        "--prediction-column",
        metavar="COL",
        action="append",
        dest="prediction_columns",
        help="model output column to check for prediction drift (repeatable). Default: none "
        "with --reference; the baseline's own with --baseline",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="threads for per-column work (default: CPU count)"
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="exact (default): the whole current data in memory; streaming: read in chunks, "
        "memory bounded whatever its size, KS and Wasserstein reported with a documented error "
        "bound, the rest exact; spark: the streaming engine's summaries computed by Spark "
        "executors per partition and merged (needs --baseline and pyspark: pip install "
        "'mlcore[spark]')",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="the same as --engine streaming",
    )
    parser.add_argument(
        "--spark-master",
        metavar="URL",
        help="with --engine spark: the Spark master, e.g. local[4] (default: Spark's own, such "
        "as what spark-submit or the cloud's Spark job set; local mode for plain python)",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        metavar="N",
        default=DEFAULT_CHUNK_ROWS,
        help="rows per chunk with --engine streaming, rows per Arrow batch an executor "
        f"summarises with --engine spark (default: {DEFAULT_CHUNK_ROWS})",
    )
    parser.add_argument(
        "--model-version",
        metavar="LABEL",
        help="the model's version in its registry (e.g. 7 or churn:7), shown in the report's "
        "header beside the model file's hash (default: not shown)",
    )
    parser.add_argument(
        "--all-statistics",
        action="store_true",
        help="list every method's statistic per column in drift_report.html, not only the "
        "deciding one's (drift_report.json always holds them all)",
    )
    parser.set_defaults(handler=run_drift_command)


def run_drift_command(args: argparse.Namespace) -> int:
    from mlcore.drift.outputs import write_drift_outputs
    from mlcore.drift.saved_profiles import PROFILE_FILE, save_profile

    started = _now()
    report, window, summarised = _report_and_window(args)
    context = _context(args, started, window)
    paths = write_drift_outputs(
        report, args.output, context=context, all_statistics=args.all_statistics
    )
    if summarised is not None:
        span = None
        if context.current_window_start and context.current_window_end:
            span = (context.current_window_start, context.current_window_end)
        save_profile(
            Path(args.output) / PROFILE_FILE, summarised.plan, summarised.sketch, window=span
        )
    print(summary(report, paths["drift_report"]))
    return 0


def drift_report_for(args: argparse.Namespace) -> tuple[DriftReport, ReportContext]:
    """The report, and what its header says beside it: the model and the current window."""
    started = _now()
    report, window, _ = _report_and_window(args)
    return report, _context(args, started, window)


def _context(
    args: argparse.Namespace, started: datetime, window: tuple[str, str] | None
) -> ReportContext:
    from mlcore.drift.html import ReportContext

    start, end = window if window is not None else (args.window_start, args.window_end)
    return ReportContext(
        generated_at=started,
        model_version=getattr(args, "model_version", None),
        model_sha256=_model_sha256(Path(args.baseline)) if args.baseline is not None else None,
        current_window_start=start,
        current_window_end=end,
    )


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _report_and_window(
    args: argparse.Namespace,
) -> tuple[DriftReport, tuple[str, str] | None, WindowSummary | None]:
    """The report, the current window's span when known, and the summary to save as the
    window's profile (runs against a training baseline only)."""
    from mlcore.errors import ConfigError

    settings = load_drift_settings(args.settings)
    mode = args.reference_mode or settings.drift.reference.mode
    if args.profiles is not None:
        return _merged_profiles(args, settings, mode)
    args.engine = engine_of(args)
    if args.baseline is None and args.reference is None:
        raise ConfigError("give the reference: --baseline MODEL_DIR or --reference DATA")
    if args.engine == "spark" and (args.reference is not None or mode != "training"):
        raise ConfigError(
            "--engine spark compares the current data with the training baseline: give "
            "--baseline MODEL_DIR (and no --reference, reference mode training); the windowed "
            "and table references run on --engine streaming or exact"
        )
    baseline = _load_baseline(Path(args.baseline)) if args.baseline is not None else None
    if mode == "training":
        if baseline is not None and args.reference is not None:
            raise ConfigError(
                "--baseline and --reference together compare with a window of the reference "
                "data: add --reference-mode same_period_last_year or previous_window (or set "
                "drift.reference.mode), or give only one of them"
            )
        if baseline is not None:
            return _against_baseline(args, baseline, settings)
        return (*_against_table(args, settings, mode="data"), None)
    if args.reference is None:
        raise ConfigError(
            f"the {mode} reference is taken from reference data by timestamp: pass --reference "
            "PATH (a table or data capture holding at least that window)"
        )
    return (*_against_table(args, settings, mode=mode, baseline=baseline), None)


def _merged_profiles(
    args: argparse.Namespace, settings: MlopsSettings, mode: str
) -> tuple[DriftReport, tuple[str, str] | None, WindowSummary]:
    """Grade saved profiles merged: the report the streaming engine gives on all their rows."""
    from mlcore.drift.results import ReferenceInfo
    from mlcore.drift.saved_profiles import merge_profiles, prediction_columns_of, profile_files
    from mlcore.drift.streaming import StreamingPlan, WindowSummary
    from mlcore.errors import ConfigError

    if args.baseline is None or args.reference is not None or mode != "training":
        raise ConfigError(
            "--profiles are summaries against a training baseline: give the --baseline they "
            "were written with (and no --reference, reference mode training)"
        )
    if args.engine or args.streaming or args.spark_master or args.window_start or args.window_end:
        raise ConfigError(
            "--profiles grades saved summaries: --engine, --window-start and --window-end "
            "apply to --current data only (the windows are the profiles' own)"
        )
    paths = profile_files(args.profiles)
    baseline = _load_baseline(Path(args.baseline))
    predictions = prediction_columns_of(paths)
    plan = StreamingPlan.from_baseline(baseline, settings.drift, prediction_columns=predictions)
    merged = merge_profiles(paths, plan)
    logger.info("merged %d drift profiles (%d rows)", len(paths), merged.sketch.rows)
    summarised = WindowSummary(plan, merged.sketch)
    info = ReferenceInfo(mode="training", source=str(args.baseline))
    return summarised.report(info), merged.window, summarised


def engine_of(args: argparse.Namespace) -> str:
    """The engine from --engine and --streaming (its older spelling), checked together."""
    from mlcore.errors import ConfigError

    engine: str = args.engine or ("streaming" if args.streaming else "exact")
    if args.streaming and engine != "streaming":
        raise ConfigError(
            f"--streaming means --engine streaming, but --engine {engine} was given: keep one"
        )
    if args.spark_master is not None and engine != "spark":
        raise ConfigError(f"--spark-master applies to --engine spark, not to --engine {engine}")
    return engine


def _against_baseline(
    args: argparse.Namespace, baseline: Baseline, settings: MlopsSettings
) -> tuple[DriftReport, tuple[str, str] | None, WindowSummary]:
    from mlcore.drift.detect import detect_drift
    from mlcore.drift.results import ReferenceInfo
    from mlcore.drift.sources import CAPTURE_METADATA_COLUMNS, is_capture, read_data
    from mlcore.drift.streaming import StreamingPlan, WindowSummary

    info = ReferenceInfo(mode="training", source=str(args.baseline))
    predictions = tuple(args.prediction_columns) if args.prediction_columns else None
    if args.engine == "spark":
        from mlcore.drift.spark import summarise_spark_path

        on_spark = summarise_spark_path(
            baseline,
            str(args.current),
            settings=settings.drift,
            prediction_columns=predictions,
            master=args.spark_master,
            chunk_rows=args.chunk_rows,
        )
        return on_spark.report(info), None, on_spark
    if args.engine == "streaming":
        from mlcore.drift.streaming import summarise_streaming_path

        streamed = summarise_streaming_path(
            baseline,
            Path(args.current),
            settings=settings.drift,
            prediction_columns=predictions,
            workers=args.workers,
            chunk_rows=args.chunk_rows,
        )
        return streamed.report(info), None, streamed
    current_path = Path(args.current)
    current = read_data(current_path, baseline.spec)
    capture = is_capture(current_path)
    expected = CAPTURE_METADATA_COLUMNS if capture else ()
    report = detect_drift(
        baseline,
        current,
        settings=settings.drift,
        prediction_columns=predictions,
        workers=args.workers,
        reference_info=info,
        expected_columns=expected,
    )
    # The same rows summarised as the streaming engine would: the window's saved profile.
    checked = [c for c in baseline.prediction_columns if c in current.columns]
    plan = StreamingPlan.from_baseline(
        baseline, settings.drift, prediction_columns=checked if predictions is None else predictions
    )
    profile = WindowSummary(plan, plan.sketch(current, workers=args.workers), expected)
    window = _span(current, args.timestamp or _event_time(capture, baseline.spec))
    return report, window, profile


def _against_table(
    args: argparse.Namespace,
    settings: MlopsSettings,
    *,
    mode: str,
    baseline: Baseline | None = None,
) -> tuple[DriftReport, tuple[str, str] | None]:
    from mlcore.data import DatasetSpec
    from mlcore.drift.detect import detect_drift
    from mlcore.drift.sources import CAPTURE_METADATA_COLUMNS, is_capture, read_data

    reference_path, current_path = Path(args.reference), Path(args.current)
    spec: DatasetSpec | None = None
    if baseline is not None:
        spec = baseline.spec
    elif args.spec is not None:
        spec = DatasetSpec.load(args.spec)
    reference = read_data(reference_path, spec)
    current = read_data(current_path, spec)
    predictions: tuple[str, ...] = tuple(args.prediction_columns or ())
    if baseline is not None and not predictions:
        predictions = tuple(
            c
            for c in baseline.prediction_columns
            if c in reference.columns and c in current.columns
        )
    if spec is None:
        spec = infer_drift_spec(args, reference, settings, predictions)
    capture = is_capture(current_path)
    reference, info, window = _reference_window(
        args, reference, current, spec, settings, mode, capture
    )
    if window is None:
        window = _span(current, args.timestamp or _event_time(capture, spec))
    if args.engine == "streaming":
        from mlcore.drift.baseline import build_baseline
        from mlcore.drift.streaming import detect_drift_streaming_path

        built = build_baseline(reference, spec, settings.drift, prediction_columns=predictions)
        streamed = detect_drift_streaming_path(
            built,
            current_path,
            settings=settings.drift,
            prediction_columns=predictions,
            workers=args.workers,
            chunk_rows=args.chunk_rows,
            reference_info=info,
        )
        return streamed, window
    report = detect_drift(
        reference,
        current,
        spec=spec,
        settings=settings.drift,
        prediction_columns=predictions,
        workers=args.workers,
        reference_info=info,
        expected_columns=CAPTURE_METADATA_COLUMNS if capture else (),
    )
    return report, window


def _reference_window(
    args: argparse.Namespace,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    settings: MlopsSettings,
    mode: str,
    capture: bool,
) -> tuple[pd.DataFrame, ReferenceInfo, tuple[str, str] | None]:
    """The reference rows, what they are, and the current window they were chosen for."""
    import pandas as pd

    from mlcore.drift import windows
    from mlcore.drift.results import ReferenceInfo
    from mlcore.errors import ConfigError

    if mode == "data":
        return reference, ReferenceInfo(mode="data", source=str(args.reference)), None
    column = args.timestamp or ("inference_time" if capture else spec.timestamp)
    if column is None:
        raise ConfigError(
            f"the {mode} reference needs event times: set dataset.timestamp or pass --timestamp"
        )
    window = windows.window_of(current, column)
    try:
        if args.window_start is not None:
            window = windows.Window(pd.Timestamp(args.window_start, tz="UTC"), window.end)
        if args.window_end is not None:
            window = windows.Window(window.start, pd.Timestamp(args.window_end, tz="UTC"))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--window-start/--window-end must be ISO 8601 times: {exc}") from exc
    reference_window = windows.reference_window(
        window,
        mode,  # type: ignore[arg-type]
        seasonal_offset_days=settings.drift.reference.seasonal_offset_days,
    )
    start, end = reference_window.iso()
    selected = windows.rows_in(reference, column, reference_window)
    info = ReferenceInfo(
        mode=mode,  # type: ignore[arg-type]
        source=str(args.reference),
        window_start=start,
        window_end=end,
    )
    return selected, info, window.iso()


def infer_drift_spec(
    args: argparse.Namespace,
    reference: pd.DataFrame,
    settings: MlopsSettings,
    prediction_columns: tuple[str, ...],
) -> DatasetSpec:
    """Feature types of any table: declared in the settings, else inferred from the reference's
    dtypes. The target (when present), the timestamp, id columns, prediction columns and
    datetime-like columns are never features."""
    from mlcore.data import DatasetSpec
    from mlcore.data.spec import infer_feature_columns, infer_task
    from mlcore.errors import ConfigError

    dataset = settings.dataset
    target = args.target or dataset.target
    timestamp = args.timestamp or dataset.timestamp
    present = set(map(str, reference.columns))
    exclude = [target, *(c for c in dataset.id_columns if c in present), *prediction_columns]
    if timestamp:
        exclude.append(timestamp)
    numeric, categorical = infer_feature_columns(
        reference, exclude=exclude, numeric=dataset.numeric, categorical=dataset.categorical
    )
    if not numeric and not categorical:
        raise ConfigError(
            f"no feature columns left in the reference data (columns: {list(reference.columns)}) "
            "once the target, timestamp, id and prediction columns are set aside"
        )
    task = dataset.task or (
        infer_task(reference[target]) if target in present else "classification"
    )
    return DatasetSpec(
        target=target,
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        timestamp=timestamp if timestamp in present else None,
        task=task,
        id_columns=tuple(c for c in dataset.id_columns if c in present),
    )


def load_drift_settings(path: str | None) -> MlopsSettings:
    """The settings file in force (:mod:`mlcore.settings_file`), else the built-in defaults."""
    from mlcore.cli import command_settings

    return command_settings(path, required=False)


def _event_time(capture: bool, spec: DatasetSpec) -> str | None:
    return "inference_time" if capture else spec.timestamp


def _span(frame: pd.DataFrame, column: str | None) -> tuple[str, str] | None:
    """The first and last event time of the current data, for the report's header; None
    (the header says so) without a timestamp column or with times that do not parse."""
    from mlcore.drift import windows
    from mlcore.errors import DataError

    if column is None or column not in frame.columns:
        return None
    try:
        return windows.window_of(frame, column).iso()
    except DataError as exc:
        logger.warning("the report's header shows no current window: %s", exc)
        return None


def _model_sha256(path: Path) -> str | None:
    """The sha256 recorded with the model a baseline came with (its model folder's
    metadata.json, also inside SageMaker's model.tar.gz), or None for a bare baseline."""
    import json
    import tarfile

    from mlcore.drift.baseline import BASELINE_FILE
    from mlcore.model import METADATA_FILE, MODEL_SHA256_KEY, SAGEMAKER_MODEL_ARCHIVE

    text = None
    candidates = [path / METADATA_FILE]
    if (path / BASELINE_FILE).is_file():  # a model's baseline/ folder: the model is its parent
        candidates.append(path.parent / METADATA_FILE)
    for candidate in candidates:
        if candidate.is_file():
            text = candidate.read_text()
            break
    archive = path / SAGEMAKER_MODEL_ARCHIVE
    if text is None and archive.is_file():
        # Only the metadata is read from the archive; the baseline was unpacked already.
        with tarfile.open(archive) as tar:
            member = next(
                (m for m in tar.getmembers() if m.name.lstrip("./") == METADATA_FILE), None
            )
            extracted = tar.extractfile(member) if member is not None else None
            text = extracted.read().decode() if extracted is not None else None
    value = json.loads(text).get(MODEL_SHA256_KEY) if text is not None else None
    return None if value is None else str(value)


def _load_baseline(path: Path) -> Baseline:
    from mlcore.drift.baseline import BASELINE_FILE, Baseline
    from mlcore.model import unpack_model_dir

    # A model folder holds the baseline in baseline/, and a Processing job receives the model
    # as SageMaker's model.tar.gz: accept the baseline folder, the model folder or the archive.
    if not (path / BASELINE_FILE).is_file():
        path = unpack_model_dir(path)
    if not (path / BASELINE_FILE).is_file() and (path / "baseline" / BASELINE_FILE).is_file():
        path = path / "baseline"
    return Baseline.load(path)


def summary(report: DriftReport, path: Path) -> str:
    verdict = {
        "major": "MAJOR DATASET DRIFT",
        "moderate": "moderate dataset drift (alert)",
        "none": "no dataset drift",
        "insufficient_data": "insufficient data for a verdict",
    }[report.grade]
    lines = [
        f"{verdict}: {len(report.drifted_features)}/{len(report.features)} features major, "
        f"{len(report.alerting_features)} moderate or major "
        f"({report.share_drifted:.0%} major; the dataset grades at {report.dataset_drift_share:.0%})",
        f"major: {', '.join(report.drifted_features) or 'none'}",
    ]
    moderate = [f for f in report.alerting_features if f not in report.drifted_features]
    if moderate:
        lines.append(f"moderate: {', '.join(moderate)}")
    if report.domain_classifier is not None and report.domain_classifier.statistic is not None:
        lines.append(
            f"domain classifier: AUC {report.domain_classifier.statistic:.3f} "
            f"({report.domain_classifier.grade})"
        )
    if report.prediction_grade is not None:
        lines.append(f"prediction drift: {report.prediction_grade}")
    if report.label_grade is not None:
        lines.append(f"label drift: {report.label_grade}")
    problems = len(report.missing_columns) + len(report.extra_columns)
    if problems:
        lines.append(
            f"columns: {len(report.missing_columns)} missing, {len(report.extra_columns)} extra"
        )
    if report.note:
        lines.append(report.note)
    lines.extend(f"warning: {w}" for w in report.warnings)
    lines.append(f"report: {path}")
    return "\n".join(lines)


__all__ = [
    "add_drift_parser",
    "drift_report_for",
    "engine_of",
    "infer_drift_spec",
    "run_drift_command",
]
