"""The closed loop's handler: a breached signal starts one pipeline run per cooldown."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.request import Request

import pytest
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING
from mlops_azure.retrain_handler import (
    RUN_STATUS_CHANGED,
    AzureDevOpsRuns,
    function_settings,
    handle_event,
)

from mlcore.errors import ConfigError

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def _event(tags: dict[str, str], event_type: str = RUN_STATUS_CHANGED) -> dict[str, Any]:
    # The RunStatusChanged payload (Learn: "Azure Machine Learning as an Event Grid source").
    return {
        "eventType": event_type,
        "subject": "experiments/0fa9dfaa/runs/monitor_run_1",
        "data": {"RunStatus": "Completed", "RunTags": tags},
    }


BREACHED = _event({BREACH_TAG: f"The signal 'data_drift' {BREACH_WORDING}.\n[...]"})


class Runs:
    def __init__(self, *created: datetime) -> None:
        self.created = list(created)
        self.started: list[str] = []

    def created_times(self) -> list[datetime]:
        return self.created

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


def test_azure_devops_runs_are_read_and_started_through_the_rest_api() -> None:
    sent: list[Request] = []

    def opener(request: Request) -> Any:
        sent.append(request)
        body = (
            {"value": [{"createdDate": "2025-06-01T09:00:00.1234567Z"}]}
            if request.get_method() == "GET"
            else {"id": 77}
        )
        return _Response(json.dumps(body).encode())

    runs = AzureDevOpsRuns(
        organization_url="https://dev.azure.com/acme/",
        project="mlops",
        pipeline_id=12,
        token=lambda: "entra-token",
        opener=opener,
    )
    assert runs.created_times()[0].hour == 9
    assert runs.start("drift") == "77"
    get, post = sent
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
