"""Gated blue/green rollout and rollback, through the SDK down to the fake service's wire.

The MLClient is real and so is everything it does (validation, REST conversion, code
upload, long-running-operation polling); only azure-core's transport is the fake Azure ML
service of fake_arm.py, which enforces the endpoint's traffic rules. Live metrics come from
:class:`FakeMetrics`, which answers for the phase the endpoint is in (mirror, canary, full),
the way Azure Monitor reports the new deployment's share of traffic.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineDeployment
from azure.core.exceptions import HttpResponseError
from fake_arm import FakeAzure
from mlops_azure.config import AzureEnvironment, RolloutConfig
from mlops_azure.definitions import Definitions, deployment_builder, spec_builder
from mlops_azure.metrics import TrafficStats
from mlops_azure.rollout import (
    LIVE_TAG,
    PREVIOUS_TAG,
    RETIRED_TAG,
    ROLLOUT_TAG,
    DeploymentSpec,
    EndpointHealthCheck,
    EndpointRollout,
    HealthCheckFailed,
    Placed,
    RolloutError,
    SyntheticLoad,
)
from rich.console import Console

from mlcore.settings import MlopsSettings

PLAN = RolloutConfig(
    mirror_percent=20,
    canary_percent=10,
    min_requests=50,
    max_wait_seconds=600,
    poll_seconds=60,
    max_5xx_rate=0.01,
    max_p99_latency_ms=300,
    health_check_requests=2,
    grace_period_hours=24,
)
HEALTHY = TrafficStats(requests=500, errors_5xx=0, p99_latency_ms=80)
SHA = "sha256:" + "cd" * 32


class FakeMetrics:
    """Azure Monitor for the new deployment: stats by phase, read from the endpoint's state."""

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace
        self.by_phase: dict[str, TrafficStats] = {}
        self.reads: list[tuple[str, str]] = []

    def phase(self, deployment: str) -> str:
        endpoint = self.workspace.endpoint
        if (endpoint.mirror_traffic or {}).get(deployment):
            return "mirror"
        share = (endpoint.traffic or {}).get(deployment, 0)
        return "full" if share == 100 else "canary" if share else "none"

    def traffic(self, deployment: str, start: datetime, end: datetime) -> TrafficStats:
        phase = self.phase(deployment)
        self.reads.append((deployment, phase))
        return self.by_phase.get(phase, HEALTHY)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def metrics(workspace: Any) -> FakeMetrics:
    return FakeMetrics(workspace)


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    # The shape of the model's sample_request.json (contract 1): held-out rows, features only.
    path = tmp_path / "sample_request.json"
    path.write_text(json.dumps({"instances": [{"tenure": 3, "area": "north"}] * 3}))
    return path


@pytest.fixture
def rollout(
    ml_client: MLClient, metrics: FakeMetrics, clock: Clock, request_file: Path
) -> EndpointRollout:
    return EndpointRollout(
        ml_client,
        endpoint_name="acme-dev",
        plan=PLAN,
        health_check=EndpointHealthCheck(
            ml_client, "acme-dev", request_file, PLAN.health_check_requests
        ),
        metrics=metrics,
        console=Console(file=io.StringIO()),
        sleep=clock.sleep,
        clock=clock,
    )


Serve = Callable[..., tuple[Callable[[str], ManagedOnlineDeployment], DeploymentSpec]]


@pytest.fixture
def serve(
    dev_env: AzureEnvironment,
    settings: MlopsSettings,
    definitions: Definitions,
    tmp_path: Path,
    registry_ref: Callable[[int], str],
) -> Serve:
    """(build, spec) for a registry model version, with the current code (or other code)."""

    def for_model(version: int, *, code_marker: str = "") -> tuple[Any, DeploymentSpec]:
        staged = deployment_builder(
            dev_env,
            settings,
            model=registry_ref(version),
            model_sha256=SHA,
            environment=definitions.serving_environment,
            code_dir=tmp_path / f"code-{version}-{code_marker or 'base'}",
        )
        if code_marker:  # a code-only change: same model and environment, new scoring code
            (tmp_path / f"code-{version}-{code_marker}" / "score.py").write_text(
                f"# {code_marker}\n"
            )
            return deployment_builder_with_code(
                dev_env, settings, staged.spec, code_marker, tmp_path, version
            )
        return staged.build, staged.spec

    return for_model


def deployment_builder_with_code(
    env: AzureEnvironment,
    settings: MlopsSettings,
    spec: DeploymentSpec,
    marker: str,
    tmp: Path,
    version: int,
) -> tuple[Any, DeploymentSpec]:
    changed = replace(spec, code=f"sha256:{marker}")
    return spec_builder(env, settings, changed, code=tmp / f"code-{version}-{marker}"), changed


def _live(workspace: Any) -> Placed | None:
    return Placed.from_tag(workspace.endpoint.tags.get(LIVE_TAG))


def _retired(workspace: Any) -> dict[str, str]:
    value = workspace.endpoint.tags.get(RETIRED_TAG)
    return json.loads(value) if value else {}


def _live_on_blue(workspace: Any, serve: Serve, version: int = 1) -> DeploymentSpec:
    """An endpoint whose last completed rollout put ``version`` on blue."""
    _, spec = serve(version)
    placed = Placed("blue", replace(spec, code_asset="azureml:code-blue:1"))
    workspace.seed("blue", placed.spec, traffic={"blue": 100})
    workspace.tag(**{LIVE_TAG: placed.to_tag()})
    return placed.spec


def test_first_rollout_checks_the_sample_then_full_traffic_metrics(
    workspace: Any, rollout: EndpointRollout, serve: Serve, metrics: FakeMetrics
) -> None:
    build, spec = serve(1)
    result = rollout.rollout(build, spec)
    assert (result.live, result.retired) == ("blue", None)
    assert workspace.without_invokes() == [
        ("traffic", {}, {}),  # the rollout tag is set before anything changes
        ("create", "blue", "acme-risk-model:1"),
        ("traffic", {"blue": 100}, {}),
        ("traffic", {"blue": 100}, {}),
    ]
    assert [e for e in workspace.events if e[0] == "invoke"] == [("invoke", "blue")] * 2
    assert metrics.reads == [("blue", "full")]
    live = _live(workspace)
    assert live is not None and live.colour == "blue" and live.spec.same_as(spec)
    assert live.spec.code_asset is not None  # what a rollback recreates from
    assert workspace.endpoint.tags[ROLLOUT_TAG] == ""


def test_second_rollout_mirrors_canaries_and_keeps_the_old_deployment_at_zero(
    workspace: Any, rollout: EndpointRollout, serve: Serve, metrics: FakeMetrics, clock: Clock
) -> None:
    old = _live_on_blue(workspace, serve, 1)
    build, spec = serve(2)
    result = rollout.rollout(build, spec)
    assert (result.live, result.retired) == ("green", "blue")
    assert [e for e in workspace.without_invokes() if e[0] != "traffic" or e[1] or e[2]] == [
        ("traffic", {"blue": 100}, {}),
        ("create", "green", "acme-risk-model:2"),
        ("traffic", {"blue": 100}, {"green": 20}),
        ("traffic", {"blue": 90, "green": 10}, {}),
        ("traffic", {"green": 100}, {}),
        ("traffic", {"green": 100}, {}),
    ]
    assert [phase for _, phase in metrics.reads] == ["mirror", "canary", "full"]
    assert set(workspace.deployments) == {"blue", "green"}  # blue kept for the grace period
    assert workspace.endpoint.traffic == {"green": 100, "blue": 0}
    assert _retired(workspace) == {"blue": clock.now.isoformat()}
    previous = Placed.from_tag(workspace.endpoint.tags[PREVIOUS_TAG])
    assert previous == Placed("blue", old)


def test_a_canary_with_5xx_answers_is_rolled_back(
    workspace: Any, rollout: EndpointRollout, serve: Serve, metrics: FakeMetrics
) -> None:
    old = _live_on_blue(workspace, serve, 1)
    # The deployment answers the sample, but fails 3% of live canary traffic.
    metrics.by_phase["canary"] = TrafficStats(requests=400, errors_5xx=12, p99_latency_ms=90)
    build, spec = serve(2)
    with pytest.raises(RolloutError, match=r"rolled back \(all traffic on blue\).*5xx rate 3\.00%"):
        rollout.rollout(build, spec)
    assert workspace.endpoint.traffic == {"blue": 100}
    assert set(workspace.deployments) == {"blue"}
    assert _live(workspace) == Placed("blue", old)
    assert workspace.endpoint.tags[ROLLOUT_TAG] == ""


def test_a_mirrored_deployment_that_is_too_slow_never_gets_live_traffic(
    workspace: Any, rollout: EndpointRollout, serve: Serve, metrics: FakeMetrics
) -> None:
    _live_on_blue(workspace, serve, 1)
    metrics.by_phase["mirror"] = TrafficStats(requests=300, errors_5xx=0, p99_latency_ms=900)
    build, spec = serve(2)
    with pytest.raises(RolloutError, match="P99 latency 900 ms > 300 ms"):
        rollout.rollout(build, spec)
    assert all(e[1].get("green", 0) == 0 for e in workspace.events if e[0] == "traffic")


def test_a_phase_without_enough_requests_fails_after_the_wait(
    workspace: Any, rollout: EndpointRollout, serve: Serve, metrics: FakeMetrics, clock: Clock
) -> None:
    _live_on_blue(workspace, serve, 1)
    metrics.by_phase["mirror"] = TrafficStats(requests=5, errors_5xx=0, p99_latency_ms=50)
    start = clock.now
    build, spec = serve(2)
    with pytest.raises(RolloutError, match="served 5 of the 50 requests needed within 600 s"):
        rollout.rollout(build, spec)
    assert clock.now - start >= timedelta(seconds=PLAN.max_wait_seconds)
    assert workspace.endpoint.traffic == {"blue": 100}


def test_a_deployment_failing_the_sample_request_never_gets_traffic(
    workspace: Any, rollout: EndpointRollout, serve: Serve, azure: FakeAzure
) -> None:
    _live_on_blue(workspace, serve, 1)
    azure.scorer.respond = lambda deployment, records: (200, {"predictions": []})
    build, spec = serve(2)
    with pytest.raises(RolloutError, match="answered 0 predictions for 3 records"):
        rollout.rollout(build, spec)
    assert [e for e in workspace.events if e[0] == "traffic" and e[1] != {"blue": 100}] == []
    assert set(workspace.deployments) == {"blue"}


def test_redeploying_the_live_spec_changes_nothing(
    workspace: Any, rollout: EndpointRollout, serve: Serve
) -> None:
    live = _live_on_blue(workspace, serve, 1)
    workspace.tag(**{PREVIOUS_TAG: Placed("green", replace(live, model="older")).to_tag()})
    before = dict(workspace.endpoint.tags)
    build, spec = serve(1)
    result = rollout.rollout(build, spec)
    assert result.changed is False
    assert workspace.events == []
    # previous still names the model before, not the live one (the old self-pointing bug).
    assert workspace.endpoint.tags == before


def test_a_code_only_rollout_goes_through_and_rolls_back(
    workspace: Any, rollout: EndpointRollout, serve: Serve
) -> None:
    old = _live_on_blue(workspace, serve, 1)
    build, spec = serve(1, code_marker="faster-parser")
    assert spec.model == old.model and not spec.same_as(old)
    assert rollout.rollout(build, spec).live == "green"
    assert rollout.rollback(lambda s: pytest.fail("the old deployment is still there")) == "blue"
    assert workspace.endpoint.traffic == {"blue": 100, "green": 0}
    assert _live(workspace) == Placed("blue", old)


def test_an_interrupted_rollout_is_rolled_back(
    workspace: Any, rollout: EndpointRollout, serve: Serve
) -> None:
    old = _live_on_blue(workspace, serve, 1)
    # The token expires at the canary step: that change and every one after it fail,
    # the rollout's own attempt to restore the traffic included.
    expired: list[bool] = []

    def interrupted(event: tuple[Any, ...]) -> bool:
        if event[0] == "traffic" and event[1].get("green") == 10:
            expired.append(True)
        return bool(expired)

    workspace.interrupt_when(interrupted)
    build, spec = serve(2)
    with pytest.raises(HttpResponseError, match="AADSTS700024"):
        rollout.rollout(build, spec)
    assert workspace.endpoint.mirror_traffic == {"green": 20}
    assert json.loads(workspace.endpoint.tags[ROLLOUT_TAG])["to"] == "green"
    # The next rollout refuses to start over an unfinished one.
    with pytest.raises(RolloutError, match="unfinished rollout"):
        rollout.rollout(*serve(3))
    workspace.interrupt_when(lambda event: False)
    assert rollout.rollback(lambda s: pytest.fail("no redeploy needed")) == "blue"
    assert workspace.endpoint.traffic == {"blue": 100}
    assert workspace.endpoint.mirror_traffic == {}
    assert set(workspace.deployments) == {"blue"}
    assert _live(workspace) == Placed("blue", old)
    assert workspace.endpoint.tags[ROLLOUT_TAG] == ""


def test_rollback_after_the_grace_period_recreates_the_previous_spec(
    workspace: Any,
    rollout: EndpointRollout,
    serve: Serve,
    clock: Clock,
    dev_env: AzureEnvironment,
    settings: MlopsSettings,
) -> None:
    old = _live_on_blue(workspace, serve, 1)
    rollout.rollout(*serve(2))
    clock.now += timedelta(hours=PLAN.grace_period_hours + 1)
    assert rollout.cleanup() == ["blue"]
    assert set(workspace.deployments) == {"green"}
    redeployed: list[DeploymentSpec] = []

    def redeploy(spec: DeploymentSpec) -> Any:
        redeployed.append(spec)
        assert spec.code_asset is not None
        return rollout.rollout(spec_builder(dev_env, settings, spec, code=spec.code_asset), spec)

    assert rollout.rollback(redeploy) == "blue"
    assert redeployed == [old]
    created = workspace.deployments["blue"]
    # Model, environment and code of the previous deployment, not the current ones.
    assert created.model == old.model
    # The SDK sends the environment as its ARM id.
    name, version = old.environment.removeprefix("azureml:").split(":")
    assert created.environment.endswith(f"/environments/{name}/versions/{version}")
    assert old.code_asset == "azureml:code-blue:1"
    assert created.code.endswith("/codes/code-blue/versions/1")
    assert Placed.from_tag(workspace.endpoint.tags[LIVE_TAG]).spec.same_as(old)  # type: ignore[union-attr]


def test_cleanup_keeps_deployments_inside_their_grace_period(
    workspace: Any, rollout: EndpointRollout, serve: Serve, clock: Clock
) -> None:
    _live_on_blue(workspace, serve, 1)
    rollout.rollout(*serve(2))
    clock.now += timedelta(hours=PLAN.grace_period_hours - 1)
    assert rollout.cleanup() == []
    assert set(workspace.deployments) == {"blue", "green"}


def test_rollback_with_nothing_to_return_to_says_so(
    workspace: Any, rollout: EndpointRollout, serve: Serve
) -> None:
    _live_on_blue(workspace, serve, 1)
    with pytest.raises(RolloutError, match="nothing to roll back to"):
        rollout.rollback(lambda spec: pytest.fail("must not redeploy"))


def test_health_check_request_errors_are_explicit(ml_client: MLClient, tmp_path: Path) -> None:
    bad = tmp_path / "sample_request.json"
    bad.write_text('{"instances": []}')
    with pytest.raises(HealthCheckFailed, match="with a record"):
        EndpointHealthCheck(ml_client, "acme-dev", bad)("blue")
    with pytest.raises(HealthCheckFailed, match=r"predates sample_request\.json"):
        EndpointHealthCheck(ml_client, "acme-dev", tmp_path / "missing.json")("blue")


def test_failed_deployment_creation_leaves_traffic_untouched(
    workspace: Any, rollout: EndpointRollout, serve: Serve, azure: FakeAzure
) -> None:
    _live_on_blue(workspace, serve, 1)
    # The service accepts the deployment, then its creation fails (the operation's status).
    azure.failing_operations["/deployments/green$"] = "image build failed"
    with pytest.raises(
        RolloutError, match=r"could not be created; traffic was not changed \(all on blue\)"
    ):
        rollout.rollout(*serve(2))
    assert workspace.endpoint.traffic == {"blue": 100}
    assert workspace.endpoint.tags[ROLLOUT_TAG] == ""


# --- a quiet endpoint: held-out rows as synthetic load --------------------------------


class ServedMetrics:
    """Azure Monitor's count of what a deployment served: the fake service's scoring log.

    Nothing but the requests that reached the deployment is counted, so with no client
    traffic a phase sees only the rollout's own synthetic load.
    """

    def __init__(self, azure: FakeAzure) -> None:
        self.azure = azure

    def traffic(self, deployment: str, start: datetime, end: datetime) -> TrafficStats:
        served = [s for t, d, s in self.azure.scored if d == deployment and start <= t <= end]
        errors = sum(1 for status in served if status >= 500)
        return TrafficStats(requests=len(served), errors_5xx=errors, p99_latency_ms=60)


@pytest.fixture
def quiet_rollout(
    ml_client: MLClient, azure: FakeAzure, clock: Clock, request_file: Path
) -> EndpointRollout:
    """The rollout of a dev endpoint no client calls, replaying held-out rows itself."""
    # A small rate keeps the test quick: every synthetic request crosses the wire.
    plan = PLAN.model_copy(
        update={"synthetic_requests_per_minute": 6, "min_requests": 5, "max_wait_seconds": 1800}
    )
    azure.clock = clock
    return EndpointRollout(
        ml_client,
        endpoint_name="acme-dev",
        plan=plan,
        health_check=EndpointHealthCheck(ml_client, "acme-dev", request_file, 2),
        metrics=ServedMetrics(azure),
        console=Console(file=io.StringIO()),
        sleep=clock.sleep,
        clock=clock,
        load=SyntheticLoad(ml_client, "acme-dev", request_file, plan.synthetic_requests_per_minute),
    )


def test_a_first_rollout_with_no_client_traffic_goes_live_in_bounded_time(
    workspace: Any, quiet_rollout: EndpointRollout, serve: Serve, clock: Clock, azure: FakeAzure
) -> None:
    # Finding 2: min_requests could never be met on a quiet endpoint; the first rollout
    # failed after max_wait_seconds. Nothing live: the sample request, then all traffic.
    start = clock.now
    result = quiet_rollout.rollout(*serve(1))
    assert result.live == "blue"
    assert clock.now - start <= timedelta(seconds=PLAN.poll_seconds)  # one poll of synthetic load
    assert [e for e in workspace.without_invokes() if e[0] == "traffic" and e[2]] == []  # no mirror
    synthetic = [d for _, d, _ in azure.scored]
    assert len(synthetic) >= quiet_rollout.plan.min_requests and set(synthetic) == {"blue"}


def test_a_second_rollout_on_a_quiet_endpoint_passes_mirror_and_canary_on_held_out_rows(
    workspace: Any, quiet_rollout: EndpointRollout, serve: Serve, azure: FakeAzure
) -> None:
    _live_on_blue(workspace, serve, 1)
    result = quiet_rollout.rollout(*serve(2))
    assert (result.live, result.retired) == ("green", "blue")
    phases = [e[1:] for e in workspace.without_invokes() if e[0] == "traffic" and (e[1] or e[2])]
    assert ({"blue": 100}, {"green": 20}) in phases and ({"blue": 90, "green": 10}, {}) in phases
    assert {d for _, d, _ in azure.scored} == {"green"}  # the old deployment got none of it


def test_a_deployment_failing_on_synthetic_traffic_is_rolled_back(
    workspace: Any, quiet_rollout: EndpointRollout, serve: Serve
) -> None:
    old = _live_on_blue(workspace, serve, 1)
    # Green answers the sample request, then fails while it is mirrored.
    workspace.fail_when(
        lambda deployment, traffic: (
            deployment == "green" and bool(workspace.endpoint.mirror_traffic.get("green"))
        )
    )
    with pytest.raises(
        RolloutError, match=r"rolled back \(all traffic on blue\).*synthetic requests"
    ):
        quiet_rollout.rollout(*serve(2))
    assert workspace.endpoint.traffic == {"blue": 100}
    assert set(workspace.deployments) == {"blue"}
    assert _live(workspace) == Placed("blue", old)
