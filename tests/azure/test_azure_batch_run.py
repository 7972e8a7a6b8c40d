"""The scheduled batch run and the batch deployment's scoring, through the SDK to the fake service.

The run (:mod:`mlops_azure.jobs.batch_run`) invokes the batch endpoint with a real
MLClient whose transport is fake_arm.py's service; the service "runs" the invoked
deployment by calling its scoring script (:mod:`mlcore.serve.azure_batch_scoring`) the way
Azure's batch runtime does: ``init()`` with ``AZUREML_MODEL_DIR`` and
``AZUREML_BI_OUTPUT_PATH`` set, then ``run(mini_batch)`` per file of the input folder.
What differs from Azure: the datastore is a local folder (Azure mounts it), and the
mini-batches run one after another in this process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from azure.ai.ml import MLClient
from fake_arm import FakeAzure
from mlops_azure import batch
from mlops_azure.config import AzureEnvironment
from mlops_azure.jobs import batch_run

from mlcore.data import make_churn
from mlcore.errors import ModelError
from mlcore.model import model_sha256
from mlcore.serve import azure_batch_scoring
from mlcore.settings import MlopsSettings

CHURN_SETTINGS = Path(__file__).resolve().parents[1] / "fixtures" / "mlops.yaml"
INPUT_URI = "azureml://datastores/workspaceblobstore/paths/churn/batch/incoming/"
OUTPUT_URI = "azureml://datastores/workspaceblobstore/paths/churn/batch/scored/"


class Datastore:
    """The workspace blob store as a local folder, and the batch runtime that writes to it."""

    def __init__(self, root: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.model_dir = model_dir
        self.monkeypatch = monkeypatch
        self.status = "Completed"

    def local(self, uri: str) -> Path:
        return self.root / uri.split("/paths/", 1)[1]

    def run_deployment(self, deployment: str, job: dict[str, Any]) -> str:
        """What Azure's batch runtime does with an invocation: init(), then run() per file."""
        if self.status != "Completed":
            return self.status
        (inputs,) = job["inputData"].values()
        (output,) = job["outputData"].values()
        out = self.local(output["uri"])
        out.mkdir(parents=True, exist_ok=True)
        self.monkeypatch.setenv("AZUREML_MODEL_DIR", str(self.model_dir.parent))
        self.monkeypatch.setenv("AZUREML_BI_OUTPUT_PATH", str(out))
        self.monkeypatch.setenv("MLCORE_MODEL_SHA256", model_sha256(self.model_dir))
        azure_batch_scoring.init()
        files = sorted(p for p in self.local(inputs["uri"]).rglob("*") if p.is_file())
        for file in files:
            azure_batch_scoring.run([str(file)])
        azure_batch_scoring.writer().close()
        return "Completed"


@pytest.fixture
def datastore(
    tmp_path: Path, saved_model_dir: Path, monkeypatch: pytest.MonkeyPatch, azure: FakeAzure
) -> Datastore:
    # Azure mounts the registered model folder under AZUREML_MODEL_DIR/<folder name>.
    model = tmp_path / "model-mount" / "churn-model"
    shutil.copytree(saved_model_dir, model)
    store = Datastore(tmp_path / "blobstore", model, monkeypatch)
    drop = store.local(INPUT_URI)
    drop.mkdir(parents=True)
    live = make_churn(1_200, start="2025-11-01", end="2026-01-31", seed=9)
    live.iloc[:700].drop(columns=["churned"]).to_parquet(drop / "part-0.parquet", index=False)
    live.iloc[700:].drop(columns=["churned"]).to_csv(drop / "part-1.csv", index=False)
    azure.run_batch = store.run_deployment
    return store


@pytest.fixture
def deployed(
    ml_client: MLClient, datastore: Datastore, dev_env: AzureEnvironment, tmp_path: Path
) -> str:
    """The batch endpoint with a deployment, made the default, as batch-deploy leaves it."""
    settings = MlopsSettings.model_validate({"project": "churn"})
    env = dev_env.model_copy(
        update={"batch": dev_env.batch.model_copy(update={"endpoint_name": "churn-batch"})}
    )
    assert dev_env.batch is not None
    ml_client.batch_endpoints.begin_create_or_update(
        batch.build_batch_endpoint(env, settings)
    ).result()
    deployment = batch.build_batch_deployment(
        env,
        settings,
        model="azureml:churn-model:1",
        model_sha256=None,
        environment="azureml:churn-env:1",
        code_dir=batch.stage_batch_code(tmp_path / "batch-code"),
    )
    ml_client.batch_deployments.begin_create_or_update(deployment).result()
    endpoint = ml_client.batch_endpoints.get("churn-batch")
    endpoint.defaults = {"deployment_name": deployment.name}
    ml_client.batch_endpoints.begin_create_or_update(endpoint).result()
    return "churn-batch"


def _request(
    datastore: Datastore, endpoint: str, trigger: str = "2026-02-01T02:00:00Z"
) -> batch_run.RunRequest:
    return batch_run.RunRequest(
        endpoint=endpoint,
        input_uri=INPUT_URI,
        output_uri=OUTPUT_URI,
        runs=datastore.local(OUTPUT_URI),
        model_dir=datastore.model_dir,
        settings=CHURN_SETTINGS,
        trigger_time=trigger,
        poll_seconds=0,
    )


def test_a_scheduled_run_scores_the_drop_runs_drift_and_writes_the_manifest_last(
    ml_client: MLClient, azure: FakeAzure, datastore: Datastore, deployed: str
) -> None:
    request = _request(datastore, deployed)
    manifest = batch_run.run(ml_client, request, environ={}, sleep=lambda s: None)

    folder = datastore.local(OUTPUT_URI) / "20260201T020000Z"
    assert manifest["rows_scored"] == 1_200 and manifest["rows_rejected"] == 0
    assert manifest["batch_job"] == "churn-batch-20260201t020000z"
    assert manifest["model_sha256"] == model_sha256(datastore.model_dir)
    assert json.loads((folder / "_SUCCESS").read_text()) == manifest
    # The batch job was asked for exactly this run's folder, on the drop.
    ((deployment, job),) = azure.batch_jobs
    assert deployment == "v1"
    assert job["name"] == "churn-batch-20260201t020000z"
    scored = pd.concat(
        pd.read_parquet(p) for p in sorted((folder / "predictions").glob("*.parquet"))
    )
    assert len(scored) == 1_200 and "customer_id" in scored.columns
    # mlcore's drift job read the run's capture: the live period has drifted.
    report = json.loads((folder / "drift" / "drift_report.json").read_text())
    assert report["current_rows"] == 1_200
    assert manifest["drift_grade"] == report["grade"]
    assert manifest["breached"] == (report["grade"] == "major")


def test_a_completed_run_is_not_scored_again(
    ml_client: MLClient, azure: FakeAzure, datastore: Datastore, deployed: str
) -> None:
    request = _request(datastore, deployed)
    first = batch_run.run(ml_client, request, environ={}, sleep=lambda s: None)
    again = batch_run.run(ml_client, request, environ={}, sleep=lambda s: None)
    assert again == first
    assert len(azure.batch_jobs) == 1


def test_a_failed_batch_job_leaves_a_run_without_a_manifest(
    ml_client: MLClient, azure: FakeAzure, datastore: Datastore, deployed: str
) -> None:
    datastore.status = "Failed"
    request = _request(datastore, deployed)
    with pytest.raises(batch_run.BatchRunFailed, match="ended Failed"):
        batch_run.run(ml_client, request, environ={}, sleep=lambda s: None)
    assert not list(datastore.local(OUTPUT_URI).rglob("_SUCCESS"))


def test_the_deployment_refuses_a_model_that_is_not_the_registered_one(
    datastore: Datastore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(datastore.model_dir.parent))
    monkeypatch.setenv("AZUREML_BI_OUTPUT_PATH", str(tmp_path / "out"))
    monkeypatch.setenv("MLCORE_MODEL_SHA256", "sha256:" + "0" * 64)
    with pytest.raises(ModelError, match="not the model that was registered"):
        azure_batch_scoring.init()


def test_a_retried_mini_batch_replaces_its_parts_and_bad_rows_fail_it(
    datastore: Datastore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(datastore.model_dir.parent))
    monkeypatch.setenv("AZUREML_BI_OUTPUT_PATH", str(out))
    monkeypatch.setenv("MLCORE_BATCH_CHUNK_ROWS", "300")
    azure_batch_scoring.init()
    drop = datastore.local(INPUT_URI) / "part-0.parquet"
    assert azure_batch_scoring.run([str(drop)]) == ["part-0.parquet: 700 scored, 0 rejected"]
    parts = sorted(p.name for p in (out / "predictions").iterdir())
    azure_batch_scoring.run([str(drop)])  # Azure retries a mini-batch whose worker died
    assert sorted(p.name for p in (out / "predictions").iterdir()) == parts
    assert len(parts) == 3

    bad = tmp_path / "bad.csv"
    frame = make_churn(100, seed=2)
    frame["age"] = frame["age"].astype(object)
    frame.loc[:4, "age"] = "unknown"
    frame.to_csv(bad, index=False)
    with pytest.raises(Exception, match=r"5 of 100 rows could not be scored"):
        azure_batch_scoring.run([str(bad)])
    azure_batch_scoring.writer().close()
    rejects = pd.concat(pd.read_csv(p) for p in (out / "rejects").glob("*.csv"))
    assert len(rejects) == 5
