"""The operator's own Prometheus metrics, served on ``/metrics``.

One registry per process (created at startup, not at import), so tests can run operators side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

CONCERNS = ("topics", "database", "workloads", "deletion")


class OperatorMetrics:
    """Reconcile counts, durations, failures by reason, and one gauge per platform condition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "checkout_operator_reconciles_total",
            "Reconcile passes per concern and result (ready, not_ready, error).",
            ["concern", "result"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "checkout_operator_reconcile_duration_seconds",
            "Duration of one concern's reconcile pass.",
            ["concern"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.errors = Counter(
            "checkout_operator_reconcile_errors_total",
            "Passes that left a concern not ready, by the condition's reason.",
            ["concern", "reason"],
            registry=self.registry,
        )
        self.condition = Gauge(
            "checkout_operator_condition",
            "1 when the platform's condition has this status, else 0 (one series per status).",
            ["namespace", "name", "type", "status"],
            registry=self.registry,
        )
        self.paused = Gauge(
            "checkout_operator_paused_platforms",
            "Platforms whose reconciliation is paused by annotation.",
            registry=self.registry,
        )
        self._paused: set[tuple[str, str]] = set()

    def serve(self, port: int) -> None:
        """Start the ``/metrics`` HTTP endpoint on a background thread."""
        start_http_server(port, registry=self.registry)

    def set_conditions(self, namespace: str, name: str, conditions: Iterable[Mapping[str, Any]]) -> None:
        """Mirror the platform's conditions (True/False/Unknown → three 0/1 series per type)."""
        for cond in conditions:
            for status in ("True", "False", "Unknown"):
                self.condition.labels(namespace, name, str(cond["type"]), status).set(
                    1.0 if cond["status"] == status else 0.0
                )

    def forget(self, namespace: str, name: str) -> None:
        """Drop the series of a deleted platform."""
        for labels in list(self.condition._metrics):
            if labels[0] == namespace and labels[1] == name:
                self.condition.remove(*labels)
        self.set_paused(namespace, name, paused=False)

    def set_paused(self, namespace: str, name: str, *, paused: bool) -> None:
        """Track which platforms are paused."""
        (self._paused.add if paused else self._paused.discard)((namespace, name))
        self.paused.set(len(self._paused))
