"""The operator's process context: clients and reconcilers built once at startup, shared by all handlers.

kopf hands the same object to every handler through ``memo`` (kopf copies the memo per object
shallowly, so this one context, its clients and its per-object wake-up events are shared).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from checkout_operator.metrics import OperatorMetrics
from checkout_operator.reconcilers.workloads import WorkloadsReconciler
from checkout_operator.settings import OperatorSettings


@dataclass
class OperatorContext:
    """Everything a reconcile pass needs besides the object itself."""

    settings: OperatorSettings
    api: client.ApiClient
    dynamic: DynamicClient
    workloads: WorkloadsReconciler
    metrics: OperatorMetrics
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    """Per object uid: set by the event handler when the spec or our annotations change."""
    seen: dict[str, tuple[object, ...]] = field(default_factory=dict)
    """Per object uid: what the last pass reconciled (generation, annotations), to ignore our own writes."""

    notices: dict[str, set[tuple[str, str, str]]] = field(default_factory=dict)
    """Per object uid: the notices of the last pass, so a standing refusal is announced once."""

    def wakeup(self, uid: str) -> asyncio.Event:
        """The wake-up event of one object's reconcile loop."""
        return self.wakeups.setdefault(uid, asyncio.Event())

    def forget(self, uid: str) -> None:
        """Drop per-object state of a deleted object."""
        self.wakeups.pop(uid, None)
        self.seen.pop(uid, None)
        self.notices.pop(uid, None)


def load_api_client() -> client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig (``KUBECONFIG``)."""
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        api: client.ApiClient = config.new_client_from_config()
        return api


def build_context(settings: OperatorSettings, metrics: OperatorMetrics) -> OperatorContext:
    """Create the clients (API discovery happens here, once)."""
    api = load_api_client()
    # A discovery cache of this process only: the client's default is one shared file in /tmp, which
    # would outlive a CRD removed since (and then every request for that kind is a 404).
    cache_dir = tempfile.mkdtemp(prefix="checkout-operator-discovery-")
    dynamic = DynamicClient(api, cache_file=f"{cache_dir}/discovery.json")
    return OperatorContext(
        settings=settings,
        api=api,
        dynamic=dynamic,
        workloads=WorkloadsReconciler(dynamic, settings.workloads),
        metrics=metrics,
    )
