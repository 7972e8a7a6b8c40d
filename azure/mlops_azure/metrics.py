"""What a deployment served, from Azure Monitor: requests, 5xx answers, P99 latency.

Metric names and dimensions are those Azure Monitor documents for the resource type
``Microsoft.MachineLearningServices/workspaces/onlineEndpoints`` (Learn, "Supported
metrics"): ``RequestsPerMinute`` (Average; dimensions deployment, statusCode,
statusCodeClass, modelStatusCode) and ``RequestLatency_P99`` (Average, milliseconds;
dimension deployment), at one-minute grain. Learn's safe-rollout guide reads mirrored
traffic the same way (RequestsPerMinute with deployment = the mirrored deployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

REQUESTS_METRIC = "RequestsPerMinute"
LATENCY_METRIC = "RequestLatency_P99"


@dataclass(frozen=True)
class TrafficStats:
    """One deployment over one window."""

    requests: float
    errors_5xx: float
    p99_latency_ms: float | None  # None: no latency reported yet

    @property
    def error_rate(self) -> float:
        return self.errors_5xx / self.requests if self.requests else 0.0


class DeploymentMetrics(Protocol):
    def traffic(self, deployment: str, start: datetime, end: datetime) -> TrafficStats: ...


def endpoint_resource_id(
    subscription_id: str, resource_group: str, workspace: str, endpoint: str
) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace}/onlineEndpoints/{endpoint}"
    )


def _timespan(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()}/{end.isoformat()}"


class AzureMonitorMetrics:
    """Reads the endpoint's metrics with azure-mgmt-monitor (``MonitorManagementClient``)."""

    def __init__(self, client: Any, endpoint_id: str) -> None:
        self.client = client
        self.endpoint_id = endpoint_id

    def _series(
        self, metric: str, deployment: str, start: datetime, end: datetime, split: str | None
    ) -> Any:
        dimension = f"deployment eq '{deployment}'"
        return self.client.metrics.list(
            self.endpoint_id,
            timespan=_timespan(start, end),
            interval="PT1M",
            metricnames=metric,
            aggregation="Average",
            filter=f"{dimension} and {split} eq '*'" if split else dimension,
        )

    def traffic(self, deployment: str, start: datetime, end: datetime) -> TrafficStats:
        requests = errors = 0.0
        response = self._series(REQUESTS_METRIC, deployment, start, end, "statusCodeClass")
        for metric in response.value:
            for series in metric.timeseries or []:
                classes = {m.name.value: m.value for m in series.metadatavalues or []}
                # One point per minute; its average is that minute's request count.
                total = sum(point.average or 0.0 for point in series.data or [])
                requests += total
                if classes.get("statusCodeClass") == "5xx":
                    errors += total
        latencies = [
            point.average
            for metric in self._series(LATENCY_METRIC, deployment, start, end, None).value
            for series in metric.timeseries or []
            for point in series.data or []
            if point.average is not None
        ]
        return TrafficStats(requests, errors, max(latencies) if latencies else None)
