"""The operator's process context: clients and reconcilers built once at startup, shared by all handlers.

kopf hands the same object to every handler through ``memo`` (kopf copies the memo per object
shallowly, so this one context, its clients and its per-object wake-up events are shared).
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient

from checkout_operator.metrics import OperatorMetrics
from checkout_operator.reconcilers.workloads import WorkloadsReconciler
from checkout_operator.settings import KubernetesClientSettings, OperatorSettings


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


class BoundedApiClient(client.ApiClient):
    """An ``ApiClient`` whose every request is bounded in time (unless a call passes its own bound).

    The generated client sends a request with no timeout unless the call passes ``_request_timeout``. On a
    connection that died without a FIN or a reset (the peer gone, a stalled proxy or NAT) the call then
    waits forever in its worker thread, and the object's reconcile loop awaiting it with it: kopf's watches
    recover (they are bounded) and see every later edit, but no pass ever runs again. Found by the
    stalled-API-server row of the fault matrix (``e2e/platform/test_06c_operator_offline.py``).
    """

    def __init__(self, configuration: client.Configuration, timeout: tuple[float, float]) -> None:
        super().__init__(configuration)
        self.timeout = timeout
        """``(connect, read)`` seconds; the read bound applies to each read, so a long answer still arrives."""

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        """Every typed API and the dynamic client end here: fill in the bound."""
        return super().call_api(method, url, header_params, body, post_params, _request_timeout or self.timeout)


def load_api_client(settings: KubernetesClientSettings) -> client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig (``KUBECONFIG``); requests bounded."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)
    return BoundedApiClient(configuration, (settings.connect_timeout_s, settings.request_timeout_s))


def build_context(settings: OperatorSettings, metrics: OperatorMetrics) -> OperatorContext:
    """Create the clients (API discovery happens here, once)."""
    api = load_api_client(settings.kubernetes)
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
