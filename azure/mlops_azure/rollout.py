"""Blue/green rollout and rollback of the managed online endpoint.

A new model goes to the colour that is not live, then: health check at 0% ->
mirrored traffic -> a canary share -> 100% -> the old deployment is removed. A
failed health check (or a failed Azure operation) at any step sends all traffic
back to the old deployment and removes the new one. ``rollback`` does the same on
demand, or redeploys the previous model once the old deployment is gone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient
from azure.ai.ml.entities import ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.core.exceptions import AzureError, ResourceNotFoundError
from rich.console import Console

from mlops_azure.config import RolloutConfig
from mlops_azure.endpoint import LIVE_MODEL_TAG, MODEL_TAG, PREVIOUS_MODEL_TAG, other_colour
from mlops_azure.progress import bake, wait_for

logger = logging.getLogger(__name__)


class HealthCheckFailed(Exception):
    """The new deployment did not answer a known-good request correctly."""


class RolloutError(Exception):
    """The rollout could not complete; the message says what state the endpoint was left in."""


def expected_records(request_file: Path) -> int:
    """How many records the health-check request holds (``{"instances": [...]}`` or a list)."""
    try:
        body = json.loads(request_file.read_text())
    except FileNotFoundError as exc:
        raise HealthCheckFailed(f"health-check request file {request_file} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise HealthCheckFailed(
            f"health-check request file {request_file} is not JSON: {exc}"
        ) from exc
    records = body.get("instances") if isinstance(body, dict) else body
    if not isinstance(records, list) or not records:
        raise HealthCheckFailed(
            f'{request_file} must hold {{"instances": [...]}} or a list with at least one record'
        )
    return len(records)


@dataclass(frozen=True)
class EndpointHealthCheck:
    """Send a known-good request straight to one deployment and check every record is answered."""

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


@dataclass(frozen=True)
class RolloutResult:
    live: str
    removed: str | None
    model: str


class EndpointRollout:
    """Moves traffic between the blue and green deployments of one endpoint."""

    def __init__(
        self,
        ml_client: MLClient,
        *,
        endpoint_name: str,
        plan: RolloutConfig,
        health_check: Callable[[str], None],
        console: Console,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.ml_client = ml_client
        self.endpoint_name = endpoint_name
        self.plan = plan
        self.health_check = health_check
        self.console = console
        self.sleep = sleep or time.sleep

    # -- reading the endpoint -------------------------------------------------

    def _endpoint(self) -> ManagedOnlineEndpoint:
        endpoint: ManagedOnlineEndpoint = self.ml_client.online_endpoints.get(self.endpoint_name)
        return endpoint

    def live_deployment(self) -> str | None:
        """The deployment taking all traffic; an error when the endpoint is mid-rollout."""
        endpoint = self._endpoint()
        traffic = {name: share for name, share in (endpoint.traffic or {}).items() if share > 0}
        mirror = {
            name: share for name, share in (endpoint.mirror_traffic or {}).items() if share > 0
        }
        if len(traffic) > 1 or mirror:
            raise RolloutError(
                f"endpoint {self.endpoint_name!r} is mid-rollout (traffic {traffic}, mirror {mirror}); "
                "run `python -m mlops_azure rollback` first"
            )
        return next(iter(traffic), None)

    # -- changing the endpoint ------------------------------------------------

    def _set_traffic(
        self,
        traffic: dict[str, int],
        mirror: dict[str, int] | None = None,
        *,
        tags: dict[str, str] | None = None,
    ) -> None:
        endpoint = self._endpoint()
        endpoint.traffic = dict(traffic)
        endpoint.mirror_traffic = dict(mirror or {})
        if tags:
            endpoint.tags = {**(endpoint.tags or {}), **tags}
        shares = ", ".join(f"{name} {share}%" for name, share in traffic.items()) or "none"
        mirrored = f", mirror {mirror}" if mirror else ""
        logger.info("endpoint %s traffic: %s%s", self.endpoint_name, shares, mirrored)
        wait_for(
            self.ml_client.online_endpoints.begin_create_or_update(endpoint),
            f"Traffic: {shares}{mirrored}",
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

    def _model_of(self, deployment: str) -> str | None:
        tags = self.ml_client.online_deployments.get(
            name=deployment, endpoint_name=self.endpoint_name
        ).tags
        return (tags or {}).get(MODEL_TAG)

    def _step(self, description: str, new: str) -> None:
        bake(self.plan.bake_seconds, description, console=self.console, sleep=self.sleep)
        self.health_check(new)

    # -- the two operations ---------------------------------------------------

    def rollout(self, build: Callable[[str], ManagedOnlineDeployment]) -> RolloutResult:
        """Deploy ``build(colour)`` to the idle colour and shift traffic to it step by step."""
        old = self.live_deployment()
        new = other_colour(old)
        deployment = build(new)
        model = (deployment.tags or {}).get(MODEL_TAG, str(deployment.model))
        old_model = self._model_of(old) if old else None
        self.console.print(
            f"Rolling out {model} to {new!r} on {self.endpoint_name} (live: {old or 'none'})"
        )
        try:
            wait_for(
                self.ml_client.online_deployments.begin_create_or_update(deployment),
                f"Creating deployment {new} at 0% traffic",
                console=self.console,
            )
        except AzureError as exc:
            # No traffic has moved: only a half-created deployment needs removing.
            self._discard(new)
            raise RolloutError(
                f"deployment {new!r} of {model} could not be created; traffic was not changed "
                f"({'all on ' + old if old else 'none'}): {exc}"
            ) from exc
        try:
            self.health_check(new)
            if old:
                self._set_traffic({old: 100, new: 0}, {new: self.plan.mirror_percent})
                self._step(f"Mirroring {self.plan.mirror_percent}% of traffic to {new}", new)
                canary = self.plan.canary_percent
                self._set_traffic({old: 100 - canary, new: canary})
                self._step(f"Canary: {canary}% of traffic on {new}", new)
                self._set_traffic({old: 0, new: 100})
            else:
                self._set_traffic({new: 100})
            self._step(f"All traffic on {new}", new)
        except (HealthCheckFailed, AzureError) as exc:
            self._restore(old, new)
            raise RolloutError(
                f"rollout of {model} to {new!r} failed and was rolled back "
                f"({'all traffic on ' + old if old else 'no deployment serves traffic'}): {exc}"
            ) from exc
        tags = {LIVE_MODEL_TAG: model, **({PREVIOUS_MODEL_TAG: old_model} if old_model else {})}
        self._set_traffic({new: 100}, tags=tags)
        if old:
            self._delete(old)
        self.console.print(f"[green]{model} is live on {new!r}[/green]")
        return RolloutResult(live=new, removed=old, model=model)

    def _restore(self, old: str | None, new: str) -> None:
        logger.warning("rolling back endpoint %s to %s", self.endpoint_name, old or "no traffic")
        self._set_traffic({old: 100, new: 0} if old else {new: 0})
        self._delete(new)

    def _discard(self, deployment: str) -> None:
        try:
            self.ml_client.online_deployments.get(name=deployment, endpoint_name=self.endpoint_name)
        except ResourceNotFoundError:
            return
        self._delete(deployment)

    def rollback(self, redeploy: Callable[[str], RolloutResult]) -> str:
        """Return the endpoint to the model that served before the latest rollout.

        While two deployments exist, all traffic goes back to the one serving the
        endpoint's live model and the other is removed. Once the old deployment is
        gone, the previous model is rolled out again through ``redeploy`` (the
        same guarded steps as any rollout). Returns the deployment left live.
        """
        endpoint = self._endpoint()
        tags = endpoint.tags or {}
        deployments = {
            d.name: (d.tags or {}).get(MODEL_TAG)
            for d in self.ml_client.online_deployments.list(endpoint_name=self.endpoint_name)
        }
        live_model = tags.get(LIVE_MODEL_TAG)
        if len(deployments) >= 2:
            stable = [name for name, model in deployments.items() if model == live_model]
            if len(stable) != 1:
                raise RolloutError(
                    f"cannot tell which deployment of {self.endpoint_name!r} is stable: the endpoint's "
                    f"live model is {live_model!r}, the deployments serve {deployments}"
                )
            others = [name for name in deployments if name != stable[0]]
            self._set_traffic({stable[0]: 100, **dict.fromkeys(others, 0)})
            for name in others:
                self._delete(name)
            self.console.print(
                f"[yellow]Rolled back: all traffic on {stable[0]!r} ({live_model})[/yellow]"
            )
            return stable[0]
        previous = tags.get(PREVIOUS_MODEL_TAG)
        if not previous:
            raise RolloutError(
                f"nothing to roll back to on {self.endpoint_name!r}: one deployment "
                f"({list(deployments)}) and no previous model recorded"
            )
        self.console.print(
            f"Old deployment already removed: redeploying the previous model {previous}"
        )
        return redeploy(f"azureml:{previous}").live
