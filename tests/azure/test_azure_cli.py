"""The commands the Azure DevOps pipeline runs, driven through patched MLClient operations.

A real MLClient (mocked credential) whose operation classes act on in-memory state: the
dev workspace, the shared registry, and conftest's fake endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import Mock

import mlops_azure.__main__ as cli
import pytest
import yaml
from azure.ai.ml.entities import AzureBlobDatastore, Data, Model, PipelineJob
from azure.ai.ml.operations import (
    ComponentOperations,
    ComputeOperations,
    DataOperations,
    DatastoreOperations,
    EnvironmentOperations,
    JobOperations,
    ModelOperations,
    RegistryOperations,
    ScheduleOperations,
    WorkspaceOperations,
)
from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller
from azure.identity import DefaultAzureCredential
from azure.storage.blob import ContainerClient
from mlops_azure.metrics import TrafficStats
from mlops_azure.promote import MODEL_SHA256_TAG, REFERENCE_TAG
from mlops_azure.rollout import LIVE_TAG, Placed

from mlcore.model import write_manifest

DEV_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
SHA = "sha256:" + "ef" * 32


@pytest.fixture
def run(environments_dir: Path, settings_file: Path) -> Callable[..., int]:
    """``python -m mlops_azure`` with the fixture environments and settings."""

    def call(*argv: str) -> int:
        command, *rest = argv
        return cli.main(
            [
                command,
                "--environments",
                str(environments_dir),
                "--settings",
                str(settings_file),
                *rest,
            ]
        )

    return call


class Healthy:
    def traffic(self, deployment: str, start: Any, end: Any) -> TrafficStats:
        return TrafficStats(requests=1_000, errors_5xx=0, p99_latency_ms=40)


@pytest.fixture(autouse=True)
def signed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace coordinates from the variable group; a credential that cannot sign in."""
    monkeypatch.setenv("MLOPS_AZURE_DEV_SUBSCRIPTION_ID", DEV_SUBSCRIPTION)
    monkeypatch.delenv("TF_BUILD", raising=False)
    monkeypatch.setattr(
        "mlops_azure.credentials.DefaultAzureCredential",
        lambda: Mock(spec_set=DefaultAzureCredential),
    )
    monkeypatch.setattr(cli.Clients, "metrics", lambda self: Healthy())
    monkeypatch.setattr(cli.Clients, "registry", _offline_registry_client)
    monkeypatch.setattr("time.sleep", lambda seconds: None)


def _offline_registry_client(self: Any) -> Any:
    # MLClient(registry_name=...) asks Azure for the registry's region while it is built;
    # offline, a client with the registry in its operation scope stands in for it.
    client = cli.MLClient(
        Mock(spec_set=DefaultAzureCredential),
        subscription_id=self.env.subscription_id,
        resource_group_name=self.env.resource_group,
        workspace_name=self.env.workspace,
    )
    client._operation_scope.registry_name = self.env.registry.name
    return client


class Cloud:
    """Recorded calls plus the workspace's and the registry's models and data."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.workspace_models: dict[str, Model] = {}
        self.registry_models: dict[str, Model] = {}
        self.workspace_exists = True
        self.registry_exists = True
        self.blobs = [SimpleNamespace(name="acme/raw/part-0.parquet", size=10, etag="0x1")]
        self.job_status = "Completed"
        self.submitted: list[PipelineJob] = []
        self.eventgrid = Mock()
        self.trained_sha256 = ""  # the hash (manifest) of the model the last train job wrote


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, finished: Callable[[object], LROPoller]) -> Cloud:
    state = Cloud()

    def record(kind: str, poller: bool) -> Callable[..., Any]:
        def call(ops: Any, entity: Any, **kwargs: Any) -> Any:
            detail = getattr(entity, "version", None)
            if kind == "schedule" and hasattr(entity, "create_monitor"):
                detail = entity.create_monitor.monitoring_target.endpoint_deployment_id
            elif kind == "schedule":
                detail = entity.create_job.inputs["model_inputs"].path  # the jobs' traffic
            state.calls.append((kind, entity.name, detail))
            return finished(entity) if poller else entity

        return call

    def disable(ops: Any, name: str, **kwargs: Any) -> Any:
        state.calls.append(("schedule-disabled", name, None))
        return finished(None)

    def scope(ops: Any) -> str:
        return "registry" if ops._operation_scope.registry_name else "workspace"

    def workspace_get(ops: Any, name: str | None = None, **kwargs: Any) -> Any:
        if not state.workspace_exists:
            raise ResourceNotFoundError("workspace not found")
        return SimpleNamespace(name=name)

    def registry_get(ops: Any, name: str | None = None) -> Any:
        if not state.registry_exists:
            raise ResourceNotFoundError("registry not found")
        return SimpleNamespace(name=name)

    def models(ops: Any) -> dict[str, Model]:
        return state.registry_models if scope(ops) == "registry" else state.workspace_models

    def model_get(
        ops: Any, name: str, version: str | None = None, label: str | None = None
    ) -> Model:
        found = [m for m in models(ops).values() if m.name == name and version in (None, m.version)]
        if not found:
            raise ResourceNotFoundError(f"model {name}:{version or label} not found")
        return max(found, key=lambda m: int(m.version))

    def model_update(ops: Any, model: Model) -> Model:
        models(ops)[model.version] = model
        state.calls.append(("model", scope(ops), model.name, model.version))
        return model

    def model_share(ops: Any, name: str, version: str, **kwargs: Any) -> Model:
        source = state.workspace_models[version]
        shared = Model(
            name=kwargs["share_with_name"],
            version=kwargs["share_with_version"],
            tags=dict(source.tags or {}),
        )
        state.registry_models[version] = shared
        state.calls.append(("share-model", kwargs["registry_name"], name, version))
        return shared

    def data_share(ops: Any, name: str, version: str, **kwargs: Any) -> Data:
        state.calls.append(("share-data", kwargs["registry_name"], name, version))
        return Data(name=name, version=version)

    def job_create(ops: Any, job: PipelineJob, **kwargs: Any) -> Any:
        state.submitted.append(job)
        # The pipeline registers its named outputs at the versions it was given.
        version = job.outputs["registered_model"].version
        if state.job_status == "Completed":
            state.workspace_models[version] = Model(
                name=job.outputs["registered_model"].name, version=version, tags={}
            )
        return SimpleNamespace(name="job-1", studio_url="https://ml.azure.com/runs/job-1")

    def job_download(
        ops: Any, name: str, *, download_path: str, output_name: str | None = None, **kw: Any
    ) -> None:
        folder = Path(download_path) / "named-outputs" / output_name  # type: ignore[operator]
        (folder / "evaluation").mkdir(parents=True)
        (folder / "metadata.json").write_text(
            json.dumps({"git_commit": "abc123", "data_fingerprint": "sha256:00"})
        )
        (folder / "model.joblib").write_bytes(b"a trained pipeline")
        state.trained_sha256 = write_manifest(folder)
        (folder / "evaluation" / "evaluation.json").write_text(
            json.dumps(
                {
                    "binary_classification_metrics": {
                        "auc": {"value": 0.91, "standard_deviation": "NaN"}
                    }
                }
            )
        )
        (folder / "evaluation" / "gate.json").write_text(json.dumps({"passed": True}))

    def model_download(ops: Any, name: str, version: str, download_path: str) -> None:
        folder = Path(download_path) / name
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text("{}")
        (folder / "sample_request.json").write_text(json.dumps({"instances": [{"tenure": 1}] * 2}))

    monkeypatch.setattr(WorkspaceOperations, "get", workspace_get)
    monkeypatch.setattr(WorkspaceOperations, "begin_create", record("workspace", True))
    monkeypatch.setattr(RegistryOperations, "get", registry_get)
    monkeypatch.setattr(RegistryOperations, "begin_create", record("registry", True))
    monkeypatch.setattr(ComputeOperations, "begin_create_or_update", record("compute", True))
    monkeypatch.setattr(EnvironmentOperations, "create_or_update", record("environment", False))
    monkeypatch.setattr(DataOperations, "create_or_update", record("data", False))
    monkeypatch.setattr(DataOperations, "share", data_share)
    monkeypatch.setattr(ComponentOperations, "create_or_update", record("component", False))
    monkeypatch.setattr(ScheduleOperations, "begin_create_or_update", record("schedule", True))
    monkeypatch.setattr(ScheduleOperations, "begin_disable", disable)
    monkeypatch.setattr(ModelOperations, "get", model_get)
    monkeypatch.setattr(ModelOperations, "create_or_update", model_update)
    monkeypatch.setattr(ModelOperations, "share", model_share)
    monkeypatch.setattr(ModelOperations, "download", model_download)
    monkeypatch.setattr(JobOperations, "create_or_update", job_create)
    monkeypatch.setattr(
        JobOperations, "get", lambda ops, name: SimpleNamespace(status=state.job_status)
    )
    monkeypatch.setattr(JobOperations, "download", job_download)
    monkeypatch.setattr(
        DatastoreOperations,
        "get",
        lambda ops, name, **kw: AzureBlobDatastore(
            name=name, account_name="acct", container_name="data"
        ),
    )
    monkeypatch.setattr(
        ContainerClient, "list_blobs", lambda client, name_starts_with: list(state.blobs)
    )
    monkeypatch.setattr(cli.Clients, "eventgrid", lambda self: state.eventgrid)
    return state


def _kinds(cloud: Cloud) -> list[str]:
    return [call[0] for call in cloud.calls]


def test_apply_without_real_coordinates_calls_nothing(
    run: Callable[..., int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLOPS_AZURE_DEV_SUBSCRIPTION_ID")
    monkeypatch.setattr(
        cli, "MLClient", lambda *a, **k: pytest.fail("no client without a subscription")
    )
    assert run("apply", "--env", "dev") == cli.EXIT_CONFIG
    assert "placeholder subscription" in capsys.readouterr().err


def test_apply_creates_a_missing_workspace_and_registry_first(
    run: Callable[..., int], cloud: Cloud, workspace: Any
) -> None:
    cloud.workspace_exists = cloud.registry_exists = False
    assert run("apply", "--env", "dev") == 0
    assert _kinds(cloud)[:3] == ["workspace", "registry", "compute"]
    assert [c[1] for c in cloud.calls[:2]] == ["mlw-mlops-dev", "acme-registry"]


def test_apply_leaves_an_existing_workspace_alone_and_wires_retraining(
    run: Callable[..., int], cloud: Cloud, workspace: Any
) -> None:
    assert run("apply", "--env", "dev") == 0
    assert _kinds(cloud) == ["compute", "environment", "environment", "data", *["component"] * 5]
    topic = cloud.eventgrid.system_topics.begin_create_or_update.call_args.args
    assert topic[:2] == ("rg-mlops-dev", "mlw-mlops-dev-events")
    assert topic[2].topic_type == "Microsoft.MachineLearningServices.Workspaces"
    subscription = (
        cloud.eventgrid.system_topic_event_subscriptions.begin_create_or_update.call_args.args
    )
    assert subscription[:3] == ("rg-mlops-dev", "mlw-mlops-dev-events", "retrain-on-breach")
    assert workspace.events == [("traffic", {}, {})]


def test_reapplying_keeps_live_traffic_and_points_the_monitors_at_it(
    run: Callable[..., int], cloud: Cloud, workspace: Any
) -> None:
    cloud.registry_models["7"] = Model(
        name="acme-risk-model",
        version="7",
        tags={MODEL_SHA256_TAG: SHA, REFERENCE_TAG: "acme-risk-prediction-reference:7"},
    )
    from mlops_azure.rollout import DeploymentSpec

    spec = DeploymentSpec(
        model="azureml://registries/acme-registry/models/acme-risk-model/versions/7",
        environment="azureml:env:1",
        code="sha256:x",
    )
    workspace.seed("blue", spec, traffic={"blue": 100})
    workspace.tag(**{LIVE_TAG: Placed("blue", spec).to_tag()})
    assert run("apply", "--env", "dev") == 0
    assert workspace.endpoint.traffic == {"blue": 100}
    schedules = [c for c in cloud.calls if c[0] == "schedule"]
    assert schedules[0] == ("schedule", "acme-risk-dev-monitor", "azureml:acme-dev:blue")
    collector = "azureml://datastores/workspaceblobstore/paths/modelDataCollector/acme-dev/blue"
    # The fixture settings say monitoring.engine: auto: the Spark drift job follows blue too.
    assert schedules[1] == ("schedule", "acme-risk-dev-spark-drift", f"{collector}/model_inputs/")
    assert schedules[2] == ("schedule", "acme-risk-dev-performance", f"{collector}/model_inputs/")


def test_the_streaming_engine_turns_the_spark_drift_job_off(
    run: Callable[..., int], cloud: Cloud, workspace: Any, settings_file: Path, tmp_path: Path
) -> None:
    cloud.registry_models["5"] = Model(
        name="acme-risk-model",
        version="5",
        tags={MODEL_SHA256_TAG: SHA, REFERENCE_TAG: "acme-risk-prediction-reference:5"},
    )
    document = yaml.safe_load(settings_file.read_text())
    document["monitoring"]["engine"] = "streaming"
    streaming = tmp_path / "mlops.yaml"
    streaming.write_text(yaml.safe_dump(document))
    assert (
        run("rollout", "--env", "dev", "--model", "acme-risk-model:5", "--settings", str(streaming))
        == 0
    )
    names = [c[1] for c in cloud.calls if c[0].startswith("schedule")]
    assert "acme-risk-dev-spark-drift" not in [c[1] for c in cloud.calls if c[0] == "schedule"]
    assert ("schedule-disabled", "acme-risk-dev-spark-drift", None) in cloud.calls, names


def test_train_versions_the_data_by_its_files_and_publishes_to_the_registry(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("train", "--env", "dev", "--git-commit", "abc123") == 0
    data = [c for c in cloud.calls if c[0] == "data"]
    assert data[1][1] == "acme-risk-training-data" and data[1][2].startswith("snapshot-")
    (job,) = cloud.submitted
    version = job.outputs["registered_model"].version
    assert job.outputs["registered_reference"].version == version
    assert (
        job._to_dict()["inputs"]["raw_data"]["path"]
        == f"azureml:acme-risk-training-data:{data[1][2]}"
    )
    # Lineage lands on the model before it is shared, so the registry copy carries it.
    shared = cloud.registry_models[version]
    assert shared.tags[MODEL_SHA256_TAG] == cloud.trained_sha256
    assert shared.tags[REFERENCE_TAG] == f"acme-risk-prediction-reference:{version}"
    assert shared.tags["git_commit"] == "abc123"
    assert shared.tags["metric_auc"] == "0.91"
    assert shared.tags["azureml_job"] == "job-1"
    assert ("share-data", "acme-registry", "acme-risk-prediction-reference", version) in cloud.calls
    assert capsys.readouterr().out.strip() == f"acme-risk-model:{version}"


def test_new_files_give_a_new_data_version(run: Callable[..., int], cloud: Cloud) -> None:
    assert run("train", "--env", "dev") == 0
    cloud.blobs.append(SimpleNamespace(name="acme/raw/part-1.parquet", size=12, etag="0x2"))
    assert run("train", "--env", "dev") == 0
    first, second = (job._to_dict()["inputs"]["raw_data"]["path"] for job in cloud.submitted)
    assert first != second


def test_train_in_azure_pipelines_sets_the_model_output_variable(
    run: Callable[..., int],
    cloud: Cloud,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "TF_BUILD": "True",
        "AZURESUBSCRIPTION_TENANT_ID": "t",
        "AZURESUBSCRIPTION_CLIENT_ID": "c",
        "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID": "s",
        "SYSTEM_ACCESSTOKEN": "token",
    }.items():
        monkeypatch.setenv(name, value)
    assert run("train", "--env", "dev") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith(
        "##vso[task.setvariable variable=model;isOutput=true]acme-risk-model:"
    )


def test_a_failed_pipeline_publishes_nothing(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    cloud.job_status = "Failed"
    assert run("train", "--env", "dev") == cli.EXIT_FAILED
    assert "no model was registered" in capsys.readouterr().err.replace("\n", " ")
    assert cloud.registry_models == {}


def test_rollout_deploys_exactly_the_registry_version_given(
    run: Callable[..., int], cloud: Cloud, workspace: Any
) -> None:
    for version in ("5", "6"):
        cloud.registry_models[version] = Model(
            name="acme-risk-model",
            version=version,
            tags={
                MODEL_SHA256_TAG: SHA,
                REFERENCE_TAG: f"acme-risk-prediction-reference:{version}",
            },
        )
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    deployment = workspace.deployments["blue"]
    assert (
        deployment.model == "azureml://registries/acme-registry/models/acme-risk-model/versions/5"
    )
    assert deployment.environment_variables == {"MLCORE_MODEL_SHA256": SHA}
    monitor = next(c for c in cloud.calls if c[0] == "schedule")
    assert monitor == ("schedule", "acme-risk-dev-monitor", "azureml:acme-dev:blue")


def test_rollout_of_an_unpublished_version_is_refused(
    run: Callable[..., int], cloud: Cloud, workspace: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:9") == cli.EXIT_CONFIG
    assert "has no model acme-risk-model:9" in capsys.readouterr().err
    assert workspace.events == []


def test_rollback_command_points_the_monitors_at_the_restored_deployment(
    run: Callable[..., int], cloud: Cloud, workspace: Any
) -> None:
    for version in ("5", "6"):
        cloud.registry_models[version] = Model(
            name="acme-risk-model",
            version=version,
            tags={
                MODEL_SHA256_TAG: SHA,
                REFERENCE_TAG: f"acme-risk-prediction-reference:{version}",
            },
        )
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:6") == 0
    cloud.calls.clear()
    assert run("rollback", "--env", "dev") == 0
    assert workspace.endpoint.traffic == {"blue": 100, "green": 0}
    assert ("schedule", "acme-risk-dev-monitor", "azureml:acme-dev:blue") in cloud.calls
