"""Blue/green rollout and rollback of the managed online endpoint, gated on live traffic.

A new deployment spec (model, environment, code) goes to the colour that is not live:

1. created at 0% traffic and sent the model's own ``sample_request.json`` directly;
2. mirrored traffic, then a canary share, then all traffic (a first deployment, with
   nothing live to mirror, goes to all traffic after its sample request). Each phase
   waits until the new deployment has served ``rollout.min_requests`` (failing after
   ``max_wait_seconds``), then checks its Azure Monitor metrics over the phase: 5xx rate
   and P99 latency against the configured ceilings. Held-out rows replayed at the new
   deployment (:class:`SyntheticLoad`) let a quiet endpoint pass its gate;
3. the old deployment stays at 0% for ``grace_period_hours``, so a rollback is a
   traffic switch; later rollouts (or ``cleanup``) delete it once the period is over.

Any failure restores the previous traffic and removes the new deployment. The endpoint
records what it is doing in tags, so every interruption can be undone:
``live``/``previous`` hold the full spec of the live and the replaced deployment,
``rollout`` is set from the first change until the last, and ``retired`` dates each
deployment kept at 0%. A spec equal to the live one is not rolled out again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.core.exceptions import AzureError, ResourceNotFoundError
from rich.console import Console

from mlops_azure.config import RolloutConfig
from mlops_azure.endpoint import other_colour
from mlops_azure.metrics import DeploymentMetrics
from mlops_azure.progress import wait_for

logger = logging.getLogger(__name__)

# Endpoint tags (values are JSON strings; "" means unset).
LIVE_TAG = "live"
PREVIOUS_TAG = "previous"
ROLLOUT_TAG = "rollout"
RETIRED_TAG = "retired"
# Deployment tag: the spec it serves.
SPEC_TAG = "spec"


class HealthCheckFailed(Exception):
    """The new deployment did not answer the model's sample request correctly."""


class PhaseFailed(Exception):
    """Live metrics of the new deployment breached a ceiling, or it saw too few requests."""


class RolloutError(Exception):
    """The rollout could not complete; the message says what state the endpoint was left in."""


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything a deployment is made of: what a rollback has to recreate.

    ``code`` identifies the scoring code by content (a hash of the staged folder);
    ``code_asset`` is the registered code version Azure made of it, known once the
    deployment exists, and what a rollback recreates from.
    """

    model: str
    environment: str
    code: str
    model_sha256: str | None = None
    code_asset: str | None = None

    def same_as(self, other: DeploymentSpec | None) -> bool:
        return other is not None and (self.model, self.environment, self.code) == (
            other.model,
            other.environment,
            other.code,
        )

    def to_tag(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_tag(cls, value: str | None) -> DeploymentSpec | None:
        if not value:
            return None
        return cls(**json.loads(value))


@dataclass(frozen=True)
class Placed:
    """A spec and the colour it runs on."""

    colour: str
    spec: DeploymentSpec

    def to_tag(self) -> str:
        return json.dumps({"colour": self.colour, **asdict(self.spec)}, sort_keys=True)

    @classmethod
    def from_tag(cls, value: str | None) -> Placed | None:
        if not value:
            return None
        document = json.loads(value)
        colour = document.pop("colour")
        return cls(colour, DeploymentSpec(**document))


def expected_records(request_file: Path) -> int:
    """How many records the health-check request holds (``{"instances": [...]}``)."""
    try:
        body = json.loads(request_file.read_text())
    except FileNotFoundError as exc:
        raise HealthCheckFailed(
            f"health-check request {request_file} does not exist: the model predates "
            "sample_request.json; retrain it with this mlcore"
        ) from exc
    except json.JSONDecodeError as exc:
        raise HealthCheckFailed(f"health-check request {request_file} is not JSON: {exc}") from exc
    records = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(records, list) or not records:
        raise HealthCheckFailed(f'{request_file} must hold {{"instances": [...]}} with a record')
    return len(records)


@dataclass(frozen=True)
class EndpointHealthCheck:
    """Send the model's sample request straight to one deployment; every record must be answered."""

    ml_client: MLClient
    endpoint_name: str
    request_file: Path
    requests: int = 3

    def __call__(self, deployment: str) -> None:
        expected = expected_records(self.request_file)
        for attempt in range(1, self.requests + 1):
            try:
                raw = self.ml_client.online_endpoints.invoke(
                    endpoint_name=self.endpoint_name,
                    request_file=str(self.request_file),
                    deployment_name=deployment,
                )
            except AzureError as exc:
                raise HealthCheckFailed(
                    f"request {attempt} to deployment {deployment!r} failed: {exc}"
                ) from exc
            answered = _count_predictions(raw)
            if answered != expected:
                raise HealthCheckFailed(
                    f"deployment {deployment!r} answered {answered} predictions for {expected} "
                    f"records (request {attempt}): {str(raw)[:200]}"
                )


def _count_predictions(raw: Any) -> int:
    """Predictions in a scoring response; -1 when it is not the documented JSON shape."""
    body = raw
    # The scoring server may JSON-encode a body that is already a JSON string.
    for _ in range(2):
        if isinstance(body, str | bytes):
            try:
                body = json.loads(body)
            except json.JSONDecodeError:
                return -1
    if isinstance(body, dict) and isinstance(body.get("predictions"), list):
        return len(body["predictions"])
    return -1


class SyntheticLoad:
    """Held-out rows replayed at one deployment, so a quiet endpoint's gate still measures it.

    The rows are the model's ``sample_request.json`` (held out at training time), one per
    request and in turn, sent with ``azureml-model-deployment`` set: Azure Monitor counts
    them as that deployment's requests (RequestsPerMinute, dimension deployment).
    """

    def __init__(
        self, ml_client: MLClient, endpoint_name: str, request_file: Path, per_minute: int
    ) -> None:
        expected_records(request_file)  # a clear error for a file that is not a request
        self.ml_client = ml_client
        self.endpoint_name = endpoint_name
        self.per_minute = per_minute
        # One request per held-out row, beside the request file (in the caller's folder).
        folder = request_file.parent / f"{request_file.stem}-rows"
        folder.mkdir(exist_ok=True)
        records = json.loads(request_file.read_text())["instances"]
        self.requests = []
        for number, record in enumerate(records):
            path = folder / f"row-{number}.json"
            path.write_text(json.dumps({"instances": [record]}))
            self.requests.append(path)
        self.sent = 0
        self.failed: list[str] = []

    def send(self, deployment: str, seconds: float) -> None:
        """The requests due over ``seconds`` at the configured rate."""
        due = max(1, round(self.per_minute * seconds / 60))
        for _ in range(due):
            request = self.requests[self.sent % len(self.requests)]
            self.sent += 1
            try:
                self.ml_client.online_endpoints.invoke(
                    endpoint_name=self.endpoint_name,
                    request_file=str(request),
                    deployment_name=deployment,
                )
            except AzureError as exc:
                self.failed.append(str(exc).splitlines()[0][:200])

    def reset(self) -> None:
        self.sent = 0
        self.failed = []


@dataclass(frozen=True)
class RolloutResult:
    live: str
    retired: str | None
    model: str
    changed: bool = True


Builder = Callable[[str], ManagedOnlineDeployment]


class EndpointRollout:
    """Moves traffic between the blue and green deployments of one endpoint."""

    def __init__(
        self,
        ml_client: MLClient,
        *,
        endpoint_name: str,
        plan: RolloutConfig,
        health_check: Callable[[str], None],
        metrics: DeploymentMetrics,
        console: Console,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        load: SyntheticLoad | None = None,
    ) -> None:
        self.ml_client = ml_client
        self.endpoint_name = endpoint_name
        self.plan = plan
        self.health_check = health_check
        self.metrics = metrics
        self.console = console
        self.sleep = sleep or time.sleep
        self.clock = clock or (lambda: datetime.now(UTC))
        self.load = load

    # -- reading the endpoint -------------------------------------------------

    def _endpoint(self) -> ManagedOnlineEndpoint:
        endpoint: ManagedOnlineEndpoint = self.ml_client.online_endpoints.get(self.endpoint_name)
        return endpoint

    def _tags(self) -> dict[str, str]:
        return dict(self._endpoint().tags or {})

    def _deployments(self) -> dict[str, ManagedOnlineDeployment]:
        return {
            d.name: d
            for d in self.ml_client.online_deployments.list(endpoint_name=self.endpoint_name)
        }

    def _retired(self, tags: dict[str, str]) -> dict[str, str]:
        return dict(json.loads(tags[RETIRED_TAG])) if tags.get(RETIRED_TAG) else {}

    def live(self) -> Placed | None:
        return Placed.from_tag(self._tags().get(LIVE_TAG))

    def live_if_endpoint_exists(self) -> Placed | None:
        """What is live; None also when the endpoint (or its workspace) does not exist yet."""
        try:
            return self.live()
        except ResourceNotFoundError:
            return None

    # -- changing the endpoint ------------------------------------------------

    def _update(
        self,
        *,
        traffic: dict[str, int] | None = None,
        mirror: dict[str, int] | None = None,
        tags: dict[str, str] | None = None,
        description: str = "Endpoint tags",
    ) -> None:
        endpoint = self._endpoint()
        if traffic is not None:
            endpoint.traffic = dict(traffic)
            endpoint.mirror_traffic = dict(mirror or {})
            shares = ", ".join(f"{name} {share}%" for name, share in traffic.items()) or "none"
            description = f"Traffic: {shares}" + (f", mirror {mirror}" if mirror else "")
            logger.info("endpoint %s %s", self.endpoint_name, description)
        if tags:
            endpoint.tags = {**(endpoint.tags or {}), **tags}
        wait_for(
            self.ml_client.online_endpoints.begin_create_or_update(endpoint),
            description,
            console=self.console,
        )

    def _delete(self, deployment: str) -> None:
        wait_for(
            self.ml_client.online_deployments.begin_delete(
                name=deployment, endpoint_name=self.endpoint_name
            ),
            f"Removing deployment {deployment}",
            console=self.console,
        )

    def _discard(self, deployment: str) -> None:
        if deployment in self._deployments():
            self._delete(deployment)

    # -- gates ------------------------------------------------------------------

    def _phase(self, description: str, new: str) -> None:
        """Wait for enough requests on ``new`` since now, then check its error rate and latency."""
        plan = self.plan
        start = self.clock()
        deadline = start + timedelta(seconds=plan.max_wait_seconds)
        self.console.print(f"{description}: waiting for {plan.min_requests} requests on {new}")
        if self.load is not None:
            self.load.reset()
        while True:
            if self.load is not None:
                self._synthetic(description, new)
            stats = self.metrics.traffic(new, start, self.clock())
            if stats.requests >= plan.min_requests:
                break
            if self.clock() >= deadline:
                raise PhaseFailed(
                    f"{description}: {new} served {stats.requests:.0f} of the {plan.min_requests} "
                    f"requests needed within {plan.max_wait_seconds} s; lower rollout.min_requests "
                    "or raise max_wait_seconds for low traffic"
                )
            self.sleep(plan.poll_seconds)
        problems = []
        if stats.error_rate > plan.max_5xx_rate:
            problems.append(
                f"5xx rate {stats.error_rate:.2%} over {stats.requests:.0f} requests "
                f"> {plan.max_5xx_rate:.2%}"
            )
        if stats.p99_latency_ms is not None and stats.p99_latency_ms > plan.max_p99_latency_ms:
            problems.append(
                f"P99 latency {stats.p99_latency_ms:.0f} ms > {plan.max_p99_latency_ms:.0f} ms"
            )
        if problems:
            raise PhaseFailed(f"{description}: " + "; ".join(problems))
        self.console.print(
            f"{description}: {stats.requests:.0f} requests, 5xx {stats.error_rate:.2%}, "
            f"P99 {stats.p99_latency_ms if stats.p99_latency_ms is not None else 'n/a'} ms"
        )

    def _synthetic(self, description: str, new: str) -> None:
        """Replay held-out rows at ``new`` for one poll; its 5xx answers fail the phase now."""
        assert self.load is not None
        self.load.send(new, self.plan.poll_seconds)
        failed, sent = len(self.load.failed), self.load.sent
        if failed and failed / sent > self.plan.max_5xx_rate:
            raise PhaseFailed(
                f"{description}: {failed} of {sent} synthetic requests (held-out rows) to {new} "
                f"failed, > {self.plan.max_5xx_rate:.2%}: {self.load.failed[-1]}"
            )

    # -- the operations -----------------------------------------------------------

    def cleanup(self) -> list[str]:
        """Delete deployments kept at 0% whose grace period is over; returns their names."""
        tags = self._tags()
        retired = self._retired(tags)
        now = self.clock()
        expired = [
            colour
            for colour, since in retired.items()
            if now - datetime.fromisoformat(since) >= timedelta(hours=self.plan.grace_period_hours)
        ]
        traffic = self._endpoint().traffic or {}
        removed = []
        for colour in expired:
            if traffic.get(colour, 0) == 0 and colour in self._deployments():
                self._delete(colour)
                removed.append(colour)
        if expired:
            kept = {c: t for c, t in retired.items() if c not in expired}
            self._update(tags={RETIRED_TAG: json.dumps(kept) if kept else ""})
        return removed

    def rollout(self, build: Builder, spec: DeploymentSpec) -> RolloutResult:
        """Deploy ``build(colour)`` (which serves ``spec``) to the idle colour, phase by phase."""
        tags = self._tags()
        if tags.get(ROLLOUT_TAG):
            raise RolloutError(
                f"endpoint {self.endpoint_name!r} has an unfinished rollout ({tags[ROLLOUT_TAG]}); "
                "run `python -m mlops_azure rollback` first"
            )
        endpoint = self._endpoint()
        serving = {n: s for n, s in (endpoint.traffic or {}).items() if s > 0}
        mirrored = {n: s for n, s in (endpoint.mirror_traffic or {}).items() if s > 0}
        if len(serving) > 1 or mirrored:
            raise RolloutError(
                f"endpoint {self.endpoint_name!r} is split (traffic {serving}, mirror {mirrored}); "
                "run `python -m mlops_azure rollback` first"
            )
        live = Placed.from_tag(tags.get(LIVE_TAG))
        old = next(iter(serving), None)
        if live is not None and live.colour != old:
            raise RolloutError(
                f"endpoint {self.endpoint_name!r} records {live.colour!r} as live but traffic goes "
                f"to {old!r}; run `python -m mlops_azure rollback` to reconcile"
            )
        if live is not None and spec.same_as(live.spec):
            self.console.print(
                f"{spec.model} with this environment and code is already live on {live.colour!r}"
            )
            return RolloutResult(live=live.colour, retired=None, model=spec.model, changed=False)
        self.cleanup()
        new = other_colour(old)
        deployment = build(new)
        deployment.tags = {**(deployment.tags or {}), SPEC_TAG: spec.to_tag()}
        started = self.clock().isoformat()
        self._update(tags={ROLLOUT_TAG: json.dumps({"from": old, "to": new, "started": started})})
        self.console.print(
            f"Rolling out {spec.model} to {new!r} on {self.endpoint_name} (live: {old or 'none'})"
        )
        try:
            wait_for(
                self.ml_client.online_deployments.begin_create_or_update(deployment),
                f"Creating deployment {new} at 0% traffic",
                console=self.console,
            )
        except AzureError as exc:
            self._discard(new)
            self._finish_aborted(new)
            raise RolloutError(
                f"deployment {new!r} of {spec.model} could not be created; traffic was not changed "
                f"({'all on ' + old if old else 'none'}): {exc}"
            ) from exc
        try:
            self.health_check(new)
            if old:
                self._update(traffic={old: 100, new: 0}, mirror={new: self.plan.mirror_percent})
                self._phase(f"Mirror {self.plan.mirror_percent}%", new)
                canary = self.plan.canary_percent
                self._update(traffic={old: 100 - canary, new: canary})
                self._phase(f"Canary {canary}%", new)
                self._update(traffic={old: 0, new: 100})
            else:
                self._update(traffic={new: 100})
            self._phase("Full traffic", new)
        except (HealthCheckFailed, PhaseFailed, AzureError) as exc:
            self._restore(old, new)
            raise RolloutError(
                f"rollout of {spec.model} to {new!r} failed and was rolled back "
                f"({'all traffic on ' + old if old else 'no deployment serves traffic'}): {exc}"
            ) from exc
        created = self.ml_client.online_deployments.get(name=new, endpoint_name=self.endpoint_name)
        placed = Placed(new, replace(spec, code_asset=_code_asset(created)))
        retired = self._retired(self._tags())
        if old:
            retired[old] = self.clock().isoformat()
        self._update(
            traffic={new: 100, **({old: 0} if old else {})},
            tags={
                LIVE_TAG: placed.to_tag(),
                PREVIOUS_TAG: live.to_tag() if live else "",
                RETIRED_TAG: json.dumps(retired) if retired else "",
                ROLLOUT_TAG: "",
            },
        )
        self.console.print(
            f"[green]{spec.model} is live on {new!r}[/green]"
            + (f"; {old!r} stays at 0% for {self.plan.grace_period_hours} h" if old else "")
        )
        return RolloutResult(live=new, retired=old, model=spec.model)

    def _finish_aborted(self, new: str) -> None:
        retired = self._retired(self._tags())
        retired.pop(new, None)
        self._update(tags={ROLLOUT_TAG: "", RETIRED_TAG: json.dumps(retired) if retired else ""})

    def _restore(self, old: str | None, new: str) -> None:
        logger.warning("rolling back endpoint %s to %s", self.endpoint_name, old or "no traffic")
        self._update(traffic={old: 100, new: 0} if old else {new: 0})
        self._delete(new)
        self._finish_aborted(new)

    def rollback(self, redeploy: Callable[[DeploymentSpec], RolloutResult]) -> str:
        """Return the endpoint to what served before; returns the colour left live.

        * after an interrupted or failed rollout: all traffic back to where it came from;
        * after a completed one, within the grace period: a switch back to the retained
          deployment;
        * after it: the previous spec (model, environment and code) is rolled out again
          through ``redeploy``, with every gate of a rollout.
        """
        tags = self._tags()
        deployments = self._deployments()
        if tags.get(ROLLOUT_TAG):
            unfinished = json.loads(tags[ROLLOUT_TAG])
            origin, target = unfinished["from"], unfinished["to"]
            if origin:
                self._update(
                    traffic={origin: 100, **({target: 0} if target in deployments else {})}
                )
            elif target in deployments:
                self._update(traffic={target: 0})
            self._discard(target)
            self._finish_aborted(target)
            self.console.print(
                f"[yellow]Unfinished rollout to {target!r} undone: "
                f"{'all traffic on ' + repr(origin) if origin else 'no deployment serves traffic'}[/yellow]"
            )
            return origin or ""
        live = Placed.from_tag(tags.get(LIVE_TAG))
        previous = Placed.from_tag(tags.get(PREVIOUS_TAG))
        if previous is None or live is None:
            raise RolloutError(
                f"nothing to roll back to on {self.endpoint_name!r}: no previous deployment recorded "
                f"(deployments: {sorted(deployments)})"
            )
        kept = deployments.get(previous.colour)
        if (
            kept is not None
            and DeploymentSpec.from_tag((kept.tags or {}).get(SPEC_TAG)) == previous.spec
        ):
            retired = self._retired(tags)
            retired.pop(previous.colour, None)
            retired[live.colour] = self.clock().isoformat()
            self._update(
                traffic={previous.colour: 100, live.colour: 0},
                tags={
                    LIVE_TAG: previous.to_tag(),
                    PREVIOUS_TAG: live.to_tag(),
                    RETIRED_TAG: json.dumps(retired),
                },
            )
            self.console.print(
                f"[yellow]Rolled back: all traffic on {previous.colour!r} ({previous.spec.model})[/yellow]"
            )
            return previous.colour
        if previous.spec.code_asset is None:
            raise RolloutError(
                f"the previous deployment of {self.endpoint_name!r} is gone and its code version was "
                "not recorded; roll its model out again with `rollout --model ...`"
            )
        self.console.print(
            f"Previous deployment already removed: rolling out {previous.spec.model} again "
            "with its environment and code"
        )
        return redeploy(previous.spec).live


def _code_asset(deployment: ManagedOnlineDeployment) -> str | None:
    code = deployment.code_configuration.code if deployment.code_configuration else None
    return str(code) if code else None
