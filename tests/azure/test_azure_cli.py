"""The commands the Azure DevOps pipeline runs, driven through patched MLClient operations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import Mock

import mlops_azure.__main__ as cli
import pytest
from azure.ai.ml.entities import Model, PipelineJob
from azure.ai.ml.exceptions import JobException
from azure.ai.ml.operations import (
    ComponentOperations,
    ComputeOperations,
    DataOperations,
    EnvironmentOperations,
    JobOperations,
    ModelOperations,
    ScheduleOperations,
)
from azure.core.exceptions import ResourceNotFoundError
from azure.core.polling import LROPoller
from azure.identity import DefaultAzureCredential
from mlops_azure.endpoint import LIVE_MODEL_TAG, MODEL_TAG, PREVIOUS_MODEL_TAG

DEV_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
PROD_SUBSCRIPTION = "66666666-7777-8888-9999-000000000000"


@pytest.fixture(autouse=True)
def signed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workspace coordinates from the variable group; a credential that cannot sign in."""
    monkeypatch.setenv("MLOPS_AZURE_DEV_SUBSCRIPTION_ID", DEV_SUBSCRIPTION)
    monkeypatch.setenv("MLOPS_AZURE_PROD_SUBSCRIPTION_ID", PROD_SUBSCRIPTION)
    monkeypatch.setattr(
        cli, "DefaultAzureCredential", lambda: Mock(spec_set=DefaultAzureCredential)
    )
    monkeypatch.setattr("time.sleep", lambda seconds: None)


@pytest.fixture
def calls(
    monkeypatch: pytest.MonkeyPatch, finished: Callable[[object], LROPoller]
) -> list[tuple[Any, ...]]:
    """Record create/update calls on the workspace asset operations, in order."""
    recorded: list[tuple[Any, ...]] = []

    def record(kind: str, poller: bool) -> Callable[..., Any]:
        def call(ops: Any, entity: Any, **kwargs: Any) -> Any:
            # A monitor is identified by the deployment it watches; assets by their version.
            detail = (
                entity.create_monitor.monitoring_target.endpoint_deployment_id
                if kind == "schedule"
                else getattr(entity, "version", None)
            )
            recorded.append((kind, entity.name, detail))
            return finished(entity) if poller else entity

        return call

    monkeypatch.setattr(ComputeOperations, "begin_create_or_update", record("compute", True))
    monkeypatch.setattr(EnvironmentOperations, "create_or_update", record("environment", False))
    monkeypatch.setattr(DataOperations, "create_or_update", record("data", False))
    monkeypatch.setattr(ComponentOperations, "create_or_update", record("component", False))
    monkeypatch.setattr(ScheduleOperations, "begin_create_or_update", record("schedule", True))
    return recorded


def test_apply_without_real_coordinates_calls_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MLOPS_AZURE_DEV_SUBSCRIPTION_ID")
    monkeypatch.setattr(
        cli, "MLClient", lambda *a, **k: pytest.fail("no client without a subscription")
    )
    assert cli.main(["apply", "--env", "dev"]) == cli.EXIT_CONFIG
    assert "placeholder subscription" in capsys.readouterr().err


def test_apply_creates_assets_then_components_then_endpoint(calls: list, workspace: Any) -> None:  # type: ignore[type-arg]
    assert cli.main(["apply", "--env", "dev"]) == 0
    kinds = [call[0] for call in calls]
    assert kinds == [
        "compute",
        "environment",
        "environment",
        "data",
        "data",
        "data",
        *["component"] * 4,
    ]
    assert [call[1] for call in calls if call[0] == "environment"] == [
        "churn-mlcore-training",
        "churn-mlcore-serving",
    ]
    assert [call[1] for call in calls if call[0] == "data"] == [
        "churn-training-data",
        "churn-reference-data",
        "churn-settings",
    ]
    assert workspace.events == [("traffic", {}, {})]


def test_reapplying_keeps_the_live_traffic(calls: list, workspace: Any) -> None:  # type: ignore[type-arg]
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    assert cli.main(["apply", "--env", "dev"]) == 0
    assert workspace.events == [("traffic", {"blue": 100}, {})]
    assert workspace.endpoint.tags[LIVE_MODEL_TAG] == "churn-model:1"
    # The monitor of the serving deployment picks up the current mlops.yaml thresholds.
    assert calls[-1] == ("schedule", "churn-dev-monitor", "azureml:churn-dev:blue")


def test_apply_with_nothing_deployed_creates_no_monitor(calls: list, workspace: Any) -> None:  # type: ignore[type-arg]
    assert cli.main(["apply", "--env", "dev"]) == 0
    assert "schedule" not in [call[0] for call in calls]


def _models(monkeypatch: pytest.MonkeyPatch, registry: dict[str, dict[str, Model]]) -> None:
    """Patch ModelOperations.get over per-workspace registries (workspace -> "name:version" -> Model)."""

    def get(ops: Any, name: str, version: str | None = None, label: str | None = None) -> Model:
        models = registry.get(ops._operation_scope.workspace_name, {})
        candidates = [
            m
            for m in models.values()
            if m.name == name and (version is None or m.version == version)
        ]
        if not candidates:
            raise ResourceNotFoundError(f"model {name}:{version or label} not found")
        return max(candidates, key=lambda m: int(m.version))

    monkeypatch.setattr(ModelOperations, "get", get)


@pytest.fixture
def jobs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    state: dict[str, Any] = {"submitted": [], "status": "Completed"}

    def create(ops: Any, job: PipelineJob, **kwargs: Any) -> Any:
        state["submitted"].append(job)
        return SimpleNamespace(name="job-1", studio_url="https://ml.azure.com/runs/job-1")

    def stream(ops: Any, name: str) -> None:
        if state["status"] != "Completed":
            raise JobException(message="job failed", no_personal_data_message="job failed")

    monkeypatch.setattr(JobOperations, "create_or_update", create)
    monkeypatch.setattr(JobOperations, "stream", stream)
    monkeypatch.setattr(
        JobOperations, "get", lambda ops, name: SimpleNamespace(status=state["status"])
    )
    return state


def test_first_training_runs_without_a_champion(
    monkeypatch: pytest.MonkeyPatch, calls: list, jobs: dict
) -> None:  # type: ignore[type-arg]
    _models(monkeypatch, {})
    assert cli.main(["train", "--env", "dev", "--git-commit", "abc123"]) == 0
    (job,) = jobs["submitted"]
    assert "champion" not in job._to_dict()["inputs"]
    assert job.tags["git_commit"] == "abc123"
    assert job.experiment_name == "churn-training-dev"
    # The settings the steps read are registered first, at the version the job names.
    (settings_asset,) = calls
    assert settings_asset[:2] == ("data", "churn-settings")
    assert (
        job._to_dict()["inputs"]["settings_yaml"]["path"]
        == f"azureml:churn-settings:{settings_asset[2]}"
    )


def test_training_challenges_the_latest_registered_model(
    monkeypatch: pytest.MonkeyPatch, calls: list, jobs: dict
) -> None:  # type: ignore[type-arg]
    _models(
        monkeypatch,
        {"mlw-mlops-dev": {v: Model(name="churn-model", version=v) for v in ("1", "2", "3")}},
    )
    assert cli.main(["train", "--env", "dev"]) == 0
    (job,) = jobs["submitted"]
    assert job._to_dict()["inputs"]["champion"]["path"] == "azureml:churn-model:3"


def test_failed_pipeline_fails_the_train_command(
    monkeypatch: pytest.MonkeyPatch, calls: list, jobs: dict, capsys
) -> None:  # type: ignore[no-untyped-def, type-arg]
    _models(monkeypatch, {})
    jobs["status"] = "Failed"
    assert cli.main(["train", "--env", "dev"]) == cli.EXIT_FAILED
    assert "no model was registered" in capsys.readouterr().err.replace("\n", " ")


def test_rollout_command_deploys_the_latest_model_and_moves_the_monitor(
    monkeypatch: pytest.MonkeyPatch,
    calls: list,
    workspace: Any,  # type: ignore[type-arg]
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    _models(
        monkeypatch,
        {"mlw-mlops-dev": {v: Model(name="churn-model", version=v) for v in ("1", "2")}},
    )
    assert cli.main(["rollout", "--env", "dev"]) == 0
    assert workspace.without_invokes()[0] == ("create", "green", "churn-model:2")
    assert workspace.without_invokes()[-1] == ("delete", "blue")
    assert calls == [("schedule", "churn-dev-monitor", "azureml:churn-dev:green")]
    assert workspace.endpoint.tags[PREVIOUS_MODEL_TAG] == "churn-model:1"


def test_failed_rollout_exits_non_zero_and_leaves_the_monitor_alone(
    monkeypatch: pytest.MonkeyPatch,
    calls: list,
    workspace: Any,
    capsys,  # type: ignore[no-untyped-def, type-arg]
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    workspace.fails = lambda deployment, traffic: (
        deployment == "green" and bool(traffic.get("green"))
    )
    assert cli.main(["rollout", "--env", "dev", "--model-version", "2"]) == cli.EXIT_FAILED
    assert "rolled back" in capsys.readouterr().err
    assert workspace.endpoint.traffic == {"blue": 100, "green": 0}
    assert calls == []


def test_rollback_command_points_the_monitor_at_the_restored_deployment(
    calls: list,
    workspace: Any,  # type: ignore[type-arg]
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    workspace.seed(
        "green",
        "churn-model:2",
        traffic={"blue": 50, "green": 50},
        tags={LIVE_MODEL_TAG: "churn-model:1"},
    )
    assert cli.main(["rollback", "--env", "dev"]) == 0
    assert set(workspace.deployments) == {"blue"}
    assert calls == [("schedule", "churn-dev-monitor", "azureml:churn-dev:blue")]


def test_prod_rollout_promotes_the_model_live_in_dev(
    monkeypatch: pytest.MonkeyPatch,
    calls: list,
    workspace: Any,
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    # One fake endpoint stands for both: dev's records model 4 as live; prod starts empty.
    workspace.endpoint.tags = {LIVE_MODEL_TAG: "churn-model:4"}
    monkeypatch.setattr(workspace.endpoint, "name", "churn-prod")
    dev_model = Model(
        name="churn-model", version="4", tags={"git_commit": "abc"}, description="gated"
    )
    registry: dict[str, dict[str, Model]] = {"mlw-mlops-dev": {"4": dev_model}}
    _models(monkeypatch, registry)
    registered: list[Model] = []

    def download(ops: Any, name: str, version: str, download_path: str) -> None:
        assert ops._operation_scope.workspace_name == "mlw-mlops-dev"
        folder = Path(download_path) / name / "model"
        folder.mkdir(parents=True)
        (folder / "metadata.json").write_text("{}")
        (folder / "model.joblib").write_bytes(b"weights")

    def create(ops: Any, model: Model) -> Model:
        assert ops._operation_scope.workspace_name == "mlw-mlops-prod"
        assert (Path(model.path) / "model.joblib").read_bytes() == b"weights"
        registered.append(model)
        registry.setdefault("mlw-mlops-prod", {})[model.version] = model
        return model

    monkeypatch.setattr(ModelOperations, "download", download)
    monkeypatch.setattr(ModelOperations, "create_or_update", create)
    monkeypatch.setattr(
        "mlops_azure.__main__.load_environment",
        _prod_endpoint_shared_with_dev(cli.load_environment),
    )
    assert cli.main(["rollout", "--env", "prod", "--promote-from", "dev"]) == 0
    (model,) = registered
    assert (model.name, model.version) == ("churn-model", "4")
    assert model.tags == {"git_commit": "abc", "promoted_from": "dev (mlw-mlops-dev)"}
    assert workspace.deployments["blue"].tags[MODEL_TAG] == "churn-model:4"
    assert calls == [("schedule", "churn-prod-monitor", "azureml:churn-prod:blue")]


def _prod_endpoint_shared_with_dev(load: Callable[..., Any]) -> Callable[..., Any]:
    """Point dev's endpoint name at the single fake endpoint too (it is named churn-prod)."""

    def patched(name: str, **kwargs: Any) -> Any:
        env = load(name, **kwargs)
        return env.model_copy(
            update={"endpoint": env.endpoint.model_copy(update={"name": "churn-prod"})}
        )

    return patched
