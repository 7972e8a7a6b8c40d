"""Blue/green rollout, automatic rollback and the rollback command, against patched operations.

The MLClient is real (with a mocked credential); its operation classes are patched
to act on the in-memory workspace of conftest's ``workspace`` fixture.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import Mock

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineDeployment
from azure.ai.ml.operations import OnlineDeploymentOperations, OnlineEndpointOperations
from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from mlops_azure.config import REPO_ROOT, AzureEnvironment, RolloutConfig
from mlops_azure.definitions import SCORING_SCRIPT, Definitions
from mlops_azure.endpoint import LIVE_MODEL_TAG, MODEL_TAG, PREVIOUS_MODEL_TAG, build_deployment
from mlops_azure.rollout import (
    EndpointHealthCheck,
    EndpointRollout,
    HealthCheckFailed,
    RolloutError,
)
from rich.console import Console

from mlcore.settings import MlopsSettings

REQUEST_FILE = REPO_ROOT / "azure" / "requests" / "churn-sample.json"
PLAN = RolloutConfig(mirror_percent=20, canary_percent=10, bake_seconds=3, health_check_requests=2)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def rollout(ml_client: MLClient, sleeps: list[float]) -> EndpointRollout:
    return EndpointRollout(
        ml_client,
        endpoint_name="churn-dev",
        plan=PLAN,
        health_check=EndpointHealthCheck(
            ml_client, "churn-dev", REQUEST_FILE, PLAN.health_check_requests
        ),
        console=Console(file=io.StringIO()),
        sleep=sleeps.append,
    )


@pytest.fixture
def build(
    dev_env: AzureEnvironment, settings: MlopsSettings, definitions: Definitions
) -> Callable[[str], Callable[[str], ManagedOnlineDeployment]]:
    code = Path(definitions.deployment.code_configuration.code)

    def for_model(model: str) -> Callable[[str], ManagedOnlineDeployment]:
        return lambda colour: build_deployment(
            dev_env,
            settings,
            name=colour,
            model=model,
            environment=definitions.environment,
            code_dir=code,
            scoring_script=SCORING_SCRIPT,
        )

    return for_model


def test_first_rollout_goes_straight_to_full_traffic(
    workspace: Any, rollout: EndpointRollout, build, sleeps
) -> None:  # type: ignore[no-untyped-def]
    result = rollout.rollout(build("azureml:churn-model:1"))
    assert (result.live, result.removed, result.model) == ("blue", None, "churn-model:1")
    assert workspace.events == [
        ("create", "blue", "churn-model:1"),
        ("invoke", "blue"),
        ("invoke", "blue"),
        ("traffic", {"blue": 100}, {}),
        ("invoke", "blue"),
        ("invoke", "blue"),
        ("traffic", {"blue": 100}, {}),
    ]
    assert workspace.endpoint.tags[LIVE_MODEL_TAG] == "churn-model:1"
    assert PREVIOUS_MODEL_TAG not in workspace.endpoint.tags
    assert sleeps == [1, 1, 1]


def test_second_rollout_mirrors_then_canaries_then_switches_and_removes_the_old(
    workspace: Any,
    rollout: EndpointRollout,
    build,
    sleeps,  # type: ignore[no-untyped-def]
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    result = rollout.rollout(build("azureml:churn-model:2"))
    assert (result.live, result.removed) == ("green", "blue")
    assert workspace.without_invokes() == [
        ("create", "green", "churn-model:2"),
        ("traffic", {"blue": 100}, {"green": 20}),
        ("traffic", {"blue": 90, "green": 10}, {}),
        ("traffic", {"green": 100}, {}),
        ("traffic", {"green": 100}, {}),
        ("delete", "blue"),
    ]
    # Health checks at 0%, after mirroring, at the canary and at full traffic, all on green.
    invokes = [e[1] for e in workspace.events if e[0] == "invoke"]
    assert invokes == ["green"] * 2 * 4
    assert set(workspace.deployments) == {"green"}
    assert workspace.endpoint.tags[LIVE_MODEL_TAG] == "churn-model:2"
    assert workspace.endpoint.tags[PREVIOUS_MODEL_TAG] == "churn-model:1"
    assert sleeps == [1] * 9  # three bakes of three seconds


def test_failed_health_check_at_the_canary_rolls_back(
    workspace: Any, rollout: EndpointRollout, build
) -> None:  # type: ignore[no-untyped-def]
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    workspace.fails = lambda deployment, traffic: (
        deployment == "green" and traffic.get("green", 0) > 0
    )
    with pytest.raises(RolloutError, match=r"rolled back.*all traffic on blue.*502"):
        rollout.rollout(build("azureml:churn-model:2"))
    assert workspace.without_invokes() == [
        ("create", "green", "churn-model:2"),
        ("traffic", {"blue": 100}, {"green": 20}),
        ("traffic", {"blue": 90, "green": 10}, {}),
        ("traffic", {"blue": 100}, {}),
        ("delete", "green"),
    ]
    assert workspace.endpoint.tags[LIVE_MODEL_TAG] == "churn-model:1"
    assert set(workspace.deployments) == {"blue"}


def test_new_deployment_that_answers_wrongly_never_gets_traffic(
    workspace: Any,
    rollout: EndpointRollout,
    build,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    monkeypatch.setattr(
        OnlineEndpointOperations, "invoke", lambda ops, **kw: json.dumps({"predictions": []})
    )
    with pytest.raises(RolloutError, match="answered 0 predictions for 3 records"):
        rollout.rollout(build("azureml:churn-model:2"))
    assert workspace.without_invokes() == [
        ("create", "green", "churn-model:2"),
        ("traffic", {"blue": 100}, {}),
        ("delete", "green"),
    ]


def test_failed_first_rollout_leaves_no_deployment(
    workspace: Any, rollout: EndpointRollout, build
) -> None:  # type: ignore[no-untyped-def]
    workspace.fails = lambda deployment, traffic: True
    with pytest.raises(RolloutError, match="no deployment serves traffic"):
        rollout.rollout(build("azureml:churn-model:1"))
    assert workspace.deployments == {}
    assert workspace.without_invokes()[-1] == ("delete", "blue")


def test_rollout_refuses_an_endpoint_that_is_mid_rollout(
    workspace: Any, rollout: EndpointRollout, build
) -> None:  # type: ignore[no-untyped-def]
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    workspace.seed(
        "green",
        "churn-model:2",
        traffic={"blue": 90, "green": 10},
        tags={LIVE_MODEL_TAG: "churn-model:1"},
    )
    with pytest.raises(RolloutError, match=r"mid-rollout.*rollback"):
        rollout.rollout(build("azureml:churn-model:3"))
    assert workspace.events == []


def test_rollback_mid_rollout_returns_traffic_to_the_live_model(
    workspace: Any, rollout: EndpointRollout
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    workspace.seed(
        "green",
        "churn-model:2",
        traffic={"blue": 90, "green": 10},
        tags={LIVE_MODEL_TAG: "churn-model:1"},
    )
    redeployed: list[str] = []
    assert rollout.rollback(redeployed.append) == "blue"  # type: ignore[arg-type]
    assert workspace.events == [("traffic", {"blue": 100}, {}), ("delete", "green")]
    assert redeployed == []


def test_rollback_after_completion_redeploys_the_previous_model(
    workspace: Any,
    rollout: EndpointRollout,
    build,  # type: ignore[no-untyped-def]
) -> None:
    workspace.seed(
        "green",
        "churn-model:2",
        traffic={"green": 100},
        tags={LIVE_MODEL_TAG: "churn-model:2", PREVIOUS_MODEL_TAG: "churn-model:1"},
    )
    live = rollout.rollback(lambda model: rollout.rollout(build(model)))
    assert live == "blue"
    assert workspace.deployments["blue"].tags[MODEL_TAG] == "churn-model:1"
    assert set(workspace.deployments) == {"blue"}
    assert workspace.endpoint.tags[LIVE_MODEL_TAG] == "churn-model:1"


def test_rollback_with_nothing_to_return_to_says_so(
    workspace: Any, rollout: EndpointRollout
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    with pytest.raises(RolloutError, match="nothing to roll back to"):
        rollout.rollback(lambda model: pytest.fail("must not redeploy"))


def test_health_check_request_file_errors_are_explicit(ml_client: MLClient, tmp_path: Path) -> None:
    bad = tmp_path / "request.json"
    bad.write_text('{"instances": []}')
    with pytest.raises(HealthCheckFailed, match="at least one record"):
        EndpointHealthCheck(ml_client, "churn-dev", bad)("blue")
    with pytest.raises(HealthCheckFailed, match="does not exist"):
        EndpointHealthCheck(ml_client, "churn-dev", tmp_path / "missing.json")("blue")


def test_failed_deployment_creation_leaves_traffic_untouched(
    workspace: Any,
    rollout: EndpointRollout,
    build: Callable[[str], Callable[[str], ManagedOnlineDeployment]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workspace.seed(
        "blue", "churn-model:1", traffic={"blue": 100}, tags={LIVE_MODEL_TAG: "churn-model:1"}
    )
    poller = Mock(spec_set=LROPoller)
    poller.done.return_value = True
    poller.result.side_effect = HttpResponseError(message="image build failed")
    monkeypatch.setattr(OnlineDeploymentOperations, "begin_create_or_update", lambda ops, d: poller)
    with pytest.raises(
        RolloutError, match=r"could not be created; traffic was not changed \(all on blue\)"
    ):
        rollout.rollout(build("azureml:churn-model:2"))
    assert workspace.events == []
    assert workspace.endpoint.traffic == {"blue": 100}
