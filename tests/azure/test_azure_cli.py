"""The commands the Azure DevOps pipeline runs, through the SDK down to the service's wire.

``python -m mlops_azure`` builds its real clients (MLClient for the workspace and the
registry, the Event Grid and Monitor management clients) with azure-core's ``transport``
set to the fake service of fake_arm.py: every MLClient operation, its validation, REST
conversion, uploads and long-running-operation polling run as they do against Azure. Only
the live metrics of a rollout phase (Azure Monitor) are a stand-in here; tests/azure/
test_azure_rollout.py drives the phases themselves.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlops_azure.__main__ as cli
import pytest
import yaml
from fake_arm import (
    STORAGE_ACCOUNT,
    Credential,
    FakeAzure,
    install_default_transport,
    registry_path,
    resource_id,
    seed_registry,
    seed_workspace,
    workspace_path,
)
from mlops_azure.metrics import TrafficStats
from mlops_azure.promote import MODEL_SHA256_TAG, REFERENCE_TAG

from mlcore.model import write_manifest

DEV_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
RESOURCE_GROUP = "rg-mlops-dev"
WORKSPACE = workspace_path(DEV_SUBSCRIPTION, RESOURCE_GROUP, "mlw-mlops-dev")
REGISTRY = registry_path(DEV_SUBSCRIPTION, RESOURCE_GROUP, "acme-registry")
SHA = "sha256:" + "ef" * 32
BLOBSTORE = f"{STORAGE_ACCOUNT}/azureml-blobstore"


class Healthy:
    """Azure Monitor's view of every phase: enough requests, no errors, fast."""

    def traffic(self, deployment: str, start: Any, end: Any) -> TrafficStats:
        return TrafficStats(requests=1_000, errors_5xx=0, p99_latency_ms=40)


class Cloud:
    """The fake service with the dev workspace and the shared registry, and what it ran."""

    def __init__(self, fake: FakeAzure) -> None:
        self.fake = fake
        self.training_outcome = "Completed"
        self.submitted: list[dict[str, Any]] = []
        self.trained_sha256 = ""  # the hash (manifest) of the model the last training wrote
        fake.run_job = self.run_training

    def run_training(self, job: dict[str, Any]) -> str:
        """A training pipeline run: it registers its model and prediction reference."""
        self.submitted.append(job)
        if self.training_outcome != "Completed":
            return self.training_outcome
        outputs = job["properties"]["outputs"]
        model, reference = outputs["registered_model"], outputs["registered_reference"]
        folder = f"azureml/{job['name']}/registered_model"
        # The model folder the register step writes: model files, their manifest, evaluation.
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp)
            (local / "evaluation").mkdir()
            (local / "metadata.json").write_text(
                json.dumps({"git_commit": "abc123", "data_fingerprint": "sha256:00"})
            )
            (local / "model.joblib").write_bytes(b"a trained pipeline")
            self.trained_sha256 = write_manifest(local)
            (local / "evaluation" / "evaluation.json").write_text(
                json.dumps(
                    {
                        "binary_classification_metrics": {
                            "auc": {"value": 0.91, "standard_deviation": "NaN"}
                        }
                    }
                )
            )
            (local / "evaluation" / "gate.json").write_text(json.dumps({"passed": True}))
            for file in local.rglob("*"):
                if file.is_file():
                    name = file.relative_to(local).as_posix()
                    self.fake.blobs[f"{BLOBSTORE}/{folder}/{name}"] = (file.read_bytes(), {})
        self._asset(
            f"{WORKSPACE}/models/{model['assetName']}/versions/{model['assetVersion']}",
            {
                "modelUri": f"azureml://datastores/workspaceblobstore/paths/{folder}",
                "modelType": "custom_model",
                "flavors": {},
            },
        )
        self._asset(
            f"{WORKSPACE}/data/{reference['assetName']}/versions/{reference['assetVersion']}",
            {
                "dataType": "mltable",
                "dataUri": f"azureml://datastores/workspaceblobstore/paths/azureml/{job['name']}/reference/",
            },
        )
        return "Completed"

    def _asset(self, path: str, properties: dict[str, Any]) -> None:
        self.fake.resources[self.fake._key(path)] = {
            "id": resource_id(path),
            "name": path.rsplit("/", 1)[1],
            "properties": {"tags": {}, "properties": {}, "isArchived": False, **properties},
        }

    def publish(self, version: str, *, sample_rows: int = 2) -> None:
        """A model version already in the registry, as `train` leaves it."""
        folder = f"models/acme-risk-model/{version}/model"
        self.fake.blobs[f"{STORAGE_ACCOUNT}/registry/{folder}/metadata.json"] = (b"{}", {})
        request = {"instances": [{"tenure": 1, "area": "north"}] * sample_rows}
        self.fake.blobs[f"{STORAGE_ACCOUNT}/registry/{folder}/sample_request.json"] = (
            json.dumps(request).encode(),
            {},
        )
        self._asset(
            f"{REGISTRY}/models/acme-risk-model/versions/{version}",
            {
                "modelUri": f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/registry/{folder}",
                "modelType": "custom_model",
                "flavors": {},
                "tags": {
                    MODEL_SHA256_TAG: SHA,
                    REFERENCE_TAG: f"acme-risk-prediction-reference:{version}",
                },
            },
        )

    def registry_model(self, version: str) -> dict[str, Any]:
        return self.fake.resources[
            self.fake._key(f"{REGISTRY}/models/acme-risk-model/versions/{version}")
        ]

    def schedules(self) -> dict[str, dict[str, Any]]:
        """The workspace's schedules as the service stores them (the REST bodies sent)."""
        prefix = self.fake._key(f"{WORKSPACE}/schedules/")
        return {v["name"]: v for k, v in self.fake.resources.items() if k.startswith(prefix)}

    def endpoint(self) -> dict[str, Any]:
        return self.fake.resources[self.fake._key(f"{WORKSPACE}/onlineEndpoints/acme-dev")]

    def deployment(self, colour: str) -> dict[str, Any]:
        return self.fake.resources[
            self.fake._key(f"{WORKSPACE}/onlineEndpoints/acme-dev/deployments/{colour}")
        ]


def _watched(schedule: dict[str, Any]) -> str:
    """What a schedule watches: the monitor's deployment, or the collected traffic its job reads."""
    action = schedule["properties"]["action"]
    if action["actionType"] == "CreateMonitor":
        return str(action["monitorDefinition"]["monitoringTarget"]["deploymentId"]).rsplit("/", 1)[
            1
        ]
    (step,) = action["jobDefinition"]["jobs"].values()
    return str(step["inputs"]["model_inputs"]["uri"]).rstrip("/").split("/")[-2]


@pytest.fixture
def run(environments_dir: Path, settings_file: Path) -> Callable[..., int]:
    """``python -m mlops_azure`` with the fixture environments and settings."""

    def call(*argv: str) -> int:
        command, *rest = argv
        arguments = [command, "--environments", str(environments_dir)]
        if "--settings" not in rest:
            arguments += ["--settings", str(settings_file)]
        return cli.main([*arguments, *rest])

    return call


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cloud]:
    """The dev workspace and the registry in the fake service, and the CLI's clients on it."""
    monkeypatch.setenv("MLOPS_AZURE_DEV_SUBSCRIPTION_ID", DEV_SUBSCRIPTION)
    monkeypatch.delenv("TF_BUILD", raising=False)
    # What lets the SDK schedule command and Spark jobs; the pipeline's agents do not set it.
    monkeypatch.delenv("AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED", raising=False)
    fake = FakeAzure()
    seed_workspace(fake, DEV_SUBSCRIPTION, RESOURCE_GROUP, "mlw-mlops-dev")
    seed_registry(fake, DEV_SUBSCRIPTION, RESOURCE_GROUP, "acme-registry")
    fake.blobs[f"{BLOBSTORE}/acme/raw/part-0.parquet"] = (b"x" * 10, {})
    install_default_transport(monkeypatch, fake)
    monkeypatch.setattr(cli.Clients, "client_options", {"transport": fake})
    monkeypatch.setattr(cli, "make_credential", Credential)
    # Azure Monitor's metrics of the phases: test_azure_rollout.py drives those.
    monkeypatch.setattr(cli.Clients, "metrics", lambda self: Healthy())
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    yield Cloud(fake)


def test_apply_without_real_coordinates_calls_nothing(
    run: Callable[..., int],
    cloud: Cloud,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("MLOPS_AZURE_DEV_SUBSCRIPTION_ID")
    assert run("apply", "--env", "dev") == cli.EXIT_CONFIG
    assert "placeholder subscription" in capsys.readouterr().err
    assert cloud.fake.requests == []


def test_apply_creates_a_missing_workspace_and_registry_first(
    run: Callable[..., int], cloud: Cloud
) -> None:
    cloud.fake.resources.clear()
    assert run("apply", "--env", "dev") == 0
    puts = [r.path for r in cloud.fake.requests if r.method == "PUT" and "blob.core" not in r.url]
    assert "/providers/Microsoft.Resources/deployments/" in puts[0]  # the workspace's template
    assert puts[1].endswith("/registries/acme-registry")
    # Then the managed network's rules (its provisioning is a POST), then the cluster.
    rules = [p for p in puts if "/outboundRules/" in p]
    assert puts[2 : 2 + len(rules)] == rules and rules
    assert puts[2 + len(rules)].endswith("/computes/cpu-cluster")


def test_apply_leaves_an_existing_workspace_alone(run: Callable[..., int], cloud: Cloud) -> None:
    assert run("apply", "--env", "dev") == 0
    assert cloud.fake.sent("PUT", r"/workspaces/mlw-mlops-dev$") == []
    assert cloud.fake.sent("PUT", r"Microsoft.Resources/deployments") == []
    components = cloud.fake.sent("PUT", r"/components/acme_risk_[a-z]+/versions/")
    assert len(components) == 5
    assert cloud.endpoint()["properties"]["traffic"] == {}


def test_a_rollout_schedules_every_monitor_in_a_form_the_sdk_submits_without_preview_flags(
    run: Callable[..., int], cloud: Cloud
) -> None:
    # Finding 1: azure-ai-ml 1.35 refuses to schedule a CommandJob or SparkJob unless
    # AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED is set (the fixture makes sure it is not): the
    # performance and Spark drift jobs reach the service as one-step pipeline jobs.
    cloud.publish("5")
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    schedules = cloud.schedules()
    assert set(schedules) == {
        "acme-risk-dev-monitor",
        "acme-risk-dev-performance",
        "acme-risk-dev-spark-drift",
    }
    for name in ("acme-risk-dev-performance", "acme-risk-dev-spark-drift"):
        job = schedules[name]["properties"]["action"]["jobDefinition"]
        assert job["jobType"] == "Pipeline"
        assert job["inputs"]["trigger_time"]["value"] == "${{creation_context.trigger_time}}"
    assert {name: _watched(s) for name, s in schedules.items()} == dict.fromkeys(schedules, "blue")


def test_each_azure_monitor_run_reads_the_hour_since_the_last_not_seven_days(
    run: Callable[..., int], cloud: Cloud
) -> None:
    # Finding 4: with a cron trigger the SDK's default production window is P7D.
    cloud.publish("5")
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    monitor = cloud.schedules()["acme-risk-dev-monitor"]["properties"]
    assert monitor["trigger"] == {
        "triggerType": "Cron",
        "expression": "0 * * * *",
        "timeZone": "UTC",
    }
    for signal in monitor["action"]["monitorDefinition"]["signals"].values():
        assert (
            signal["productionData"]["windowSize"],
            signal["productionData"]["windowOffset"],
        ) == (
            "PT1H",
            "P0D",
        )


def test_reapplying_keeps_live_traffic_and_points_the_monitors_at_it(
    run: Callable[..., int], cloud: Cloud
) -> None:
    cloud.publish("7")
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:7") == 0
    before = len(cloud.fake.requests)
    assert run("apply", "--env", "dev") == 0
    assert cloud.endpoint()["properties"]["traffic"] == {"blue": 100}
    again = [
        r.path.rsplit("/", 1)[1]
        for r in cloud.fake.requests[before:]
        if r.method == "PUT" and "/schedules/" in r.path
    ]
    assert sorted(again) == sorted(cloud.schedules())
    assert {_watched(s) for s in cloud.schedules().values()} == {"blue"}


def test_the_streaming_engine_turns_the_spark_drift_job_off(
    run: Callable[..., int], cloud: Cloud, settings_file: Path, tmp_path: Path
) -> None:
    cloud.publish("5")
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    document = yaml.safe_load(settings_file.read_text())
    document["monitoring"]["engine"] = "streaming"
    streaming = tmp_path / "mlops.yaml"
    streaming.write_text(yaml.safe_dump(document))
    assert run("apply", "--env", "dev", "--settings", str(streaming)) == 0
    schedules = cloud.schedules()
    assert schedules["acme-risk-dev-spark-drift"]["properties"]["isEnabled"] is False
    assert schedules["acme-risk-dev-monitor"]["properties"]["isEnabled"] is True


def test_a_schedule_change_from_weekdays_to_hourly_turns_the_second_monitor_off(
    run: Callable[..., int], cloud: Cloud, settings_file: Path, tmp_path: Path
) -> None:
    cloud.publish("5")
    document = yaml.safe_load(settings_file.read_text())
    document["monitoring"]["schedule"] = "cron(0 6 ? * MON-FRI *)"
    weekdays = tmp_path / "weekdays.yaml"
    weekdays.write_text(yaml.safe_dump(document))
    assert run("apply", "--env", "dev", "--settings", str(weekdays)) == 0
    assert (
        run("rollout", "--env", "dev", "--model", "acme-risk-model:5", "--settings", str(weekdays))
        == 0
    )
    monitors = {n: s["properties"] for n, s in cloud.schedules().items() if "monitor" in n}
    windows = {
        n: (
            p["trigger"]["expression"],
            p["action"]["monitorDefinition"]["signals"]["data_drift"]["productionData"][
                "windowSize"
            ],
        )
        for n, p in monitors.items()
    }
    assert windows == {
        "acme-risk-dev-monitor": ("0 6 * * 1", "P3D"),
        "acme-risk-dev-monitor-2": ("0 6 * * 2,3,4,5", "P1D"),
    }
    assert run("apply", "--env", "dev") == 0  # the fixture's hourly schedule
    schedules = cloud.schedules()
    assert schedules["acme-risk-dev-monitor-2"]["properties"]["isEnabled"] is False
    assert schedules["acme-risk-dev-monitor"]["properties"]["trigger"]["expression"] == "0 * * * *"


def test_a_monitor_the_sdk_refuses_fails_the_rollout_before_traffic_moves(
    run: Callable[..., int],
    cloud: Cloud,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The first real run's failure: the SDK refused the scheduled command job after traffic
    # had moved. Refused now (by the SDK's own conversion) before anything changes.
    from azure.ai.ml.entities import JobSchedule
    from mlops_azure import monitor_plan

    build = monitor_plan.build_performance_schedule

    def as_before(*args: Any, **kwargs: Any) -> list[JobSchedule]:
        schedules = build(*args, **kwargs)
        for schedule in schedules:
            schedule.create_job = schedule.create_job.jobs["performance"]  # a bare command job
        return schedules

    cloud.publish("5")
    assert run("apply", "--env", "dev") == 0
    before = len(cloud.fake.requests)
    monkeypatch.setattr(monitor_plan, "build_performance_schedule", as_before)
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == cli.EXIT_CONFIG
    assert "acme-risk-dev-performance" in capsys.readouterr().err
    changed = [
        r
        for r in cloud.fake.requests[before:]
        if r.method in ("PUT", "DELETE") and "blob.core" not in r.url
    ]
    assert changed == []
    assert cloud.endpoint()["properties"]["traffic"] == {}


def test_monitors_that_cannot_follow_a_new_deployment_roll_it_back(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    cloud.publish("5")
    cloud.publish("6")
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    # The service refuses the monitor's update once, after traffic moved to green (a 4xx:
    # azure-core's retry policy would retry a 503 itself).
    cloud.fake.fail_next.append(("PUT", r"/schedules/acme-risk-dev-monitor$", 409, "Conflict"))
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:6") == cli.EXIT_FAILED
    assert "rolled back: all traffic on 'blue'" in " ".join(capsys.readouterr().err.split())
    assert cloud.endpoint()["properties"]["traffic"] == {"blue": 100}
    assert {_watched(s) for s in cloud.schedules().values()} == {"blue"}


def test_train_versions_the_data_by_its_files_and_publishes_to_the_registry(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("train", "--env", "dev", "--git-commit", "abc123") == 0
    (data,) = cloud.fake.sent("PUT", r"/data/acme-risk-training-data/versions/snapshot-")
    snapshot = data.path.rsplit("/", 1)[1]
    (job,) = cloud.submitted
    properties = job["properties"]
    version = properties["outputs"]["registered_model"]["assetVersion"]
    assert properties["outputs"]["registered_reference"]["assetVersion"] == version
    assert properties["inputs"]["raw_data"]["uri"].endswith(
        f"/data/acme-risk-training-data/versions/{snapshot}"
    )
    # Lineage lands on the model before it is shared, so the registry copy carries it.
    tags = cloud.registry_model(version)["properties"]["tags"]
    assert tags[MODEL_SHA256_TAG] == cloud.trained_sha256
    assert tags[REFERENCE_TAG] == f"acme-risk-prediction-reference:{version}"
    assert tags["git_commit"] == "abc123"
    assert tags["metric_auc"] == "0.91"
    assert tags["azureml_job"] == job["name"]
    assert cloud.fake.sent("POST", r"/registries/acme-registry/import$")
    assert (
        cloud.fake._key(f"{REGISTRY}/data/acme-risk-prediction-reference/versions/{version}")
        in cloud.fake.resources
    )
    assert capsys.readouterr().out.strip() == f"acme-risk-model:{version}"


def test_new_files_give_a_new_data_version(run: Callable[..., int], cloud: Cloud) -> None:
    assert run("train", "--env", "dev") == 0
    cloud.fake.blobs[f"{BLOBSTORE}/acme/raw/part-1.parquet"] = (b"y" * 12, {})
    assert run("train", "--env", "dev") == 0
    first, second = (job["properties"]["inputs"]["raw_data"]["uri"] for job in cloud.submitted)
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
    cloud.training_outcome = "Failed"
    assert run("train", "--env", "dev") == cli.EXIT_FAILED
    assert "no model was registered" in " ".join(capsys.readouterr().err.split())
    assert cloud.fake.sent("POST", r"/registries/acme-registry/import$") == []


def test_rollout_deploys_exactly_the_registry_version_given(
    run: Callable[..., int], cloud: Cloud
) -> None:
    for version in ("5", "6"):
        cloud.publish(version)
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    deployment = cloud.deployment("blue")["properties"]
    assert (
        deployment["model"]
        == "azureml://registries/acme-registry/models/acme-risk-model/versions/5"
    )
    assert deployment["environmentVariables"] == {"MLCORE_MODEL_SHA256": SHA}
    assert _watched(cloud.schedules()["acme-risk-dev-monitor"]) == "blue"


def test_rollout_of_an_unpublished_version_is_refused(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("apply", "--env", "dev") == 0
    before = len(cloud.fake.requests)
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:9") == cli.EXIT_CONFIG
    assert "has no model acme-risk-model:9" in capsys.readouterr().err
    assert not [r for r in cloud.fake.requests[before:] if "/onlineEndpoints/" in r.path]


def test_rollback_command_points_the_monitors_at_the_restored_deployment(
    run: Callable[..., int], cloud: Cloud
) -> None:
    for version in ("5", "6"):
        cloud.publish(version)
    assert run("apply", "--env", "dev") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:5") == 0
    assert run("rollout", "--env", "dev", "--model", "acme-risk-model:6") == 0
    assert {_watched(s) for s in cloud.schedules().values()} == {"green"}
    assert run("rollback", "--env", "dev") == 0
    assert cloud.endpoint()["properties"]["traffic"] == {"blue": 100}
    assert {_watched(s) for s in cloud.schedules().values()} == {"blue"}


RETRAIN_FUNCTION = (
    f"/subscriptions/{DEV_SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/"
    "Microsoft.Web/sites/acme-risk-dev-retrain/functions/retrain"
)


def test_apply_subscribes_no_retrain_function_that_is_not_deployed(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    # Finding 3: the subscription to a function nothing deployed failed every apply.
    assert run("apply", "--env", "dev") == 0
    assert cloud.fake.sent("PUT", r"/eventSubscriptions/") == []
    assert "Retrain subscription not created" in " ".join(capsys.readouterr().err.split())


def test_apply_subscribes_the_deployed_retrain_function_to_breached_signals(
    run: Callable[..., int], cloud: Cloud
) -> None:
    cloud.fake.resources[cloud.fake._key(RETRAIN_FUNCTION)] = {
        "id": RETRAIN_FUNCTION,
        "name": "acme-risk-dev-retrain/retrain",
        "type": "Microsoft.Web/sites/functions",
        "properties": {"language": "python", "isDisabled": False},
    }
    assert run("apply", "--env", "dev") == 0
    (subscription,) = cloud.fake.sent(
        "PUT", r"/systemTopics/mlw-mlops-dev-events/eventSubscriptions/retrain-on-breach$"
    )
    destination = subscription.body["properties"]["destination"]
    assert destination["properties"]["resourceId"] == RETRAIN_FUNCTION
    filters = subscription.body["properties"]["filter"]["advancedFilters"]
    assert {f["key"] for f in filters} == {
        "data.runTags.azureml_modelmonitor_threshold_breached",
        "data.runStatus",
    }


def _batch(cloud: Cloud, path: str) -> dict[str, Any]:
    return cloud.fake.resources[cloud.fake._key(f"{WORKSPACE}/batchEndpoints/acme-batch-dev{path}")]


def test_batch_deploy_serves_the_registry_version_and_points_the_schedule_at_it(
    run: Callable[..., int], cloud: Cloud
) -> None:
    for version in ("5", "6"):
        cloud.publish(version)
    assert run("apply", "--env", "dev") == 0
    assert run("batch-deploy", "--env", "dev", "--model", "acme-risk-model:5") == 0
    assert _batch(cloud, "")["properties"]["defaults"]["deploymentName"] == "v5"
    deployment = _batch(cloud, "/deployments/v5")["properties"]
    reference = "azureml://registries/acme-registry/models/acme-risk-model/versions/5"
    assert deployment["model"]["assetId"] == reference
    assert deployment["codeConfiguration"]["scoringScript"] == "batch_score.py"
    assert deployment["outputAction"] == "SummaryOnly" and deployment["errorThreshold"] == 0
    # The hash the registry recorded, checked before the model is loaded, as online.
    assert deployment["environmentVariables"]["MLCORE_MODEL_SHA256"] == SHA
    assert deployment["environmentVariables"]["MLCORE_BATCH_ID_COLUMNS"] == "account_ref"
    (step,) = cloud.schedules()["acme-risk-dev-batch"]["properties"]["action"]["jobDefinition"][
        "jobs"
    ].values()
    assert step["inputs"]["model"]["uri"] == reference
    assert step["outputs"]["runs"]["mode"] == "ReadWriteMount"
    assert step["identity"]["identity_type"] == "Managed"

    # Promotion of the next version: a new deployment, the default moved once it exists.
    before = len(cloud.fake.requests)
    assert run("batch-deploy", "--env", "dev", "--model", "acme-risk-model:6") == 0
    puts = [
        r.path.rsplit("/batchEndpoints/", 1)[1]
        for r in cloud.fake.requests[before:]
        if r.method == "PUT" and "/batchEndpoints/" in r.path
    ]
    assert puts.index("acme-batch-dev/deployments/v6") < len(puts) - 1
    assert puts[-1] == "acme-batch-dev"
    assert _batch(cloud, "")["properties"]["defaults"]["deploymentName"] == "v6"
    assert _batch(cloud, "/deployments/v5")  # the previous version stays, to go back to
    (step,) = cloud.schedules()["acme-risk-dev-batch"]["properties"]["action"]["jobDefinition"][
        "jobs"
    ].values()
    assert step["inputs"]["model"]["uri"].endswith("/acme-risk-model/versions/6")


def test_batch_deploy_of_a_stage_without_a_batch_section_calls_nothing(
    run: Callable[..., int], cloud: Cloud, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(cloud.fake.requests)
    assert run("batch-deploy", "--env", "prod", "--model", "acme-risk-model:5") == cli.EXIT_CONFIG
    assert "has no batch section" in capsys.readouterr().err
    assert len(cloud.fake.requests) == before
    # The deploy job runs it in every stage: there, a stage without batch is left alone.
    assert (
        run("batch-deploy", "--env", "prod", "--model", "acme-risk-model:5", "--if-configured") == 0
    )
    assert len(cloud.fake.requests) == before
