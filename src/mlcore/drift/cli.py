"""``mlcore drift``: the drift job run by the monitors, the demo and users alike.

It exits 0 whether or not drift was found (the report says which) and non-zero,
through mlcore's CLI error handling, when the input is wrong.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from mlcore.errors import ConfigError, DataError
from mlcore.settings_file import DEFAULT_SETTINGS_FILE, SETTINGS_ENV_VAR, settings_path

if TYPE_CHECKING:
    import pandas as pd

    from mlcore.data import DatasetSpec
    from mlcore.drift.baseline import Baseline
    from mlcore.drift.results import DriftReport
    from mlcore.settings import MlopsSettings

logger = logging.getLogger(__name__)

# mlcore.drift.streaming.DEFAULT_CHUNK_ROWS, repeated so that building this parser (for
# `mlcore drift --help`) imports no numpy or pandas; a test checks that the two agree.
DEFAULT_CHUNK_ROWS = 100_000


def add_drift_parser(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the ``drift`` subcommand on the mlcore CLI."""
    parser = subparsers.add_parser(
        "drift",
        help="compare current data with the reference or the model's baseline",
        description=(
            "Per-column drift tests (KS, chi-squared, PSI, JS, KL, Wasserstein, missing rate), a "
            "dataset verdict, and Model Monitor-style outputs. Writes drift_report.json, "
            "statistics.json, constraints.json, constraint_violations.json and "
            "drift_report.html to --output. Exits 0 whether or not drift was found."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--reference",
        metavar="PATH",
        help="reference data: CSV or Parquet file, or a folder of them",
    )
    source.add_argument(
        "--baseline",
        metavar="DIR",
        help="a drift baseline folder (or a model folder holding baseline/) written by training",
    )
    parser.add_argument(
        "--current",
        metavar="PATH",
        required=True,
        help="data to check: CSV or Parquet (file or folder), or a folder of SageMaker "
        "data-capture JSON Lines files",
    )
    parser.add_argument("--output", metavar="DIR", required=True, help="folder for the reports")
    parser.add_argument(
        "--settings",
        metavar="FILE",
        help=f"lifecycle settings YAML (default: ${SETTINGS_ENV_VAR}, else ./{DEFAULT_SETTINGS_FILE} "
        "if present, else built-in defaults); its drift section sets the tests and thresholds",
    )
    parser.add_argument(
        "--spec",
        metavar="FILE",
        help="dataset spec JSON (from mlcore prep); with --reference, default: inferred from the "
        "reference's column types",
    )
    parser.add_argument(
        "--target",
        metavar="COL",
        help="target column, left out of the features when inferring the spec "
        "(default: dataset.target from the settings)",
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
        "--streaming",
        action="store_true",
        help="read the current data in chunks (memory bounded whatever its size); KS is then "
        "reported with a documented error bound, other statistics stay exact",
    )
    parser.add_argument(
        "--chunk-rows",
        type=int,
        metavar="N",
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows per chunk with --streaming (default: {DEFAULT_CHUNK_ROWS})",
    )
    parser.set_defaults(handler=run_drift_command)


def run_drift_command(args: argparse.Namespace) -> int:

    from mlcore.data import load_table
    from mlcore.drift.detect import detect_drift
    from mlcore.drift.outputs import write_drift_outputs

    settings = _settings(args.settings)
    prediction_columns = tuple(args.prediction_columns) if args.prediction_columns else None
    reference: pd.DataFrame | Baseline
    if args.baseline is not None:
        reference = _load_baseline(Path(args.baseline))
        spec = reference.spec
    else:
        reference = load_table(args.reference)
        spec = _resolve_spec(args, reference, settings, prediction_columns or ())
    if args.streaming:
        report = _streaming_report(args, reference, spec, settings, prediction_columns)
    else:
        current = read_current(Path(args.current), spec)
        report = detect_drift(
            reference,
            current,
            spec=spec,
            settings=settings.drift,
            prediction_columns=prediction_columns,
            workers=args.workers,
        )
    paths = write_drift_outputs(report, args.output)
    print(_summary(report, paths["drift_report"]))
    return 0


def _streaming_report(
    args: argparse.Namespace,
    reference: pd.DataFrame | Baseline,
    spec: DatasetSpec,
    settings: MlopsSettings,
    prediction_columns: tuple[str, ...] | None,
) -> DriftReport:
    import pandas as pd

    from mlcore.drift.baseline import build_baseline
    from mlcore.drift.streaming import detect_drift_streaming_path

    if isinstance(reference, pd.DataFrame):
        reference = build_baseline(
            reference, spec, settings.drift, prediction_columns=prediction_columns or ()
        )
    predictions = reference.prediction_columns if prediction_columns is None else prediction_columns
    current = Path(args.current)
    if not current.exists():
        raise DataError(f"data path does not exist: {current}")
    if not is_capture(current):
        # Data files may lack the baseline's prediction columns: check those the data has.
        available = _columns_of(current)
        predictions = tuple(c for c in predictions if c in available)
    return detect_drift_streaming_path(
        reference,
        current,
        settings=settings.drift,
        prediction_columns=predictions,
        workers=args.workers,
        chunk_rows=args.chunk_rows,
    )


def _columns_of(path: Path) -> set[str]:
    """Column names of a CSV or Parquet file (the first file of a folder), read cheaply."""
    import pandas as pd

    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if file.suffix.lower() == ".csv":
            return set(pd.read_csv(file, nrows=0).columns)
        if file.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            return set(pq.ParquetFile(file).schema_arrow.names)
    raise DataError(f"no .csv or .parquet files at {path}")


def read_current(path: Path, spec: DatasetSpec) -> pd.DataFrame:
    """CSV/Parquet (file or folder), or SageMaker data-capture JSON Lines (file or folder tree)."""
    from mlcore.data import load_table

    if is_capture(path):
        from mlcore.capture import read_capture

        return read_capture(path, spec)
    return load_table(path)


def is_capture(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() == ".jsonl"
    return path.is_dir() and next(path.rglob("*.jsonl"), None) is not None


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


def _settings(path: str | None) -> MlopsSettings:
    from mlcore.settings import load_settings

    # --settings, else $MLOPS_SETTINGS, else ./mlops.yaml, else defaults: as every command.
    return load_settings(settings_path(path))


def _resolve_spec(
    args: argparse.Namespace,
    reference: pd.DataFrame,
    settings: MlopsSettings,
    prediction_columns: tuple[str, ...],
) -> DatasetSpec:
    from mlcore.data import DatasetSpec, infer_spec

    if args.spec is not None:
        return DatasetSpec.load(args.spec)
    dataset = settings.dataset
    target = args.target or dataset.target
    if target not in reference.columns:
        raise ConfigError(
            f"cannot infer the feature columns: target column {target!r} is not in the reference "
            f"data (columns: {list(reference.columns)}). Pass --target COL or --spec spec.json"
        )
    timestamp = dataset.timestamp if dataset.timestamp in reference.columns else None
    ids = [c for c in dataset.id_columns if c in reference.columns]
    return infer_spec(
        reference,
        target=target,
        timestamp=timestamp,
        numeric=dataset.numeric,
        categorical=dataset.categorical,
        exclude=[*ids, *prediction_columns],
    )


def _summary(report: DriftReport, path: Path) -> str:
    verdict = "DATASET DRIFT" if report.dataset_drift else "no dataset drift"
    drifted = ", ".join(report.drifted_features) or "none"
    lines = [
        f"{verdict}: {len(report.drifted_features)}/{len(report.features)} features drifted "
        f"({report.share_drifted:.0%}; threshold {report.dataset_drift_share:.0%})",
        f"drifted features: {drifted}",
    ]
    if report.prediction_drift is not None:
        lines.append(f"prediction drift: {'yes' if report.prediction_drift else 'no'}")
    lines.append(f"report: {path}")
    return "\n".join(lines)


__all__ = ["add_drift_parser", "read_current", "run_drift_command"]
