"""kopf wiring: thin handlers that delegate to :mod:`checkout_operator.platform`.

One long-lived loop (a kopf daemon) per ``CheckoutPlatform`` runs the reconcile passes, so passes of
one object never overlap: the loop sleeps for the delay the last pass chose and wakes early when the
event handler sees a new generation or a change of the pause annotation. kopf stops the loop when the
object is being deleted (then the delete handler cleans up) and when peering pauses this operator.

Handlers are registered on a registry built from the settings (:func:`build_registry`), so nothing is
configured at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
from typing import Any

import kopf

from checkout_operator.context import OperatorContext, build_context
from checkout_operator.metrics import OperatorMetrics
from checkout_operator.platform import GROUP, PLURAL, VERSION, delete_pass, reconcile_pass
from checkout_operator.reconcilers.workloads import PLATFORM_LABEL
from checkout_operator.settings import OperatorSettings
from checkout_operator.tracing import install_tracing, shutdown_tracing

log = logging.getLogger(__name__)
FINALIZER = "checkout.platform.io/finalizer"
RESOURCE = (GROUP, VERSION, PLURAL)


def derived_priority(settings: OperatorSettings) -> int:
    """The peering priority: the configured one, or a stable value from host name and pid.

    Equal priorities make kopf peers pause each other, so replicas (and two processes on one
    developer machine) must differ; hashing host name and pid gives each a distinct value.
    """
    if settings.peering.priority:
        return settings.peering.priority
    digest = hashlib.sha256(f"{socket.gethostname()}/{os.getpid()}".encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % 1_000_000


def configure_kopf(kopf_settings: kopf.OperatorSettings, settings: OperatorSettings) -> None:
    """Our finalizer and storage keys, bounded watches, peering, Event identity."""
    kopf_settings.persistence.finalizer = FINALIZER
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="checkout.platform.io")
    kopf_settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="checkout.platform.io", key="last-handled-configuration"
    )
    kopf_settings.watching.server_timeout = settings.watch.server_timeout_s
    kopf_settings.watching.client_timeout = settings.watch.client_timeout_s
    kopf_settings.watching.connect_timeout = settings.watch.connect_timeout_s
    kopf_settings.networking.request_timeout = settings.kubernetes.request_timeout_s
    kopf_settings.networking.connect_timeout = settings.kubernetes.connect_timeout_s
    kopf_settings.peering.name = settings.peering.name
    kopf_settings.peering.priority = derived_priority(settings)
    kopf_settings.peering.standalone = settings.peering.standalone
    kopf_settings.peering.mandatory = not settings.peering.standalone
    kopf_settings.peering.clusterwide = not settings.namespaces
    kopf_settings.peering.stealth = True
    kopf_settings.posting.reporting_component = "checkout-operator"
    kopf_settings.posting.reporting_instance = socket.gethostname()
    kopf_settings.posting.level = logging.INFO


def build_registry(settings: OperatorSettings) -> kopf.OperatorRegistry:
    """Register the handlers for these settings on a fresh registry."""
    registry = kopf.OperatorRegistry()
    operator_settings = settings

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # In-cluster ServiceAccount token, or the kubeconfig, as the kubernetes client reads them.
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        configure_kopf(settings, operator_settings)
        memo.tracer_provider = install_tracing()  # from the operator's own OTEL_* environment
        metrics = OperatorMetrics()
        if operator_settings.metrics_port:
            metrics.serve(operator_settings.metrics_port)
        memo.context = await asyncio.to_thread(build_context, operator_settings, metrics)
        log.info(
            "checkout-operator started: namespaces=%s peering=%s priority=%s",
            operator_settings.namespaces or "all",
            "standalone" if operator_settings.peering.standalone else operator_settings.peering.name,
            settings.peering.priority,
        )

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext | None = memo.get("context")
        if context is not None:
            await asyncio.to_thread(context.api.close)
        await asyncio.to_thread(shutdown_tracing, memo.get("tracer_provider"))

    @kopf.daemon(*RESOURCE, registry=registry, id="reconcile", cancellation_timeout=10.0)
    async def reconcile(body: kopf.Body, uid: str, memo: kopf.Memo, **_: Any) -> None:
        context: OperatorContext = memo.context
        wakeup = context.wakeup(uid)
        failures = 0
        while True:
            wakeup.clear()
            context.seen[uid] = _fingerprint(body, operator_settings)
            try:
                result = await reconcile_pass(context, body, failures)
            except Exception:  # a bug, not a backend problem: log it, back off, never crash-loop
                failures += 1
                log.exception("reconcile pass of %s/%s failed", body.metadata.namespace, body.metadata.name)
                delay = min(operator_settings.reconcile.retry_backoff_max_s, 5.0 * 2**failures)
            else:
                failures = failures + 1 if result.failed else 0
                delay = result.delay_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), timeout=delay)

    @kopf.on.event(*RESOURCE, registry=registry)
    def changed(body: kopf.Body, uid: str, memo: kopf.Memo, type: str | None, **_: Any) -> None:
        context: OperatorContext | None = memo.get("context")
        if context is None or type == "DELETED":
            return
        if context.seen.get(uid) != _fingerprint(body, operator_settings):
            context.wakeup(uid).set()

    @kopf.on.event("apps", "v1", "deployments", labels={PLATFORM_LABEL: kopf.PRESENT}, registry=registry)
    def workload_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        # A Deployment of a platform changed (rolled out, scaled, deleted by hand): look now rather than at
        # the next timer tick. Our own no-op applies do not change the object, so they wake nothing.
        context: OperatorContext | None = memo.get("context")
        if context is None:
            return
        for ref in body.metadata.get("ownerReferences") or []:
            if ref.get("kind") == "CheckoutPlatform" and ref.get("uid") in context.wakeups:
                context.wakeup(ref["uid"]).set()

    @kopf.on.delete(*RESOURCE, registry=registry, id="cleanup")
    async def delete(body: kopf.Body, uid: str, memo: kopf.Memo, retry: int, **_: Any) -> None:
        context: OperatorContext = memo.context
        try:
            await delete_pass(context, body, retry)
        finally:
            context.forget(uid)

    @kopf.on.probe(registry=registry, id="platforms")
    def platforms(memo: kopf.Memo, **_: Any) -> int:
        context: OperatorContext | None = memo.get("context")
        return 0 if context is None else len(context.wakeups)

    return registry


def _fingerprint(body: kopf.Body, settings: OperatorSettings) -> tuple[object, ...]:
    """What, when changed, warrants a pass now: the generation and our two annotations."""
    annotations = body.metadata.annotations
    return (
        body.metadata.get("generation"),
        annotations.get(settings.reconcile.pause_annotation),
        annotations.get(settings.reconcile.release_annotation),
    )
