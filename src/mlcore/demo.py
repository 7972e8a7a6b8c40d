"""``mlcore demo``: the whole MLOps lifecycle on one machine, through the real code paths.

generate data -> prep -> train (SageMaker contract, emulated in a folder) -> evaluate
-> gate -> register -> approve -> serve over HTTP on loopback -> traffic from a later,
shifted period, captured in SageMaker's data-capture layout -> drift job against the
training baseline -> drift found -> retrain on recent labelled data -> the gate
compares challenger with champion -> register the new version.

Every artifact lands under the output folder; nothing needs a cloud account or Docker.
"""

from __future__ import annotations

import http.client
import json
import logging
import shutil
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

from mlcore.capture import read_capture
from mlcore.data import DatasetSpec, load_table, make_churn, save_table
from mlcore.drift import Baseline, DriftReport, detect_drift, write_drift_outputs
from mlcore.drift.sources import CAPTURE_METADATA_COLUMNS
from mlcore.errors import MlcoreError
from mlcore.evaluation_job import EvaluationResult, run_evaluation
from mlcore.jsonio import write_json
from mlcore.model import BASELINE_DIR, MODEL_SHA256_KEY
from mlcore.prep import PrepResult, prepare, resolve_spec
from mlcore.registry import LocalModelRegistry, ModelPackage
from mlcore.serve import serve_in_thread
from mlcore.settings import MlopsSettings
from mlcore.tracking import RUN_ID_KEY, TrackingTarget, resolve_tracking, track_evaluation
from mlcore.train import run_sagemaker_training

logger = logging.getLogger(__name__)

# The story the generated data tells: a model trained on January to September meets
# the winter, when prices bite harder and customers drift to month-to-month contracts.
TRAINING_PERIOD = ("2025-01-01", "2025-09-30")
LIVE_PERIOD = ("2025-11-01", "2026-02-28")
TRAFFIC_BATCH_ROWS = 100
# With your own data, this share of the most recent rows plays the live period.
LIVE_SHARE = 0.3
DEMO_MARKER = ".mlcore-demo"


@dataclass(frozen=True)
class DemoOptions:
    output_dir: Path = Path("out/demo")
    rows: int = 60_000
    traffic_rows: int = 5_000
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


def run_demo(options: DemoOptions, settings: MlopsSettings) -> DemoResult:
    console = Console(quiet=options.quiet)
    out = options.output_dir
    _prepare_output(out)
    registry = LocalModelRegistry(out / "registry")
    group = settings.project
    result = DemoResult()
    started = time.perf_counter()
    # Runs accumulate beside the demo's folder (out/mlflow for make demo): `mlflow ui` browses them.
    tracking = resolve_tracking(settings, local_root=out.resolve().parent / "mlflow")
    result.tracking_uri = tracking.uri if tracking else None

    with _step(console, "1/9 load the data: history to train on, a later period as live traffic"):
        history, live = _history_and_live(settings, options)
        save_table(history, out / "data" / "history.parquet")
        save_table(live, out / "data" / "live.parquet")
        spec = resolve_spec(history, settings.dataset)
    with _step(console, "2/9 prep: validate, split, fingerprint"):
        prep_v1 = prepare(history, spec, settings, out / "v1" / "prep", source="history")

    with _step(console, "3/9 train v1 in an emulated SageMaker training container"):
        model_v1 = _train_in_container(prep_v1, settings, out / "v1" / "opt_ml", tracking)

    with _step(console, "4/9 evaluate v1 and apply the quality gate"):
        eval_v1 = run_evaluation(
            model_dir=model_v1,
            data=prep_v1.output_dir / "test",
            output_dir=out / "v1" / "evaluation",
            settings=settings,
            model_name=f"{group} v1",
        )
        _track(tracking, model_v1, eval_v1)
        _require_gate(eval_v1, "v1")

    with _step(console, "5/9 register v1 and approve it"):
        package_v1 = _register(registry, group, model_v1, eval_v1, prep_v1)
        # In the cloud a person approves in SageMaker Studio or Azure ML; the demo plays that part.
        package_v1 = registry.update_approval(
            group, package_v1.version, "Approved", reason="approved by the demo"
        )
        result.versions.append(_version_row(package_v1, eval_v1))

    with _step(console, "   a challenger trained on misaligned labels is refused by the gate"):
        result.blocked = _blocked_challenger(
            prep_v1, settings, package_v1, out / "rejected", tracking
        )

    with _step(console, "6/9 serve v1 over HTTP and send it the live period's traffic, captured"):
        capture_dir = out / "capture"
        traffic = live.sample(
            n=min(options.traffic_rows, len(live)), random_state=settings.training.seed
        )
        result.traffic_requests = _send_traffic(package_v1, spec, traffic, capture_dir)

    with _step(console, "7/9 drift job: captured traffic against the training baseline"):
        captured = read_capture(capture_dir, spec)
        result.captured_rows = len(captured)
        baseline = Baseline.load(package_v1.model_dir / BASELINE_DIR)
        # The baseline's own prediction columns: the predicted-class mix and the score.
        report = detect_drift(
            baseline,
            captured,
            spec=spec,
            settings=settings.drift,
            expected_columns=CAPTURE_METADATA_COLUMNS,
        )
        write_drift_outputs(report, out / "drift")
        result.drift = report

    if not report.dataset_drift:
        console.print("[green]no dataset drift: nothing to retrain[/green]")
    else:
        with _step(console, "8/9 drift found: retrain v2 on recent labelled data"):
            # Ground truth for the live period has arrived by now: retrain on it.
            prep_v2 = prepare(live, spec, settings, out / "v2" / "prep", source="live period")
            model_v2 = _train_in_container(prep_v2, settings, out / "v2" / "opt_ml", tracking)

        with _step(console, "9/9 gate v2 against the champion v1 on recent data, then register"):
            eval_v2 = run_evaluation(
                model_dir=model_v2,
                data=prep_v2.output_dir / "test",
                output_dir=out / "v2" / "evaluation",
                settings=settings,
                champion_dir=package_v1.model_dir,
                model_name=f"{group} v2",
            )
            _track(tracking, model_v2, eval_v2)
            if eval_v2.gate.passed:
                package_v2 = _register(registry, group, model_v2, eval_v2, prep_v2)
                result.versions.append(_version_row(package_v2, eval_v2))
            else:
                result.versions.append(
                    {
                        "version": "-",
                        "status": "blocked by gate",
                        "metrics": eval_v2.metrics,
                        "gate": eval_v2.gate.to_dict(),
                    }
                )

    result.seconds = time.perf_counter() - started
    write_json(out / "summary.json", _summary_document(result))
    _print_summary(Console(), result, out)
    return result


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
def _step(console: Console, title: str) -> Iterator[None]:
    started = time.perf_counter()
    with console.status(title):
        yield
    console.print(f"[green]done[/green] {title} [dim]({time.perf_counter() - started:.1f}s)[/dim]")


def _history_and_live(
    settings: MlopsSettings, options: DemoOptions
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training history and a later 'live' period with labels that arrive after serving.

    With the built-in generator the live period is the following winter, with covariate
    shift and concept drift. With your own data (``dataset.path``) the latest 30% of
    rows by timestamp (or by row order without one) play the live period.
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
        return history, live
    frame = load_table(settings.dataset.path)
    timestamp = settings.dataset.timestamp
    if timestamp and timestamp in frame.columns:
        frame = frame.iloc[pd.to_datetime(frame[timestamp], utc=True).argsort(kind="stable")]
    cut = int(len(frame) * (1 - LIVE_SHARE))
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


def _track(tracking: TrackingTarget | None, model_dir: Path, evaluation: EvaluationResult) -> None:
    if tracking is not None:
        track_evaluation(tracking, model_dir=model_dir, output_dir=evaluation.output_dir)


def _train_in_container(
    prep: PrepResult, settings: MlopsSettings, root: Path, tracking: TrackingTarget | None
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
        failure = (root / "output" / "failure").read_text()
        raise RuntimeError(f"training failed: {failure}")
    return root / "model"


def _require_gate(evaluation: EvaluationResult, name: str) -> None:
    if not evaluation.gate.passed:
        raise RuntimeError(f"{name} failed the quality gate: " + "; ".join(evaluation.gate.reasons))


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
    model_dir = _train_in_container(broken, settings, out / "opt_ml", tracking)
    evaluation = run_evaluation(
        model_dir=model_dir,
        data=prep.output_dir / "test",
        output_dir=out / "evaluation",
        settings=settings,
        champion_dir=champion.model_dir,
        model_name=f"{settings.project} challenger with misaligned labels",
    )
    _track(tracking, model_dir, evaluation)
    if evaluation.gate.passed:
        raise RuntimeError(
            "the gate let a challenger trained on shuffled labels through: "
            + "; ".join(evaluation.gate.reasons)
        )
    return {"metrics": evaluation.metrics, "gate": evaluation.gate.to_dict()}


def _send_traffic(
    package: ModelPackage, spec: DatasetSpec, live: pd.DataFrame, capture_dir: Path
) -> int:
    """POST the live rows in batches, alternating CSV and JSON, each with an inference id.

    The client is the standard library's: the demo needs only mlcore's runtime dependencies.
    """
    requests = 0
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
            for start in range(0, len(live), TRAFFIC_BATCH_ROWS):
                batch = live.iloc[start : start + TRAFFIC_BATCH_ROWS]
                headers = {
                    "X-Amzn-SageMaker-Inference-Id": str(
                        uuid.uuid5(uuid.NAMESPACE_OID, f"demo-{start}")
                    )
                }
                if spec.timestamp:
                    # Local-only header: file the capture under the live period's time, not today's.
                    event_time = pd.to_datetime(batch[spec.timestamp].iloc[0], utc=True)
                    headers["X-Mlcore-Inference-Time"] = event_time.isoformat()
                features = batch[list(spec.features)]
                if requests % 2 == 0:
                    body = features.to_csv(header=False, index=False)
                    headers["Content-Type"] = "text/csv"
                else:
                    body = json.dumps({"instances": json.loads(features.to_json(orient="records"))})
                    headers["Content-Type"] = "application/json"
                _request(connection, "POST", "/invocations", body=body.encode(), headers=headers)
                requests += 1
        finally:
            connection.close()
    return requests


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
        raise RuntimeError(f"{method} {path} answered {response.status}: {payload[:500]!r}")
    return payload


def _version_row(package: ModelPackage, evaluation: EvaluationResult) -> dict[str, Any]:
    return {
        "version": package.version,
        "status": package.status,
        "metrics": evaluation.metrics,
        "gate": evaluation.gate.to_dict(),
    }


def _summary_document(result: DemoResult) -> dict[str, Any]:
    return {
        "versions": result.versions,
        "blocked_challenger": result.blocked,
        "drift": result.drift.to_dict() if result.drift else None,
        "traffic_requests": result.traffic_requests,
        "captured_rows": result.captured_rows,
        "tracking_uri": result.tracking_uri,
        "seconds": round(result.seconds, 1),
    }


def _print_summary(console: Console, result: DemoResult, out: Path) -> None:
    rows = [(f"v{row['version']}", str(row["status"]), row) for row in result.versions]
    if result.blocked:
        rows.append(("bad", "not registered", result.blocked))
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
    console.print(
        f"Artifacts in {out}/ (registry, evaluation.json, model cards, drift report, capture). {result.seconds:.0f}s."
    )
    if result.tracking_uri:
        console.print(f"MLflow runs: mlflow ui --backend-store-uri {result.tracking_uri}")


def _metric_text(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return "n/a" if value is None or value != value else f"{value:.3f}"


def _gate_text(gate: dict[str, Any]) -> str:
    if gate["passed"]:
        return "passed"
    failing = [
        r for r in gate["reasons"] if "below" in r or "worse" in r or "above" in r or "NaN" in r
    ]
    return "FAILED: " + "; ".join(failing or gate["reasons"])
