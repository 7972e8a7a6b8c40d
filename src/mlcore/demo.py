"""``mlcore demo``: the whole MLOps lifecycle on one machine, through the real code paths.

generate data -> prep -> train (SageMaker contract, emulated in a folder) -> evaluate
-> gate -> register -> approve -> serve over HTTP on loopback -> traffic from a later,
shifted period, captured in SageMaker's data-capture layout -> drift job against the
training baseline -> drift found -> retrain on recent labelled data -> the gate
compares challenger with champion -> register the new version. Labels for part of the
served traffic then arrive, and the model-quality job scores the live predictions.

Every artifact lands under the output folder (the MLflow store too, in ``mlflow/``), with
a log of the run in ``demo.log``; nothing needs a cloud account or Docker. A failure ends
in one line saying what happened and what to do (:class:`mlcore.errors.MlcoreError`: exit
2 for input, 3 for a gate), pointing at the model card or the log.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from rich.console import Console
from rich.table import Table

from mlcore.batch import CAPTURE_DIR, BatchOptions, read_manifest, run_batch
from mlcore.capture import read_capture
from mlcore.data import (
    DatasetSpec,
    drop_unlabelled,
    load_table,
    make_churn,
    partition,
    save_table,
)
from mlcore.data.validate import TooFewEvaluationRows
from mlcore.drift import Baseline, DriftReport, detect_drift, write_drift_outputs
from mlcore.drift.html import ReportContext
from mlcore.drift.sources import CAPTURE_METADATA_COLUMNS
from mlcore.drift.windows import window_of
from mlcore.errors import ConfigError, DataError, GateFailed, MlcoreError
from mlcore.evaluation_job import EvaluationResult, run_evaluation
from mlcore.jsonio import write_json
from mlcore.model import BASELINE_DIR, MODEL_SHA256_KEY
from mlcore.prep import PrepResult, prepare, resolve_spec, split_method
from mlcore.project_init import DEMO_LIVE_SHARE
from mlcore.quality import (
    INFERENCE_ID_COLUMN,
    QualityReport,
    problem_from_model_dir,
    run_quality,
)
from mlcore.registry import LocalModelRegistry, ModelPackage
from mlcore.serve import serve_in_thread
from mlcore.settings import MlopsSettings
from mlcore.tracking import (
    RUN_ID_KEY,
    TrackingTarget,
    record_registration,
    resolve_tracking,
    track_evaluation,
)
from mlcore.train import run_sagemaker_training

logger = logging.getLogger(__name__)

# The story the generated data tells: a model trained on January to September meets
# the winter, when prices bite harder and customers drift to month-to-month contracts.
TRAINING_PERIOD = ("2025-01-01", "2025-09-30")
LIVE_PERIOD = ("2025-11-01", "2026-02-28")
TRAFFIC_BATCH_ROWS = 100
# Requests of one row each, whose labels then arrive: the model-quality job joins a label to
# a request by its inference id, so a labelled request holds one row.
LABELLED_REQUESTS = 300
# With your own data, this share of the rows plays the live period: the latest by timestamp,
# or a random share drawn with the seed when there is no timestamp (row order is not time).
LIVE_SHARE = DEMO_LIVE_SHARE
DEMO_MARKER = ".mlcore-demo"
LOG_FILE = "demo.log"


@dataclass(frozen=True)
class DemoOptions:
    output_dir: Path = Path("out/demo")
    rows: int = 60_000
    traffic_rows: int = 5_000
    # Rows of the live period the released model scores in batch (mlcore batch).
    batch_rows: int = 10_000
    quiet: bool = False


@dataclass
class DemoResult:
    """What the demo did, for the summary table and for tests."""

    versions: list[dict[str, Any]] = field(default_factory=list)
    blocked: dict[str, Any] | None = None
    drift: DriftReport | None = None
    traffic_requests: int = 0
    captured_rows: int = 0
    seconds: float = 0.0
    tracking_uri: str | None = None
    # How the live period was chosen, and rows dropped for having no label.
    live_period: str = ""
    unlabelled_rows_dropped: int = 0
    quality: QualityReport | None = None
    # Why live quality was not scored, when it could not be.
    quality_note: str | None = None
    # Warnings logged during the run (in demo.log), e.g. a column that looks like an id.
    warnings: int = 0
    # Why drift did not lead to a v2, when the live period is too small to gate on.
    retrain_note: str | None = None
    # The batch run's manifest (mlcore batch) and the drift job's report on its capture.
    batch: dict[str, Any] | None = None
    batch_drift: DriftReport | None = None


def run_demo(options: DemoOptions, settings: MlopsSettings) -> DemoResult:
    """Run the loop; every failure is an :class:`MlcoreError` naming the step and what to do."""
    out = options.output_dir
    _prepare_output(out)
    with _logging_to(out / LOG_FILE) as log:
        return _run(options, settings, out, log)


def _run(options: DemoOptions, settings: MlopsSettings, out: Path, log: _RunLog) -> DemoResult:
    console = _console(quiet=options.quiet)
    registry = LocalModelRegistry(out / "registry")
    group = settings.project
    result = DemoResult()
    started = time.perf_counter()
    # Runs go into the demo's own folder: `mlflow ui --backend-store-uri` browses them.
    tracking = resolve_tracking(settings, local_root=out.resolve() / "mlflow")
    result.tracking_uri = tracking.uri if tracking else None

    with _step(
        console, out, "1/10 load the data: history to train on, a later period as live traffic"
    ):
        history, live, spec = _history_and_live(settings, options, result)
        save_table(history, out / "data" / "history.parquet")
        save_table(live, out / "data" / "live.parquet")
    console.print(f"   live period: {result.live_period}")
    if result.unlabelled_rows_dropped:
        console.print(
            f"   dropped {result.unlabelled_rows_dropped} rows without a label in {spec.target!r}"
        )
    with _step(console, out, "2/10 prep: validate, split, fingerprint"):
        prep_v1 = prepare(history, spec, settings, out / "v1" / "prep", source="history")

    with _step(console, out, "3/10 train v1 in an emulated SageMaker training container"):
        model_v1 = _train_in_container(prep_v1, settings, out / "v1" / "opt_ml", tracking, "v1")

    with _step(console, out, "4/10 evaluate v1 and apply the quality gate"):
        eval_v1 = run_evaluation(
            model_dir=model_v1,
            data=prep_v1.output_dir / "test",
            output_dir=out / "v1" / "evaluation",
            settings=settings,
            model_name=f"{group} v1",
        )
        run_v1 = _track(
            tracking, model_v1, eval_v1, role="champion", data=prep_v1.output_dir / "test"
        )
        _require_gate(eval_v1, "v1")

    with _step(console, out, "5/10 register v1 and approve it"):
        package_v1 = _register(registry, group, model_v1, eval_v1, prep_v1)
        _record_version(tracking, run_v1, package_v1)
        # In the cloud a person approves in SageMaker Studio or Azure ML; the demo plays that part.
        package_v1 = registry.update_approval(
            group, package_v1.version, "Approved", reason="approved by the demo"
        )
        result.versions.append(_version_row(package_v1, eval_v1))

    with _step(console, out, "   a challenger trained on misaligned labels is refused by the gate"):
        result.blocked = _blocked_challenger(
            prep_v1, settings, package_v1, out / "rejected", tracking
        )

    with _step(
        console, out, "6/10 serve v1 over HTTP and send it the live period's traffic, captured"
    ):
        capture_dir = out / "capture"
        traffic = live.sample(
            n=min(options.traffic_rows, len(live)), random_state=settings.training.seed
        )
        result.traffic_requests = _send_traffic(
            package_v1, spec, traffic, capture_dir, labels=out / "quality" / "labels.csv"
        )

    with _step(console, out, "7/10 drift job: captured traffic against the training baseline"):
        report, result.captured_rows = _drift_job(
            capture_dir, package_v1, spec, settings, out / "drift", group=group
        )
        result.drift = report

    with _step(
        console, out, "8/10 quality job: labels that arrived, joined with the captured predictions"
    ):
        result.quality, result.quality_note = _score_live_quality(
            package_v1, spec, settings, capture_dir, out / "quality"
        )

    with _step(
        console, out, "   batch: v1 scores a drop of the live period; the drift job reads the run"
    ):
        result.batch, result.batch_drift = _score_in_batch(
            package_v1, spec, settings, live, options.batch_rows, out / "batch", group=group
        )

    if not report.dataset_drift:
        console.print("[green]no dataset drift: nothing to retrain[/green]")
    else:
        _retrain_and_gate(
            console, out, live, spec, settings, package_v1, registry, tracking, result
        )

    result.seconds = time.perf_counter() - started
    result.warnings = log.warnings
    write_json(out / "summary.json", _summary_document(result))
    _print_summary(_console(quiet=False), result, out)
    return result


def _drift_job(
    capture_dir: Path,
    package: ModelPackage,
    spec: DatasetSpec,
    settings: MlopsSettings,
    output: Path,
    *,
    group: str,
) -> tuple[DriftReport, int]:
    """The drift job on captured data (an endpoint's or a batch run's) against the model's
    training baseline; returns the report and the rows it read."""
    captured = read_capture(capture_dir, spec)
    baseline = Baseline.load(package.model_dir / BASELINE_DIR)
    # The baseline's own prediction columns: the predicted-class mix and the score.
    report = detect_drift(
        baseline,
        captured,
        spec=spec,
        settings=settings.drift,
        expected_columns=CAPTURE_METADATA_COLUMNS,
    )
    window = window_of(captured, "inference_time").iso()
    context = ReportContext(
        model_version=f"{group}:{package.version}",
        model_sha256=package.model_sha256,
        current_window_start=window[0],
        current_window_end=window[1],
    )
    write_drift_outputs(report, output, context=context)
    return report, len(captured)


def _score_in_batch(
    package: ModelPackage,
    spec: DatasetSpec,
    settings: MlopsSettings,
    live: pd.DataFrame,
    rows: int,
    out: Path,
    *,
    group: str,
) -> tuple[dict[str, Any], DriftReport]:
    """A drop of the live period, without its labels, scored by ``mlcore batch`` with the
    registered hash checked; then the drift job on the run's capture, as on live traffic."""
    drop = live.drop(columns=[spec.target]).sample(
        n=min(rows, len(live)), random_state=settings.training.seed
    )
    if spec.timestamp:
        drop = drop.sort_values(spec.timestamp, kind="stable")
    drop_file = save_table(drop, out / "drop" / "live-drop.parquet")
    # The run is filed under the drop's last event time, as a nightly run scoring that period
    # (to the microsecond: a datetime holds no nanoseconds, and capture times need none).
    when = (
        pd.to_datetime(drop[spec.timestamp], utc=True).max().floor("us").to_pydatetime()
        if spec.timestamp
        else None
    )
    run = run_batch(
        BatchOptions(
            model_dir=package.model_dir,
            input=drop_file,
            output=out / "run",
            id_columns=tuple(settings.dataset.id_columns),
            expected_sha256=package.model_sha256,
            inference_time=when,
            capture_sampling_percentage=settings.monitoring.capture_sampling_percentage,
            progress=False,
        )
    )
    report, _ = _drift_job(
        out / "run" / CAPTURE_DIR, package, spec, settings, out / "drift", group=group
    )
    return read_manifest(run.output_dir), report


def _retrain_and_gate(
    console: Console,
    out: Path,
    live: pd.DataFrame,
    spec: DatasetSpec,
    settings: MlopsSettings,
    champion: ModelPackage,
    registry: LocalModelRegistry,
    tracking: TrackingTarget | None,
    result: DemoResult,
) -> None:
    """Drift was found: retrain v2 on the live period and gate it against the champion."""
    group = settings.project
    try:
        # Ground truth for the live period has arrived by now: retrain on it.
        prep_v2 = prepare(live, spec, settings, out / "v2" / "prep", source="live period")
    except TooFewEvaluationRows as exc:
        # As a retraining trigger would in production: wait for more labelled rows.
        result.retrain_note = (
            f"drift found, but no v2 was trained: {exc}. A retraining trigger waits for more "
            "labelled rows"
        )
        console.print(result.retrain_note)
        return
    with _step(console, out, "9/10 drift found: retrain v2 on recent labelled data"):
        model_v2 = _train_in_container(prep_v2, settings, out / "v2" / "opt_ml", tracking, "v2")

    with _step(console, out, "10/10 gate v2 against the champion v1 on recent data, then register"):
        eval_v2 = run_evaluation(
            model_dir=model_v2,
            data=prep_v2.output_dir / "test",
            output_dir=out / "v2" / "evaluation",
            settings=settings,
            champion_dir=champion.model_dir,
            model_name=f"{group} v2",
        )
        run_v2 = _track(
            tracking, model_v2, eval_v2, role="retrain", data=prep_v2.output_dir / "test"
        )
        if eval_v2.gate.passed:
            package_v2 = _register(registry, group, model_v2, eval_v2, prep_v2)
            _record_version(tracking, run_v2, package_v2)
            result.versions.append(_version_row(package_v2, eval_v2))
        else:
            # Not registered: it has no version number, only its place in the loop.
            result.versions.append(
                {
                    "model": "v2 challenger",
                    "version": None,
                    "status": "not registered: blocked by the gate",
                    "metrics": eval_v2.metrics,
                    "gate": eval_v2.gate.to_dict(),
                }
            )


def _console(*, quiet: bool) -> Console:
    """A console that wraps only on a terminal: piped or logged output keeps whole lines."""
    if sys.stdout.isatty():
        return Console(quiet=quiet)
    return Console(quiet=quiet, width=1_000, soft_wrap=True)


class _RunLog(logging.FileHandler):
    """The demo's log file: every record of INFO and above, and a count of the warnings."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.setLevel(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.warnings = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.warnings += 1
        super().emit(record)


@contextmanager
def _logging_to(path: Path) -> Iterator[_RunLog]:
    """Every log record of INFO and above (tracebacks included) also goes to ``path``; what
    the console's handlers show is left as it was."""
    handler = _RunLog(path)
    root = logging.getLogger()
    level = root.level
    quietened = []
    if level == logging.NOTSET or level > logging.INFO:
        # The root now lets INFO through for the file; handlers that relied on the root's
        # level keep showing only what they showed before.
        for existing in root.handlers:
            if existing.level == logging.NOTSET:
                existing.setLevel(level or logging.WARNING)
                quietened.append(existing)
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        for existing in quietened:
            existing.setLevel(logging.NOTSET)


def _prepare_output(out: Path) -> None:
    """Start from an empty folder, so no artifact of an earlier run passes for this one's.

    Only a folder an earlier demo wrote (it holds the marker file) is cleared; any
    other non-empty folder is refused rather than deleted.
    """
    if out.exists() and any(out.iterdir()):
        if not (out / DEMO_MARKER).exists():
            raise MlcoreError(
                f"{out} is not empty and was not written by `mlcore demo`; choose another --output"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / DEMO_MARKER).write_text("written by mlcore demo; the next run clears this folder\n")


@contextmanager
def _step(console: Console, out: Path, title: str) -> Iterator[None]:
    """One step of the loop, timed; a failure that is not mlcore's own becomes one that says
    which step failed and where its traceback is."""
    started = time.perf_counter()
    name = title.split(" ", 1)[1].strip() if title[:1].isdigit() else title.strip()
    try:
        with console.status(title):
            yield
    except MlcoreError:
        raise
    except Exception as exc:
        logger.exception("demo step %r failed", name)
        raise MlcoreError(
            f"the demo step '{name}' failed: {type(exc).__name__}: {exc}. The traceback is in "
            f"{out / LOG_FILE}"
        ) from exc
    console.print(f"[green]done[/green] {title} [dim]({time.perf_counter() - started:.1f}s)[/dim]")


def _history_and_live(
    settings: MlopsSettings, options: DemoOptions, result: DemoResult
) -> tuple[pd.DataFrame, pd.DataFrame, DatasetSpec]:
    """Training history and a later 'live' period with labels that arrive after serving.

    With the built-in generator the live period is the following winter, with covariate
    shift and concept drift. With your own data (``dataset.path``) 30% of the rows play the
    live period: the latest by ``dataset.timestamp``, or without one a share drawn at random
    with the seed, class by class for a classifier (row order is not taken as time: a file
    sorted by its outcome or by a feature would otherwise hand the live period one class or
    one end of a feature). Rows without a label are dropped and counted.
    """
    if settings.dataset.path is None:
        history = make_churn(options.rows, start=TRAINING_PERIOD[0], end=TRAINING_PERIOD[1], seed=0)
        live = make_churn(
            max(options.rows // 2, 2_000),
            start=LIVE_PERIOD[0],
            end=LIVE_PERIOD[1],
            seed=11,
            covariate_shift=1.0,
            concept_drift=1.0,
        )
        result.live_period = f"generated: {LIVE_PERIOD[0]} to {LIVE_PERIOD[1]}, after training"
        return history, live, resolve_spec(history, settings.dataset)
    frame = load_table(settings.dataset.path)
    spec = resolve_spec(frame, settings.dataset)
    frame, result.unlabelled_rows_dropped = drop_unlabelled(frame, spec)
    by_time = split_method(spec, settings.training) == "time"
    history, live = partition(
        frame,
        spec,
        shares=(LIVE_SHARE,),
        names=("history", "live period"),
        seed=settings.training.seed,
        by_time=by_time,
    )
    result.live_period = (
        f"the latest {LIVE_SHARE:.0%} of rows by {spec.timestamp!r}"
        if by_time
        else f"a random {LIVE_SHARE:.0%} of rows (seed {settings.training.seed}): the data "
        "has no timestamp, and row order is not taken as time"
    )
    return history, live, spec


def _track(
    tracking: TrackingTarget | None,
    model_dir: Path,
    evaluation: EvaluationResult,
    *,
    role: str,
    data: Path,
) -> str | None:
    """The evaluation logged to MLflow, the run named by the model's role; the run id."""
    if tracking is None:
        return None
    return track_evaluation(
        tracking, model_dir=model_dir, output_dir=evaluation.output_dir, data=data, role=role
    )


def _record_version(
    tracking: TrackingTarget | None, run_id: str | None, package: ModelPackage
) -> None:
    if tracking is not None and run_id is not None:
        record_registration(tracking, run_id, str(package.version))


def _train_in_container(
    prep: PrepResult,
    settings: MlopsSettings,
    root: Path,
    tracking: TrackingTarget | None,
    name: str,
) -> Path:
    """Lay out /opt/ml in ``root`` the way SageMaker does and run the training entry point."""
    data = root / "input" / "data"
    for channel in ("train", "validation"):
        shutil.copytree(prep.output_dir / channel, data / channel)
    (data / "spec").mkdir(parents=True)
    shutil.copy(prep.output_dir / "spec.json", data / "spec" / "spec.json")
    hyperparameters = {k: str(v) for k, v in settings.training.hyperparameters.items()}
    hyperparameters.update(algorithm=settings.training.algorithm, seed=str(settings.training.seed))
    write_json(root / "input" / "config" / "hyperparameters.json", hyperparameters)
    code = run_sagemaker_training(
        root=root,
        environ={},
        base_settings=settings.training,
        drift_settings=settings.drift,
        dataset=settings.dataset,
        tracking=tracking,
    )
    if code != 0:
        failure_file = root / "output" / "failure"
        failure = failure_file.read_text().strip() if failure_file.is_file() else "no reason"
        raise MlcoreError(
            f"training {name} failed: {failure}. Fix the data or training settings it names; "
            f"the failure is in {failure_file}, the traceback in {root.parents[1] / LOG_FILE}"
        )
    return root / "model"


def _require_gate(evaluation: EvaluationResult, name: str) -> None:
    if not evaluation.gate.passed:
        failing = _failing_reasons(evaluation.gate.to_dict())
        raise GateFailed(
            f"{name} failed the quality gate ({'; '.join(failing)}), so nothing was registered "
            f"or served. Read {evaluation.output_dir / 'model_card.md'}; improve the features or "
            "training settings, or set gate thresholds this data can meet"
        )


def _register(
    registry: LocalModelRegistry,
    group: str,
    model_dir: Path,
    evaluation: EvaluationResult,
    prep: PrepResult,
) -> ModelPackage:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    return registry.register(
        group,
        model_dir=model_dir,
        evaluation_dir=evaluation.output_dir,
        metadata={
            "git_commit": metadata.get("git_commit") or "unknown",
            # Uncommitted changes mean the commit alone does not rebuild this model.
            "git_dirty": _dirty_text(metadata.get("git_dirty")),
            RUN_ID_KEY: metadata.get(RUN_ID_KEY) or "untracked",
            "data_fingerprint": prep.lineage["data_fingerprint"],
            "hyperparameters": metadata.get("hyperparameters", {}),
            "metrics": evaluation.metrics,
            # The hash of the model the evaluation measured, as SageMaker's register step takes it
            # from gate.json; kept outside the model folder, so serving can check what it is handed.
            MODEL_SHA256_KEY: json.loads((evaluation.output_dir / "gate.json").read_text())[
                MODEL_SHA256_KEY
            ],
        },
        description=f"{metadata.get('algorithm')} trained on {prep.lineage['split_rows']['train']} rows",
    )


def _dirty_text(dirty: bool | None) -> str:
    return "unknown" if dirty is None else str(bool(dirty)).lower()


def _blocked_challenger(
    prep: PrepResult,
    settings: MlopsSettings,
    champion: ModelPackage,
    out: Path,
    tracking: TrackingTarget | None,
) -> dict[str, Any]:
    """Train a challenger on misaligned labels (the classic join bug) and show the gate refusing it."""
    target = prep.spec.target
    broken_dir = out / "prep"
    shutil.copytree(prep.output_dir, broken_dir)
    train = pd.read_parquet(broken_dir / "train" / "train.parquet")
    train[target] = train[target].sample(frac=1.0, random_state=settings.training.seed).to_numpy()
    train.to_parquet(broken_dir / "train" / "train.parquet", index=False)
    broken = PrepResult(
        spec=prep.spec, split=prep.split, lineage=prep.lineage, output_dir=broken_dir
    )
    model_dir = _train_in_container(broken, settings, out / "opt_ml", tracking, "the challenger")
    evaluation = run_evaluation(
        model_dir=model_dir,
        data=prep.output_dir / "test",
        output_dir=out / "evaluation",
        settings=settings,
        champion_dir=champion.model_dir,
        model_name=f"{settings.project} challenger with misaligned labels",
    )
    _track(tracking, model_dir, evaluation, role="challenger", data=prep.output_dir / "test")
    if evaluation.gate.passed:
        raise GateFailed(
            "the gate let through a challenger trained on shuffled labels, which has learnt "
            f"nothing: {'; '.join(evaluation.gate.reasons)}. The gate is too lax for this data: "
            f"raise gate.min_metrics (see {evaluation.output_dir / 'model_card.md'})"
        )
    return {"metrics": evaluation.metrics, "gate": evaluation.gate.to_dict()}


def _send_traffic(
    package: ModelPackage,
    spec: DatasetSpec,
    live: pd.DataFrame,
    capture_dir: Path,
    *,
    labels: Path,
) -> int:
    """POST the live rows, alternating CSV and JSON, each request with an inference id.

    The first ``LABELLED_REQUESTS`` rows go one per request and their labels are written to
    ``labels`` (inference id, target), as ground truth arrives for a real endpoint; the rest
    go in batches of ``TRAFFIC_BATCH_ROWS``. The client is the standard library's: the demo
    needs only mlcore's runtime dependencies.
    """
    single = min(LABELLED_REQUESTS, len(live) // 2)
    batches = [live.iloc[i : i + 1] for i in range(single)] + [
        live.iloc[start : start + TRAFFIC_BATCH_ROWS]
        for start in range(single, len(live), TRAFFIC_BATCH_ROWS)
    ]
    ids = [str(uuid.uuid5(uuid.NAMESPACE_OID, f"demo-{index}")) for index in range(len(batches))]
    labels.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {INFERENCE_ID_COLUMN: ids[:single], spec.target: live[spec.target].iloc[:single].to_numpy()}
    ).to_csv(labels, index=False)
    # The registry's hash is checked before the model is unpickled, as on a real endpoint; the
    # time header is trusted because this traffic replays a later period, not today's.
    with serve_in_thread(
        package.model_dir,
        capture_dir=capture_dir,
        expected_sha256=package.model_sha256,
        trust_inference_time_header=True,
    ) as base_url:
        address = urlsplit(base_url)
        connection = http.client.HTTPConnection(
            address.hostname or "127.0.0.1", address.port, timeout=30
        )
        try:
            _request(connection, "GET", "/ping")
            for number, (batch, inference_id) in enumerate(zip(batches, ids, strict=True)):
                headers = {"X-Amzn-SageMaker-Inference-Id": inference_id}
                if spec.timestamp:
                    # Local-only header: file the capture under the live period's time, not today's.
                    event_time = pd.to_datetime(batch[spec.timestamp].iloc[0], utc=True)
                    headers["X-Mlcore-Inference-Time"] = event_time.isoformat()
                features = batch[list(spec.features)]
                if number % 2 == 0:
                    body = features.to_csv(header=False, index=False)
                    headers["Content-Type"] = "text/csv"
                else:
                    body = json.dumps({"instances": json.loads(features.to_json(orient="records"))})
                    headers["Content-Type"] = "application/json"
                _request(connection, "POST", "/invocations", body=body.encode(), headers=headers)
        finally:
            connection.close()
    return len(batches)


def _request(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    payload = response.read()
    if response.status != 200:
        raise MlcoreError(
            f"the model server answered {method} {path} with {response.status}: "
            f"{payload[:500]!r}. Its log is in the demo's {LOG_FILE}"
        )
    return payload


def _score_live_quality(
    package: ModelPackage,
    spec: DatasetSpec,
    settings: MlopsSettings,
    capture_dir: Path,
    out: Path,
) -> tuple[QualityReport | None, str | None]:
    """``mlcore quality`` on the captured traffic and the labels that arrived for part of it.

    Settings the cloud's quality monitor could not run with either (a multiclass primary
    metric that needs every class's probability, for example) are reported, not fatal:
    the loop itself has run.
    """
    try:
        report = run_quality(
            capture=capture_dir,
            labels=out / "labels.csv",
            spec=spec,
            settings=settings,
            output=out,
            problem=problem_from_model_dir(package.model_dir),
        )
    except (ConfigError, DataError) as exc:
        logger.warning("live quality not scored: %s", exc)
        return None, f"live quality not scored: {exc}"
    return report, None


def _version_row(package: ModelPackage, evaluation: EvaluationResult) -> dict[str, Any]:
    return {
        "model": f"v{package.version}",
        "version": package.version,
        "status": package.status,
        "metrics": evaluation.metrics,
        "gate": evaluation.gate.to_dict(),
    }


def _summary_document(result: DemoResult) -> dict[str, Any]:
    return {
        "versions": result.versions,
        "blocked_challenger": result.blocked,
        "live_period": result.live_period,
        "unlabelled_rows_dropped": result.unlabelled_rows_dropped,
        "drift": result.drift.to_dict() if result.drift else None,
        "quality": result.quality.to_dict() if result.quality else None,
        "quality_note": result.quality_note,
        "retrain_note": result.retrain_note,
        "traffic_requests": result.traffic_requests,
        "captured_rows": result.captured_rows,
        "batch": result.batch,
        "batch_drift": result.batch_drift.to_dict() if result.batch_drift else None,
        "tracking_uri": result.tracking_uri,
        "warnings": result.warnings,
        "seconds": round(result.seconds, 1),
    }


def _print_summary(console: Console, result: DemoResult, out: Path) -> None:
    rows = [(str(row["model"]), str(row["status"]), row) for row in result.versions]
    if result.blocked:
        rows.append(("bad challenger", "not registered", result.blocked))
    # The gate's primary metric first, then one everybody reads for the task.
    primary = rows[0][2]["gate"]["primary_metric"] if rows else "auc"
    second = "rmse" if rows and "rmse" in rows[0][2]["metrics"] else "accuracy"
    columns = [primary] if primary == second else [primary, second]
    table = Table(title="MLOps loop, run locally", show_lines=False)
    for column in ("model", "status", *columns, "gate"):
        table.add_column(column)
    for name, status, row in rows:
        values = [_metric_text(row["metrics"], c) for c in columns]
        table.add_row(name, status, *values, _gate_text(row["gate"]))
    console.print(table)
    if result.drift is not None:
        drifted = ", ".join(result.drift.drifted_features) or "none"
        console.print(
            f"Drift on {result.captured_rows} captured rows ({result.traffic_requests} requests): "
            f"dataset drift [bold]{'YES' if result.drift.dataset_drift else 'no'}[/bold], "
            f"{result.drift.share_drifted:.0%} of features drifted: {drifted}"
        )
    if result.batch is not None and result.batch_drift is not None:
        batch = result.batch
        console.print(
            f"Batch: v1 scored {batch['rows_scored']} rows of the live period "
            f"({batch['rows_rejected']} rejected, {batch['rows_per_second']:,.0f} rows/s); drift "
            f"on the run: [bold]{'YES' if result.batch_drift.dataset_drift else 'no'}[/bold], "
            f"{result.batch_drift.share_drifted:.0%} of features drifted"
        )
    if result.quality is not None:
        quality = result.quality
        console.print(
            f"Live quality on {quality.rows} labelled requests: {quality.primary_metric} "
            f"{quality.primary_value:.3f} (alarm below {quality.min_live_metric}"
            f"{': BELOW' if quality.below_threshold else ''})"
        )
    elif result.quality_note:
        console.print(result.quality_note)
    if result.warnings:
        console.print(f"{result.warnings} warnings logged: read {out / LOG_FILE}")
    console.print(
        f"Artifacts in {out}/ (registry, evaluation.json, model cards, drift and quality "
        f"reports, capture, {LOG_FILE}). {result.seconds:.0f}s."
    )
    if result.tracking_uri:
        console.print(f"MLflow runs: mlflow ui --backend-store-uri {result.tracking_uri}")


def _metric_text(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _failing_reasons(gate: dict[str, Any]) -> list[str]:
    reasons: list[str] = gate["reasons"]
    failing = [r for r in reasons if "below" in r or "worse" in r or "above" in r or "NaN" in r]
    return failing or reasons


def _gate_text(gate: dict[str, Any]) -> str:
    if gate["passed"]:
        return "passed"
    return "FAILED: " + "; ".join(_failing_reasons(gate))
