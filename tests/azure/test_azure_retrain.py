"""The closed loop's handler: a breached signal starts one pipeline run per cooldown."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.request import Request

import pytest
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.retrain_handler import (
    RUN_STATUS_CHANGED,
    AzureDevOpsRuns,
    breach_of,
    function_settings,
    handle_event,
)

from mlcore.errors import ConfigError

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _event(tags: dict[str, str], event_type: str = RUN_STATUS_CHANGED) -> dict[str, Any]:
    # The RunStatusChanged payload as Azure sends it: camelCase data keys (Event Grid system
    # events schema, MachineLearningServicesRunStatusChangedEventData).
    return {
        "eventType": event_type,
        "subject": "experiments/0fa9dfaa/runs/monitor_run_1",
        "data": {
            "experimentId": "0fa9dfaa",
            "experimentName": "monitor",
            "runId": "monitor_run_1",
            "runType": "azureml.StepRun",
            "runStatus": "Completed",
            "runTags": tags,
            "runProperties": {},
        },
    }


BREACHED = _event({BREACH_TAG: f"The signal 'data_drift' {BREACH_WORDING}.\n[...]"})


class Runs:
    def __init__(self, *created: datetime) -> None:
        self.created = list(created)
        self.started: list[str] = []

    def retrain_times(self, since: datetime) -> list[datetime]:
        return [t for t in self.created if t > since]

    def start(self, reason: str) -> str:
        self.started.append(reason)
        return "42"


def test_a_breached_signal_starts_retraining() -> None:
    runs = Runs(NOW - timedelta(hours=30))
    decision = handle_event(BREACHED, runs=runs, cooldown_hours=24, now=NOW)
    assert (decision.started, decision.run) == (True, "42")
    assert "data_drift" in runs.started[0]


def test_a_run_within_the_cooldown_suppresses_retraining() -> None:
    runs = Runs(NOW - timedelta(hours=3))
    decision = handle_event(BREACHED, runs=runs, cooldown_hours=24, now=NOW)
    assert decision.started is False and "cooldown" in decision.reason
    assert runs.started == []


@pytest.mark.parametrize(
    "event",
    [
        _event({}),  # a monitor run that passed
        _event({BREACH_TAG: "something else"}),
        _event(
            {BREACH_TAG: BREACH_WORDING},
            event_type="Microsoft.MachineLearningServices.ModelRegistered",
        ),
    ],
)
def test_other_events_start_nothing(event: dict[str, Any]) -> None:
    runs = Runs()
    assert handle_event(event, runs=runs, cooldown_hours=0, now=NOW).started is False
    assert runs.started == []


# Runs - List and Runs - Get (Azure DevOps REST 7.1): a pull request's build an hour ago, a
# retraining run that failed, and one that retrained 3 hours ago.
RUNS = {
    "value": [
        {
            "id": 90,
            "createdDate": "2025-06-01T11:00:00.1234567Z",
            "state": "completed",
            "result": "succeeded",
        },
        {
            "id": 89,
            "createdDate": "2025-06-01T10:00:00.1234567Z",
            "state": "completed",
            "result": "failed",
        },
        {
            "id": 88,
            "createdDate": "2025-06-01T09:00:00.1234567Z",
            "state": "completed",
            "result": "succeeded",
        },
    ]
}
RUN_DETAILS = {
    90: {"id": 90, "templateParameters": {"retrainReason": ""}},
    89: {"id": 89, "templateParameters": {"retrainReason": "drift"}},
    88: {"id": 88, "templateParameters": {"retrainReason": "drift"}},
}


def _devops(sent: list[Request], runs: dict[str, Any] = RUNS) -> AzureDevOpsRuns:
    def opener(request: Request) -> Any:
        sent.append(request)
        if request.get_method() == "POST":
            return _Response(json.dumps({"id": 77}).encode())
        path = request.full_url.split("?")[0]
        if path.endswith("/runs"):
            return _Response(json.dumps(runs).encode())
        return _Response(json.dumps(RUN_DETAILS[int(path.rsplit("/", 1)[1])]).encode())

    return AzureDevOpsRuns(
        organization_url="https://dev.azure.com/acme/",
        project="mlops",
        pipeline_id=12,
        token=lambda: "entra-token",
        opener=opener,
    )


def test_a_pull_request_build_does_not_hold_back_a_retrain() -> None:
    # Finding 3: the cooldown counted every run; the PR build an hour earlier blocked this.
    sent: list[Request] = []
    decision = handle_event(BREACHED, runs=_devops(sent), cooldown_hours=2, now=NOW)
    assert (decision.started, decision.run) == (True, "77")


def test_a_retraining_run_within_the_cooldown_holds_back_the_next() -> None:
    sent: list[Request] = []
    decision = handle_event(BREACHED, runs=_devops(sent), cooldown_hours=4, now=NOW)
    assert decision.started is False and "09:00" in decision.reason
    assert [r.get_method() for r in sent] == ["GET", "GET", "GET"]  # the failed run is not read


def test_azure_devops_runs_are_read_and_started_through_the_rest_api() -> None:
    sent: list[Request] = []
    runs = _devops(sent)
    assert [t.hour for t in runs.retrain_times(NOW - timedelta(hours=24))] == [9]
    assert runs.start("drift") == "77"
    get, *_, post = sent
    assert (
        get.full_url == "https://dev.azure.com/acme/mlops/_apis/pipelines/12/runs?api-version=7.1"
    )
    assert post.headers["Authorization"] == "Bearer entra-token"
    assert json.loads(post.data)["templateParameters"] == {"retrainReason": "drift"}  # type: ignore[arg-type]


class _Response(io.BytesIO):
    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def test_missing_function_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="MLOPS_ADO_PIPELINE_ID"):
        function_settings({"MLOPS_ADO_ORGANIZATION_URL": "u", "MLOPS_ADO_PROJECT": "p"})


def test_the_subscription_filters_on_the_keys_azure_sends(dev_env: Any, settings: Any) -> None:
    from mlops_azure.retrain import build_retrain_subscription

    subscription = build_retrain_subscription(dev_env, settings)
    keys = {f.key for f in subscription.filter.advanced_filters}
    assert keys == {f"data.runTags.{BREACH_TAG}", "data.runStatus"}
    # ...and the handler reads an event the filter lets through.
    assert breach_of(BREACHED) is not None


def test_the_function_app_loads_on_the_runtimes_python_with_its_pinned_library() -> None:
    # Finding 3: azure-functions 2.3.0 needs Python >= 3.13; the function runs on 3.11.
    import importlib.util
    import sys
    from importlib.metadata import metadata, version

    from packaging.specifiers import SpecifierSet

    folder = Path(__file__).parents[2] / "azure" / "functions" / "retrain"
    pinned = dict(
        line.split("==")
        for line in (folder / "requirements.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert version("azure-functions") == pinned["azure-functions"]
    assert "3.11" in SpecifierSet(metadata("azure-functions")["Requires-Python"])
    assert sys.version_info[:2] == (3, 11)
    spec = importlib.util.spec_from_file_location(
        "retrain_function_app", folder / "function_app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (function,) = module.app.get_functions()
    assert function.get_function_name() == "retrain"
    assert [b.type for b in function.get_bindings()] == ["eventGridTrigger"]
