"""Live model quality: join late ground truth with captured predictions and score them.

Labels for served predictions arrive later (a customer churns, or not, weeks after
the prediction). The model-quality monitor joins those labels with the endpoint's
captured predictions by inference id, then computes the task's metrics overall and
per segment (the slice columns from ``mlops.yaml``), and compares the primary metric
with ``monitoring.min_live_metric``.

Ground truth is read from CSV or Parquet with ``inference_id`` and the target
column, or from SageMaker's ground-truth JSON Lines::

    {"groundTruthData": {"data": "1", "encoding": "CSV"},
     "eventMetadata": {"eventId": "<inference id>"}, "eventVersion": "0"}

Run as ``mlcore quality --current CAPTURE --labels PATH --baseline MODEL_DIR --output DIR
[--settings FILE]`` (the options named as ``mlcore drift`` names them); it writes ``quality_report.json`` and
``evaluation.json`` (SageMaker's model-quality layout) and exits 0 whether or not the
metric is below its threshold, like ``mlcore drift``: alarms act on the published
metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

from mlcore.data import DatasetSpec, load_table
from mlcore.errors import ConfigError, DataError, MlcoreError
from mlcore.evaluate import (
    LOWER_IS_BETTER,
    PROBABILITY_METRICS,
    MetricReport,
    evaluation_document,
    score_predictions,
    slice_metrics,
)
from mlcore.jsonio import write_json
from mlcore.model import METADATA_FILE, PREDICTION_COLUMN, SCORE_COLUMN
from mlcore.problem import BINARY, MULTICLASS, Problem
from mlcore.settings import MlopsSettings
from mlcore.settings_file import add_settings_option

logger = logging.getLogger(__name__)

INFERENCE_ID_COLUMN = "inference_id"
QUALITY_REPORT_FILE = "quality_report.json"
EVALUATION_FILE = "evaluation.json"
MODEL_ARCHIVE = "model.tar.gz"
_GROUND_TRUTH_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class JoinedLabels:
    """Captured predictions that found their label, and how many on each side did not."""

    frame: pd.DataFrame
    labelled: int
    unlabelled_predictions: int
    unmatched_labels: int


@dataclass(frozen=True)
class QualityReport:
    """Metrics on labelled live traffic and whether the primary metric breached its floor.

    ``slices`` is ``{column: {value: {metric: value}}}`` as
    :func:`mlcore.evaluate.slice_metrics` returns it (small slices carry ``rows`` only).
    ``problem`` is the model's problem (type, classes, positive label); ``notes`` says
    which metrics the captured data cannot give, and why.
    """

    task: str
    rows: int
    unlabelled_predictions: int
    unmatched_labels: int
    primary_metric: str
    primary_value: float
    min_live_metric: float
    below_threshold: bool
    metrics: dict[str, float] = field(default_factory=dict)
    slices: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    problem: dict[str, Any] = field(default_factory=dict)
    standard_deviations: dict[str, float] = field(default_factory=dict)
    confusion_matrix: dict[str, dict[str, int]] | None = None
    notes: list[str] = field(default_factory=list)
    metric_report: MetricReport | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "metric_report"}


def read_ground_truth(path: str | Path, *, target: str) -> pd.DataFrame:
    """Read labels into a frame with ``inference_id`` and ``target``.

    ``path`` is a CSV/Parquet file or folder (columns ``inference_id`` and the
    target), or SageMaker ground-truth JSON Lines (a ``.jsonl`` file or a folder of
    them, searched recursively as SageMaker writes them by hour).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"ground-truth path does not exist: {path}")
    if path.is_dir():
        json_files = sorted(
            p for p in path.rglob("*") if p.suffix.lower() in _GROUND_TRUTH_SUFFIXES
        )
    elif path.suffix.lower() in _GROUND_TRUTH_SUFFIXES:
        json_files = [path]
    else:
        json_files = []
    if json_files:
        return _read_ground_truth_jsonl(json_files, target=target)
    frame = load_table(path)
    missing = [c for c in (INFERENCE_ID_COLUMN, target) if c not in frame.columns]
    if missing:
        raise DataError(
            f"ground truth in {path} lacks columns {missing}; it has {list(frame.columns)}. "
            f"Write one row per labelled request with {INFERENCE_ID_COLUMN!r} and {target!r}."
        )
    return frame[[INFERENCE_ID_COLUMN, target]]


def _read_ground_truth_jsonl(files: Sequence[Path], *, target: str) -> pd.DataFrame:
    ids: list[str] = []
    labels: list[str] = []
    for file in files:
        with file.open(encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    ids.append(str(record["eventMetadata"]["eventId"]))
                    labels.append(str(record["groundTruthData"]["data"]).strip())
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise DataError(
                        f"{file}:{line_number} is not a SageMaker ground-truth record (need "
                        f"groundTruthData.data and eventMetadata.eventId): {exc!r}"
                    ) from exc
    values = pd.Series(labels, dtype=object)
    numbers = pd.to_numeric(values, errors="coerce")
    # Labels travel as text; numeric class codes must compare equal to numeric predictions.
    label_column = numbers if numbers.notna().all() else values
    return pd.DataFrame({INFERENCE_ID_COLUMN: pd.Series(ids, dtype=object), target: label_column})


def join_ground_truth(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, target: str
) -> JoinedLabels:
    """Inner-join captured predictions with labels on ``inference_id``.

    Predictions captured without an inference id cannot be labelled and count as
    unlabelled. A label given twice for one inference id is an error, since the two
    could disagree.
    """
    for name, frame, needed in (
        ("captured predictions", predictions, (INFERENCE_ID_COLUMN, PREDICTION_COLUMN)),
        ("ground truth", labels, (INFERENCE_ID_COLUMN, target)),
    ):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"{name} lack columns {missing}; they have {list(frame.columns)}")
    duplicated = labels[INFERENCE_ID_COLUMN][labels[INFERENCE_ID_COLUMN].duplicated()]
    if not duplicated.empty:
        raise DataError(
            f"ground truth holds {duplicated.nunique()} inference ids more than once "
            f"(e.g. {duplicated.iloc[0]!r}); keep one label per inference id"
        )
    with_id = predictions[predictions[INFERENCE_ID_COLUMN].notna()]
    label_frame = labels[[INFERENCE_ID_COLUMN, target]]
    features = with_id.drop(columns=[target], errors="ignore")
    joined = features.merge(
        label_frame, on=INFERENCE_ID_COLUMN, how="inner", validate="many_to_one"
    )
    joined = joined[joined[target].notna()].reset_index(drop=True)
    matched_ids = set(joined[INFERENCE_ID_COLUMN])
    return JoinedLabels(
        frame=joined,
        labelled=len(joined),
        unlabelled_predictions=len(predictions) - len(joined),
        unmatched_labels=int((~label_frame[INFERENCE_ID_COLUMN].isin(matched_ids)).sum()),
    )


def evaluate_quality(
    joined: JoinedLabels,
    *,
    spec: DatasetSpec,
    settings: MlopsSettings,
    problem: Problem,
) -> QualityReport:
    """Score the labelled live traffic: overall, per slice, and against ``min_live_metric``.

    ``problem`` is the served model's (:func:`problem_from_model_dir`): a window or a slice
    is always scored as the model's problem type, whatever classes it happens to hold.
    The primary metric is ``gate.primary_metric``, the one the model was promoted on; it
    must be one where higher is better, since ``min_live_metric`` is a floor. Capture
    records a binary model's positive-label probability but only the predicted class's
    probability for a multiclass model, so live multiclass AUC and log loss cannot be
    computed: they are null, with a note, and a multiclass primary metric must be one of
    the label-based metrics.
    """
    metric = settings.gate.for_problem(problem.problem_type).primary_metric
    if metric in LOWER_IS_BETTER:
        raise ConfigError(
            f"gate.primary_metric is {metric!r}, where lower is better, but "
            "monitoring.min_live_metric is a floor; pick a higher-is-better primary metric "
            "(auc, accuracy, f1, weighted_f1 or r2, for example)"
        )
    if problem.problem_type == MULTICLASS and metric in PROBABILITY_METRICS:
        raise ConfigError(
            f"gate.primary_metric is {metric!r}, which needs every class's probability, but "
            "captured traffic of a multiclass model holds only the predicted class and its "
            "probability; monitor a label-based metric instead (for example gate.primary_metric: "
            "accuracy or weighted_f1)"
        )
    if joined.labelled == 0:
        raise DataError(
            "no captured prediction has a label yet: check that requests send an inference id "
            "and that the ground truth uses the same ids"
        )
    frame = joined.frame
    probabilities = None
    notes: list[str] = []
    if problem.problem_type == BINARY and SCORE_COLUMN in frame.columns:
        probabilities = frame[SCORE_COLUMN]
    elif problem.problem_type == BINARY:
        notes.append("capture holds no score column: auc and log_loss are null")
    elif problem.problem_type == MULTICLASS:
        notes.append(
            "auc and log_loss are null: capture holds only the predicted class's probability, "
            "not every class's"
        )
    scored = score_predictions(
        frame[spec.target],
        frame[PREDICTION_COLUMN],
        problem=problem,
        probabilities=probabilities,
        seed=settings.training.seed,
    )
    metrics = scored.metrics
    slice_columns = [c for c in settings.dataset.slice_columns if c in frame.columns]
    absent = sorted(set(settings.dataset.slice_columns) - set(slice_columns))
    if absent:
        raise DataError(
            f"dataset.slice_columns {absent} are not in the captured data (columns: "
            f"{list(frame.columns)}); slice on model features or fix dataset.slice_columns"
        )
    slices = slice_metrics(
        frame,
        slice_columns=slice_columns,
        target=spec.target,
        problem=problem,
        probabilities=probabilities,
    )
    value = metrics[metric]
    # NaN (e.g. AUC when the labelled traffic holds one class) is not evidence of decay.
    below = not math.isnan(value) and value < settings.monitoring.min_live_metric
    report = QualityReport(
        task=spec.task,
        rows=joined.labelled,
        unlabelled_predictions=joined.unlabelled_predictions,
        unmatched_labels=joined.unmatched_labels,
        primary_metric=metric,
        primary_value=value,
        min_live_metric=settings.monitoring.min_live_metric,
        below_threshold=below,
        metrics=metrics,
        slices=slices,
        problem=problem.to_dict(),
        standard_deviations=scored.standard_deviations,
        confusion_matrix=scored.confusion_matrix,
        notes=notes,
        metric_report=scored,
    )
    logger.info(
        "live %s %.4f on %d labelled rows (floor %.4f)%s",
        metric,
        value,
        joined.labelled,
        settings.monitoring.min_live_metric,
        ": BELOW" if below else "",
    )
    return report


def write_quality_outputs(report: QualityReport, out_dir: str | Path) -> dict[str, Path]:
    """Write ``quality_report.json`` and the SageMaker-layout ``evaluation.json``."""
    if report.metric_report is None:
        raise DataError(
            "this quality report carries no metrics to write; build it with evaluate_quality"
        )
    out = Path(out_dir)
    return {
        "quality_report": write_json(out / QUALITY_REPORT_FILE, report.to_dict()),
        "evaluation": write_json(out / EVALUATION_FILE, evaluation_document(report.metric_report)),
    }


def run_quality(
    *,
    capture: str | Path,
    labels: str | Path,
    spec: DatasetSpec,
    settings: MlopsSettings,
    output: str | Path,
    problem: Problem,
) -> QualityReport:
    """Read capture and labels, join, score, and write the outputs: the monitor job's work."""
    from mlcore.capture import read_capture  # the serving layer, imported only when reading capture

    predictions = read_capture(capture, spec)
    joined = join_ground_truth(
        predictions, read_ground_truth(labels, target=spec.target), target=spec.target
    )
    report = evaluate_quality(joined, spec=spec, settings=settings, problem=problem)
    write_quality_outputs(report, output)
    return report


def spec_from_model_dir(model_dir: str | Path) -> DatasetSpec:
    """The dataset spec in a model directory's metadata.json, or in the SageMaker
    ``model.tar.gz`` the directory holds (as a Processing job receives the model)."""
    folder = Path(model_dir)
    metadata = _metadata_from_model_dir(folder)
    try:
        return DatasetSpec.from_dict(metadata["spec"])
    except KeyError as exc:
        raise ConfigError(f"no readable dataset spec in {folder}: {exc!r}") from exc


def problem_from_model_dir(model_dir: str | Path) -> Problem:
    """The served model's problem (type, classes, positive label, threshold), from its metadata."""
    metadata = _metadata_from_model_dir(Path(model_dir))
    return Problem.from_metadata(spec_from_model_dir(model_dir), metadata)


def _metadata_from_model_dir(folder: Path) -> dict[str, Any]:
    path, archive = folder / METADATA_FILE, folder / MODEL_ARCHIVE
    try:
        if path.is_file():
            metadata: dict[str, Any] = json.loads(path.read_text())
            return metadata
        if archive.is_file():
            with tarfile.open(archive) as tar:
                member = tar.extractfile(METADATA_FILE)
                if member is None:
                    raise KeyError(METADATA_FILE)
                packed: dict[str, Any] = json.loads(member.read())
                return packed
    except (KeyError, json.JSONDecodeError, tarfile.TarError) as exc:
        raise ConfigError(f"no readable model metadata in {folder}: {exc!r}") from exc
    raise ConfigError(
        f"{folder} holds neither {METADATA_FILE} nor {MODEL_ARCHIVE}; point --model-dir at "
        "the folder `mlcore train --model-dir` wrote, or at one holding SageMaker's model.tar.gz"
    )


def add_quality_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``quality`` subcommand to the ``mlcore`` CLI."""
    parser = sub.add_parser(
        "quality",
        help="join late ground truth with captured predictions and score live quality",
        description="Join ground truth that arrived late (by inference id) with the model's "
        "captured predictions, score the task's metrics overall and per slice column, and "
        "compare the gate's primary metric with monitoring.min_live_metric. Writes "
        "quality_report.json and evaluation.json (SageMaker's model-quality layout) to "
        "--output; exits 0 whether or not the metric is below its floor, like `mlcore drift`.",
    )
    _add_arguments(parser)
    parser.set_defaults(handler=_cmd_quality)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    # Named as `mlcore drift` names them: --current is the served traffic, --baseline the model.
    parser.add_argument(
        "--current",
        metavar="PATH",
        required=True,
        help="captured traffic: a data-capture JSON Lines file or folder",
    )
    parser.add_argument(
        "--labels",
        metavar="PATH",
        required=True,
        help="ground truth: CSV/Parquet with inference_id and the target, or SageMaker's "
        "ground-truth JSON Lines",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        required=True,
        help="the served model's folder (or one holding SageMaker's model.tar.gz): its spec "
        "and classes",
    )
    parser.add_argument("--output", metavar="DIR", required=True, help="folder for the reports")
    add_settings_option(parser, what="; its gate, monitoring and slice columns apply")


def _cmd_quality(args: argparse.Namespace) -> int:
    from mlcore.cli import settings_from_args

    report = run_quality(
        capture=args.current,
        labels=args.labels,
        spec=spec_from_model_dir(args.baseline),
        settings=settings_from_args(args),
        output=args.output,
        problem=problem_from_model_dir(args.baseline),
    )
    print(
        f"{report.primary_metric}={report.primary_value:.4f} on {report.rows} labelled rows; "
        f"floor {report.min_live_metric}; below: {report.below_threshold}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcore.quality", description=__doc__)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _cmd_quality(args)
    except MlcoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
