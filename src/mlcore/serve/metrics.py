"""Prometheus metrics of the inference server, served at ``GET /metrics``.

* ``mlcore_invocations_total{status="200"}``: answered invocations by HTTP status;
* ``mlcore_invocation_seconds``: a latency histogram of invocations;
* ``mlcore_capture_failures_total``: answered requests whose capture record was lost
  (a full or read-only disk); a non-zero value means the monitors see less traffic
  than the endpoint served;
* ``mlcore_client_disconnects_total``: invocations whose client disconnected before
  its answer. They are not in ``mlcore_invocations_total`` (no answer was delivered, and
  a client leaving is not a server fault), and they are never captured.

With several worker processes each one counts its own, and ``run_server`` points
``PROMETHEUS_MULTIPROC_DIR`` at a shared folder so any worker's ``/metrics`` reports
the sum over all of them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# From 1 ms (a one-row request) to SageMaker's 60 s invocation limit.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServingMetrics:
    """The server's counters, in a registry of their own (so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.invocations = Counter(
            "mlcore_invocations",
            "Invocations answered, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mlcore_invocation_seconds",
            "Time from request to answer of invocations",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.capture_failures = Counter(
            "mlcore_capture_failures",
            "Answered requests whose data-capture record could not be written",
            registry=self.registry,
        )
        self.client_disconnects = Counter(
            "mlcore_client_disconnects",
            "Invocations whose client disconnected before its answer (not counted by status)",
            registry=self.registry,
        )

    def observe(self, status: int, seconds: float) -> None:
        self.invocations.labels(status=str(status)).inc()
        self.latency.observe(seconds)

    def capture_failed(self) -> None:
        self.capture_failures.inc()

    def client_disconnected(self) -> None:
        self.client_disconnects.inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text format Prometheus scrapes, summed over worker processes when there are several."""
        if os.environ.get(MULTIPROCESS_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
