"""The retrain function's logic: breach event in, at most one pipeline run per cooldown out.

Kept free of heavy imports (the function app installs little): standard library, mlcore's
error classes and the breach marker. :mod:`mlops_azure.retrain` builds the Event Grid
wiring that delivers the events.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from mlcore.errors import ConfigError
from mlops_azure.jobs.breach import BREACH_TAG, BREACH_WORDING

logger = logging.getLogger(__name__)

RUN_STATUS_CHANGED = "Microsoft.MachineLearningServices.RunStatusChanged"
# Azure DevOps' resource id for Entra tokens (Learn: Azure DevOps, "Use service principals
# and managed identities").
AZURE_DEVOPS_SCOPE = "499b84ac-1321-427f-aa17-267ca6975798/.default"


# The event's data as Azure sends it: camelCase keys (Event Grid system events schema,
# MachineLearningServicesRunStatusChangedEventData: runTags, runStatus, runId, ...).
RUN_TAGS = "runTags"
RUN_STATUS = "runStatus"


def breach_of(event: Mapping[str, Any]) -> str | None:
    """The breach message of a RunStatusChanged event from a breached signal, else None."""
    if event.get("eventType") != RUN_STATUS_CHANGED:
        return None
    data = event.get("data") or {}
    message = (data.get(RUN_TAGS) or {}).get(BREACH_TAG)
    if not isinstance(message, str) or BREACH_WORDING not in message:
        return None
    return message


class PipelineRuns(Protocol):
    """The Azure DevOps pipeline that retrains: its recent retraining runs, and starting one."""

    def retrain_times(self, since: datetime) -> Sequence[datetime]: ...

    def start(self, reason: str) -> str: ...


@dataclass(frozen=True)
class Decision:
    started: bool
    reason: str
    run: str | None = None


def handle_event(
    event: Mapping[str, Any],
    *,
    runs: PipelineRuns,
    cooldown_hours: float,
    now: datetime | None = None,
) -> Decision:
    """Start a retraining run for a breached signal unless one started within the cooldown.

    Only runs started for a retrain count (a pull request's build an hour ago trained
    nothing for this breach), and of those, not the ones that failed or were canceled.
    """
    message = breach_of(event)
    if message is None:
        return Decision(False, "not a breached monitor signal")
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=cooldown_hours)
    recent = [t for t in runs.retrain_times(since) if t > since]
    if recent:
        last = max(recent)
        logger.info("breach ignored: the pipeline ran at %s, within the cooldown", last)
        return Decision(False, f"cooldown: a retraining run started at {last.isoformat()}")
    subject = str(event.get("subject", ""))
    run = runs.start(f"{subject}: {message.splitlines()[0]}")
    return Decision(True, "retraining started", run)


class AzureDevOpsRuns:
    """Runs of one Azure DevOps pipeline, through its REST API (Pipelines - Runs, api 7.1)."""

    def __init__(
        self,
        *,
        organization_url: str,
        project: str,
        pipeline_id: int,
        token: Callable[[], str],
        branch: str = "refs/heads/main",
        opener: Callable[[urllib.request.Request], Any] = urllib.request.urlopen,
    ) -> None:
        self.base = f"{organization_url.rstrip('/')}/{project}/_apis/pipelines/{pipeline_id}/runs"
        self.token = token
        self.branch = branch
        self.opener = opener

    def _call(self, method: str, body: dict[str, Any] | None = None, run: str = "") -> Any:
        request = urllib.request.Request(
            f"{self.base}{'/' + run if run else ''}?api-version=7.1",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        with self.opener(request) as response:
            return json.loads(response.read())

    def retrain_times(self, since: datetime) -> list[datetime]:
        """When the runs created after ``since`` that retrain started (not failed or canceled).

        Runs - List names no template parameters, so each recent run is read (Runs - Get):
        a retraining run carries ``retrainReason``, which :meth:`start` sets.
        """
        times = []
        for listed in self._call("GET").get("value", []):
            created = _parse_time(listed["createdDate"])
            if created <= since or listed.get("result") in ("failed", "canceled"):
                continue
            run = self._call("GET", run=str(listed["id"]))
            if (run.get("templateParameters") or {}).get("retrainReason"):
                times.append(created)
        return times

    def start(self, reason: str) -> str:
        body = {
            "resources": {"repositories": {"self": {"refName": self.branch}}},
            "templateParameters": {"retrainReason": reason[:500]},
        }
        return str(self._call("POST", body)["id"])


def _parse_time(value: str) -> datetime:
    # Azure DevOps writes seven fractional digits, which fromisoformat accepts from 3.11.
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


FUNCTION_SETTINGS = (
    "MLOPS_ADO_ORGANIZATION_URL",
    "MLOPS_ADO_PROJECT",
    "MLOPS_ADO_PIPELINE_ID",
    "MLOPS_RETRAIN_COOLDOWN_HOURS",
)


def function_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The retrain function's app settings, every missing one named."""
    missing = [name for name in FUNCTION_SETTINGS if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"the retrain function lacks the app settings {missing}; set them on the function app "
            "(README, 'Retraining on Azure')"
        )
    return {name: environ[name] for name in FUNCTION_SETTINGS}
