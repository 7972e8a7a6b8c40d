"""`apply --dry-run`: one YAML per entity, offline, and each read back by the SDK's own loader."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlops_azure.__main__ as cli
import pytest
import yaml
from azure.ai.ml import (
    load_batch_endpoint,
    load_component,
    load_compute,
    load_data,
    load_environment,
    load_job,
    load_online_deployment,
    load_online_endpoint,
    load_registry,
    load_workspace,
)
from azure.ai.ml.entities._load_functions import load_model_batch_deployment, load_schedule
from azure.mgmt.eventgrid.models import EventSubscription, SystemTopic
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING

LOADERS: dict[str, Callable[..., Any]] = {
    "compute": load_compute,
    "environment": load_environment,
    "data": load_data,
    "component": load_component,
    "pipeline": load_job,
    "endpoint": load_online_endpoint,
    "deployment": load_online_deployment,
    "monitor": load_schedule,
    "schedule": load_schedule,
    "workspace": load_workspace,
    "registry": load_registry,
    "batch-endpoint": load_batch_endpoint,
    # load_batch_deployment's schema has no `settings`: a model deployment has its own loader.
    "batch-deployment": load_model_batch_deployment,
}
EXPECTED_FILES = {
    "workspace.yaml",
    "registry.yaml",
    "compute.yaml",
    "environment-training.yaml",
    "environment-serving.yaml",
    "data-training.yaml",
    "data-settings.yaml",
    "component-prep.yaml",
    "component-train.yaml",
    "component-evaluate.yaml",
    "component-reference.yaml",
    "component-register.yaml",
    "pipeline-training.yaml",
    "endpoint.yaml",
    "deployment-blue.yaml",
    "monitor.yaml",
    "schedule-performance.yaml",
    "schedule-performance-job.yaml",
    # The fixture settings say monitoring.engine: auto, so the Spark drift job is written.
    "schedule-spark-drift.yaml",
    "schedule-spark-drift-job.yaml",
    # The fixture dev environment has a batch section: endpoint, deployment, scheduled run.
    "environment-batch.yaml",
    "batch-endpoint.yaml",
    "batch-deployment.yaml",
    "schedule-batch.yaml",
    "schedule-batch-job.yaml",
}
JOB_FILES = {name for name in EXPECTED_FILES if name.endswith("-job.yaml")}
EVENT_GRID_FILES = {
    "eventgrid-system-topic.json": SystemTopic,
    "eventgrid-retrain-subscription.json": EventSubscription,
}


def test_dry_run_writes_one_yaml_per_entity(dry_run: Path) -> None:
    assert {p.name for p in dry_run.glob("*.yaml")} == EXPECTED_FILES
    # network.json: the managed network's rules and the private endpoints (test_azure_network.py).
    assert {p.name for p in dry_run.glob("*.json")} == set(EVENT_GRID_FILES) | {"network.json"}


@pytest.mark.parametrize("filename", sorted(EVENT_GRID_FILES))
def test_event_grid_files_load_back_with_the_management_sdk(dry_run: Path, filename: str) -> None:
    written = json.loads((dry_run / filename).read_text())
    model = EVENT_GRID_FILES[filename].deserialize(written)
    assert model.serialize() == written


def test_the_retrain_wiring_catches_exactly_breached_signals(dry_run: Path) -> None:
    subscription = EventSubscription.deserialize(
        json.loads((dry_run / "eventgrid-retrain-subscription.json").read_text())
    )
    assert subscription.filter.included_event_types == [
        "Microsoft.MachineLearningServices.RunStatusChanged"
    ]
    (breach, status) = subscription.filter.advanced_filters
    assert (breach.key, breach.values) == (f"data.runTags.{BREACH_TAG}", [BREACH_WORDING])
    assert (status.key, status.values) == ("data.runStatus", ["Completed"])
    assert subscription.destination.resource_id.endswith(
        "/providers/Microsoft.Web/sites/acme-risk-dev-retrain/functions/retrain"
    )
    topic = SystemTopic.deserialize(
        json.loads((dry_run / "eventgrid-system-topic.json").read_text())
    )
    assert topic.source.endswith("/workspaces/mlw-mlops-dev")


def test_dry_run_writes_three_signals_and_the_performance_job(dry_run: Path) -> None:
    monitor = yaml.safe_load((dry_run / "monitor.yaml").read_text())
    assert set(monitor["create_monitor"]["monitoring_signals"]) == {
        "data_drift",
        "prediction_drift",
        "data_quality",
    }
    performance = yaml.safe_load((dry_run / "schedule-performance-job.yaml").read_text())
    assert performance["type"] == "pipeline"  # what a schedule submits without preview flags
    step = performance["jobs"]["performance"]["component"]
    assert step["command"].startswith("python -m mlops_azure.jobs.performance")


def _absolute_local_paths(document: Any, base: Path) -> Any:
    """Resolve local ``code``/``path`` values against ``base``: loaders make them absolute."""
    if isinstance(document, dict):
        return {
            key: (
                str((base / value).resolve())
                if key in ("code", "path")
                and isinstance(value, str)
                and ":" not in value
                and "${{" not in value
                else _absolute_local_paths(value, base)
            )
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [_absolute_local_paths(item, base) for item in document]
    return document


def _forget_inline_component_identity(document: dict[str, Any]) -> dict[str, Any]:
    # load_job names every inline component "azureml_anonymous" (version "1"): Azure
    # registers a pipeline's inline components anonymously, so their name and version
    # in the file are not part of what is submitted.
    for node in document.get("jobs", {}).values():
        if isinstance(node.get("component"), dict):
            node["component"].pop("name", None)
            node["component"].pop("version", None)
    return document


def test_the_performance_job_file_loads_as_the_job_written(dry_run: Path) -> None:
    # load_job returns the pipeline with its Command step; the step's _to_dict() nests the
    # job as a component, so the fields users rely on are compared one by one.
    path = dry_run / "schedule-performance-job.yaml"
    pipeline = yaml.safe_load(path.read_text())
    written = {
        **pipeline["jobs"]["performance"]["component"],
        "inputs": pipeline["jobs"]["performance"]["inputs"],
    }
    job = load_job(path).jobs["performance"]
    assert job.command == written["command"]
    assert load_job(path).experiment_name == pipeline["experiment_name"]
    assert str(job.environment) == written["environment"].removeprefix("azureml:")
    # The code path stays relative to the file, which is where Azure ML resolves it.
    assert str(job.code) == written["code"] and (dry_run / written["code"] / "mlops_azure").is_dir()
    # The loader drops the "azureml:" prefix of asset references, as it does for environments.
    assert {k: v.path for k, v in job.inputs.items() if k != "trigger_time"} == {
        k: v["path"].removeprefix("azureml:") if v["path"].count(":") == 2 else v["path"]
        for k, v in written["inputs"].items()
        if k != "trigger_time"
    }


@pytest.mark.parametrize("filename", sorted(EXPECTED_FILES - JOB_FILES))
def test_sdk_loader_reads_back_what_was_written(dry_run: Path, filename: str) -> None:
    path = dry_run / filename
    written = yaml.safe_load(path.read_text())
    stem = filename.removesuffix(".yaml")
    entity = (LOADERS[stem] if stem in LOADERS else LOADERS[stem.split("-")[0]])(path)
    loaded = json.loads(json.dumps(entity._to_dict(), default=str))
    if filename.startswith("schedule-"):
        # The schedule names its job's file, which the loader reads in (checked on its own
        # above and in test_azure_drift_job.py); the rest of the schedule must round-trip.
        assert written["create_job"]["job"] == f"./{stem}-job.yaml"
        written.pop("create_job")
        loaded.pop("create_job")
    expected = _absolute_local_paths(written, dry_run)
    actual = _absolute_local_paths(loaded, dry_run)
    if filename.startswith("pipeline"):
        expected, actual = (
            _forget_inline_component_identity(expected),
            _forget_inline_component_identity(actual),
        )
    assert actual == expected


def test_local_paths_are_relative_and_exist(dry_run: Path) -> None:
    deployment = yaml.safe_load((dry_run / "deployment-blue.yaml").read_text())
    assert deployment["code_configuration"]["code"] == "serving-code"
    assert (dry_run / "serving-code" / "score.py").is_file()
    component = yaml.safe_load((dry_run / "component-train.yaml").read_text())
    assert not Path(component["code"]).is_absolute()
    assert (dry_run / component["code"] / "mlcore" / "cli.py").is_file()
    assert (dry_run / component["code"] / "mlops_azure" / "jobs" / "reference.py").is_file()


def test_loaded_components_and_pipeline_still_validate(dry_run: Path) -> None:
    for path in dry_run.glob("component-*.yaml"):
        assert load_component(path)._validate().passed, path
    assert load_job(dry_run / "pipeline-training.yaml")._validate().passed


def test_dry_run_with_a_bad_setting_fails_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environments_dir: Path
) -> None:
    settings = tmp_path / "mlops.yaml"
    settings.write_text("drift:\n  numeric_method: kl\n")
    code = cli.main(
        [
            "apply",
            "--env",
            "dev",
            "--dry-run",
            "--output",
            str(tmp_path / "out"),
            "--settings",
            str(settings),
            "--environments",
            str(environments_dir),
        ]
    )
    assert code == cli.EXIT_CONFIG
    assert (
        "numeric_method 'kl' has no Azure ML monitoring metric"
        in capsys.readouterr().err.replace("\n", " ")
    )
