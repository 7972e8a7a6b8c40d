"""The scheduled batch run: invoke the batch endpoint, wait, run mlcore's drift job on it.

The one step of the batch schedule's pipeline job (:mod:`mlops_azure.batch`). Each firing
is one run, named after its trigger time (``20260115T020000Z``):

1. the endpoint's default deployment is invoked on the drop folder (``--input-uri``) with
   the run's folder under ``--output-uri`` as its output, and the step waits for the batch
   job; the batch job's name is fixed by the run (``<endpoint>-<run>``), so a retried
   step finds the job it started instead of starting another;
2. once the job completed, ``mlcore drift`` compares the run's ``capture/`` (the scored
   rows in the data-capture layout, as ``mlcore batch`` writes them) with the model's
   training baseline and writes ``drift/`` beside it; a major grade tags this step's run
   with the breach tag Azure's monitors use, so the retrain subscription acts on it;
3. the manifest ``_SUCCESS`` (the batch job, the model's hash, row counts, the grade) is
   written last. A run folder without it is not a complete run: the job failed, or is
   still going. A run that already has it is not scored again.

``--runs`` is the output folder mounted read-write (the same datastore folder as
``--output-uri``). The step signs in as the compute's managed identity.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING

logger = logging.getLogger(__name__)

MANIFEST_FILE = "_SUCCESS"
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding"}
SIGNAL_NAME = "batch-drift"
# Azure ML sets these in every job.
WORKSPACE_VARIABLES = (
    "AZUREML_ARM_SUBSCRIPTION",
    "AZUREML_ARM_RESOURCEGROUP",
    "AZUREML_ARM_WORKSPACE_NAME",
)


class BatchRunFailed(RuntimeError):
    """The batch job did not complete; the run folder has no manifest."""


def run_name(trigger_time: str) -> str:
    """The run's folder and job suffix: the trigger time in UTC, ``YYYYMMDDTHHMMSSZ``."""
    stamp = pd.Timestamp(trigger_time)
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return str(stamp.strftime("%Y%m%dT%H%M%SZ"))


@dataclass(frozen=True)
class RunRequest:
    endpoint: str
    input_uri: str
    output_uri: str
    runs: Path
    model_dir: Path
    settings: Path
    trigger_time: str
    timeout_seconds: float = 4 * 3600
    poll_seconds: float = 30

    @property
    def name(self) -> str:
        return run_name(self.trigger_time)

    @property
    def folder(self) -> Path:
        return self.runs / self.name

    @property
    def job_name(self) -> str:
        return f"{self.endpoint}-{self.name}".lower()


def workspace_client() -> Any:
    """The workspace this job runs in, as the compute's managed identity."""
    from azure.ai.ml import MLClient
    from azure.identity import ManagedIdentityCredential

    missing = [name for name in WORKSPACE_VARIABLES if not os.environ.get(name)]
    if missing:
        raise BatchRunFailed(f"not an Azure ML job: {missing} are not set")
    client_id = os.environ.get("DEFAULT_IDENTITY_CLIENT_ID")
    credential = (
        ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    )
    subscription, group, workspace = (os.environ[name] for name in WORKSPACE_VARIABLES)
    return MLClient(credential, subscription, group, workspace)


def invoke(client: Any, request: RunRequest) -> str:
    """Start the batch job of this run (or find the one a previous attempt started)."""
    from azure.ai.ml import Input, Output
    from azure.core.exceptions import ResourceNotFoundError

    try:
        existing = client.jobs.get(request.job_name)
    except ResourceNotFoundError:
        existing = None
    if existing is not None:
        logger.info("batch job %s exists (%s): waiting for it", request.job_name, existing.status)
        return request.job_name
    job = client.batch_endpoints.invoke(
        endpoint_name=request.endpoint,
        inputs={"input": Input(type="uri_folder", path=request.input_uri)},
        outputs={"score": Output(type="uri_folder", path=f"{request.output_uri}{request.name}/")},
        job_name=request.job_name,
    )
    logger.info("started batch job %s on %s", job.name, request.endpoint)
    return str(job.name or request.job_name)


def wait(client: Any, job_name: str, request: RunRequest, *, sleep: Any = time.sleep) -> str:
    """The batch job's final status; BatchRunFailed past the timeout."""
    deadline = time.monotonic() + request.timeout_seconds
    while True:
        raw = client.jobs.get(job_name).status
        # azure-ai-ml answers a JobStatus enum, whose str() is its name, not the status.
        status = str(getattr(raw, "value", raw))
        if status in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise BatchRunFailed(
                f"batch job {job_name} is still {status} after {request.timeout_seconds:.0f}s; "
                "the run has no manifest. Raise batch.timeout_seconds, or split the drop"
            )
        sleep(request.poll_seconds)


def finish(request: RunRequest, job_name: str, environ: dict[str, str]) -> dict[str, Any]:
    """Drift on the run's capture, the breach tag on a major grade, then the manifest."""
    from mlcore.cli import main as mlcore_main
    from mlcore.data.io import data_files
    from mlcore.model import model_sha256

    folder = request.folder
    capture = folder / "capture"
    if not capture.is_dir():
        raise BatchRunFailed(
            f"batch job {job_name} completed but wrote no capture under {folder}: is the "
            "deployment's scoring script azure/scoring/batch_score.py?"
        )
    code = mlcore_main(
        [
            "drift",
            "--streaming",
            "--current",
            str(capture),
            "--baseline",
            str(request.model_dir),
            "--output",
            str(folder / "drift"),
            "--settings",
            str(request.settings),
        ]
    )
    if code != 0:
        raise BatchRunFailed(f"mlcore drift failed on {capture} (exit {code}); see the log above")
    report = json.loads((folder / "drift" / "drift_report.json").read_text())
    breached = tag_run(report, environ)
    import pyarrow.parquet as pq

    predictions = folder / "predictions"
    scored = sum(pq.ParquetFile(p).metadata.num_rows for p in data_files(predictions))
    rejected = 0
    for rejects in sorted((folder / "rejects").glob("*.csv")):
        with rejects.open(newline="", encoding="utf-8") as handle:
            rejected += max(sum(1 for _ in csv.reader(handle)) - 1, 0)
    manifest = {
        "status": "complete",
        "batch_job": job_name,
        "endpoint": request.endpoint,
        "input": request.input_uri,
        "trigger_time": request.trigger_time,
        "model_sha256": model_sha256(request.model_dir),
        "rows_scored": scored,
        "rows_rejected": rejected,
        "drift_grade": report["grade"],
        "breached": breached is not None,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def tag_run(report: dict[str, Any], environ: dict[str, str]) -> str | None:
    """The grade on this step's MLflow run, and the breach tag on a major grade."""
    grade = report["grade"]
    message = None
    if grade == "major":
        drifted = ", ".join(report.get("drifted_features") or []) or "none named"
        message = (
            f"The signal '{SIGNAL_NAME}' {BREACH_WORDING}.\n"
            f"mlcore drift graded the batch run major; major features: {drifted}"
        )
    run_id = environ.get("MLFLOW_RUN_ID")
    if not run_id:
        logger.warning("no MLFLOW_RUN_ID: grade %s is in the report only", grade)
        return message
    from mlflow import MlflowClient  # azureml-mlflow, in the job environment

    client = MlflowClient()
    client.set_tag(run_id, "drift_grade", grade)
    if message is not None:
        client.set_tag(run_id, BREACH_TAG, message)
    return message


def run(
    client: Any, request: RunRequest, *, environ: dict[str, str], sleep: Any = time.sleep
) -> dict[str, Any]:
    """One scheduled run, start to manifest; BatchRunFailed when the batch job did not complete."""
    manifest_path = request.folder / MANIFEST_FILE
    if manifest_path.is_file():
        logger.info("run %s is already complete: %s", request.name, manifest_path)
        done: dict[str, Any] = json.loads(manifest_path.read_text())
        return done
    job_name = invoke(client, request)
    status = wait(client, job_name, request, sleep=sleep)
    if status != "Completed":
        raise BatchRunFailed(
            f"batch job {job_name} ended {status}; the run {request.folder} has no manifest. "
            "Its logs are in the job's outputs (logs/user/), rejects under rejects/"
        )
    return finish(request, job_name, environ)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_azure.jobs.batch_run")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--input-uri", required=True)
    parser.add_argument("--output-uri", required=True)
    parser.add_argument("--runs", required=True, type=Path)
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--settings", required=True, type=Path)
    parser.add_argument("--trigger-time", required=True)
    parser.add_argument("--timeout-seconds", type=float, default=4 * 3600)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from mlcore.serve.azure_scoring import find_model_dir

    request = RunRequest(
        endpoint=args.endpoint,
        input_uri=args.input_uri,
        output_uri=args.output_uri,
        runs=args.runs,
        model_dir=find_model_dir(args.model_dir),
        settings=args.settings,
        trigger_time=args.trigger_time,
        timeout_seconds=args.timeout_seconds,
    )
    try:
        manifest = run(workspace_client(), request, environ=dict(os.environ))
    except BatchRunFailed as exc:
        logger.error("%s", exc)
        return 1
    print(json.dumps(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
