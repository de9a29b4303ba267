"""One reconcile pass over a ``CheckoutPlatform``, and its clean-up on deletion.

The pass is level-based: it reads the spec, asks each reconciler to converge its concern (topics,
database, workloads), then writes the whole status (conditions, per-topic and per-service detail) and
emits the Events the reconcilers asked for. It returns how long to wait before the next pass: the
drift interval when all is well, a short requeue while a rollout progresses, a growing backoff while a
backend fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from checkout_operator import status as st
from checkout_operator import tracing
from checkout_operator.context import OperatorContext
from checkout_operator.credentials import CredentialsError, ensure_service_secret, read_admin
from checkout_operator.outcome import Outcome
from checkout_operator.reconcilers.database import (
    AdminCredentials,
    ServiceLogin,
    delete_database,
    reconcile_database,
)
from checkout_operator.reconcilers.topics import delete_topics, reconcile_topics
from checkout_operator.reconcilers.workloads import MANAGED_BY, PLATFORM_LABEL, Owner
from checkout_operator.spec import SERVICES, PlatformSpec, service_database

GROUP: Final = "checkout.platform.io"
VERSION: Final = "v1alpha1"
PLURAL: Final = "checkoutplatforms"

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PassResult:
    """What a pass decided about the next one."""

    delay_s: float
    failed: bool


def is_true(annotations: Mapping[str, str], key: str) -> bool:
    """An annotation set to a true-ish value (``true``, ``yes``, ``1``)."""
    return annotations.get(key, "").strip().lower() in ("true", "yes", "1")


def backoff_s(ctx: OperatorContext, failures: int) -> float:
    """Delay before retrying after ``failures`` consecutive failed passes (exponential, capped)."""
    settings = ctx.settings.reconcile
    return float(min(settings.retry_backoff_s * 2 ** max(failures - 1, 0), settings.retry_backoff_max_s))


async def _timed(ctx: OperatorContext, concern: str, work: Callable[[], Awaitable[Outcome]]) -> Outcome:
    started = time.perf_counter()
    with tracing.concern_span(concern) as span:
        try:
            outcome = await work()
        except Exception:
            ctx.metrics.reconciles.labels(concern, "error").inc()
            raise
        finally:
            ctx.metrics.duration.labels(concern).observe(time.perf_counter() - started)
        tracing.record_outcome(span, outcome)
    ctx.metrics.reconciles.labels(concern, "ready" if outcome.ready else "not_ready").inc()
    if not outcome.ready:
        ctx.metrics.errors.labels(concern, outcome.reason).inc()
    return outcome


def _labels(owner: Owner) -> dict[str, str]:
    return {PLATFORM_LABEL: owner.name, "app.kubernetes.io/managed-by": MANAGED_BY}


async def _database(ctx: OperatorContext, owner: Owner, spec: PlatformSpec) -> Outcome:
    """Admin credentials → per-service Secrets (passwords) → schemas and roles."""
    generated: set[str] = set()
    try:
        admin = await read_admin(ctx.api, owner.namespace, spec.postgres)
        logins = []
        for service in spec.enabled_services():
            database = service_database(owner.name, spec, service)
            creds = await ensure_service_secret(
                ctx.api, owner.namespace, owner.reference(), _labels(owner), spec.postgres, database
            )
            logins.append(ServiceLogin(database=database, password=creds.password))
            if creds.generated:
                generated.add(service)
    except CredentialsError as exc:
        return Outcome(False, exc.reason, str(exc), retry=True)
    except ApiException as exc:
        return Outcome(
            False, "SecretsFailed", f"reading or writing Secrets failed: {exc.status} {exc.reason}", retry=True
        )
    outcome = await reconcile_database(
        spec.postgres,
        AdminCredentials(admin.username, admin.password),
        logins,
        f"{owner.namespace}/{owner.name}",
        ctx.settings.postgres,
    )
    secrets = {login.database.service: login.database.secret_name for login in logins}
    detail = [
        {
            **item,
            "secretName": secrets.get(str(item.get("service")), ""),
            **({"passwordGenerated": True} if item.get("service") in generated else {}),
        }
        for item in outcome.detail
    ]
    return Outcome(outcome.ready, outcome.reason, outcome.message, detail, outcome.notices, outcome.retry)


async def patch_status(ctx: OperatorContext, owner: Owner, status: Mapping[str, Any]) -> None:
    """Merge-patch the status subresource (the operator is its only writer)."""
    api = client.CustomObjectsApi(ctx.api)
    try:
        await asyncio.to_thread(
            api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            owner.namespace,
            PLURAL,
            owner.name,
            {"status": dict(status)},
            _content_type="application/merge-patch+json",
        )
    except ApiException as exc:
        if exc.status != 404:  # deleted meanwhile: nothing to report to
            raise


def _announce(
    ctx: OperatorContext, body: kopf.Body, outcomes: Mapping[str, Outcome], previous: list[Mapping[str, Any]]
) -> None:
    """Events: each notice, plus one Warning when a concern turns not-ready or changes its reason.

    A Warning notice repeated pass after pass (a standing refusal) is announced once.
    """
    uid = str(body["metadata"]["uid"])
    last = ctx.notices.get(uid, set())
    current: set[tuple[str, str, str]] = set()
    for outcome in outcomes.values():
        for notice in outcome.notices:
            key = (notice.type, notice.reason, notice.message)
            current.add(key)
            if notice.type == "Warning" and key in last:
                continue
            kopf.event(body, type=notice.type, reason=notice.reason, message=notice.message)
    ctx.notices[uid] = current
    for type_, outcome in outcomes.items():
        if outcome.ready or outcome.requeue_s is not None:
            continue
        before = st.find(previous, type_)
        if before is None or before.get("status") != "False" or before.get("reason") != outcome.reason:
            kopf.event(body, type="Warning", reason=outcome.reason, message=f"{type_}: {outcome.message}")


async def reconcile_pass(ctx: OperatorContext, body: kopf.Body, failures: int) -> PassResult:
    """Converge one platform once; write its status; return when to look again.

    Traced as ``reconcile <namespace>/<name>`` with a child span per concern (:mod:`checkout_operator.tracing`).
    """
    with tracing.platform_span("reconcile", body["metadata"]):
        return await _reconcile(ctx, body, failures)


async def _reconcile(ctx: OperatorContext, body: kopf.Body, failures: int) -> PassResult:
    meta = body["metadata"]
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    generation = int(meta.get("generation") or 0)
    annotations = dict(meta.get("annotations") or {})
    previous_status = dict(body.get("status") or {})
    previous = list(previous_status.get("conditions") or [])
    interval = ctx.settings.reconcile.interval_s
    pause_key = ctx.settings.reconcile.pause_annotation

    if is_true(annotations, pause_key):
        now = st.now_rfc3339()
        paused = st.condition(
            st.PAUSED,
            "True",
            "PausedByAnnotation",
            f"reconciliation is paused by the annotation {pause_key}; remove it to resume",
            generation,
            now,
        )
        conditions = st.merge_conditions(previous, [paused])
        if conditions != previous:
            kopf.event(body, type="Normal", reason="Paused", message=paused["message"])
            await patch_status(ctx, owner, {"conditions": conditions})
        ctx.metrics.set_paused(owner.namespace, owner.name, paused=True)
        ctx.metrics.set_conditions(owner.namespace, owner.name, conditions)
        tracing.record_pass(paused, interval)
        return PassResult(interval, failed=False)
    ctx.metrics.set_paused(owner.namespace, owner.name, paused=False)

    spec = PlatformSpec.parse(body["spec"])
    topics = await _timed(ctx, "topics", lambda: reconcile_topics(spec.kafka, ctx.settings.kafka))
    database = await _timed(ctx, "database", lambda: _database(ctx, owner, spec))
    now = st.now_rfc3339()
    known = {str(s["name"]) for s in previous_status.get("services") or [] if s.get("enabled") and "replicas" in s}
    # Roll a service's Pods when its schema was recreated (so migrations run) or when its Secret came back with a
    # new password for a service that already ran: the role now has that password, and the running processes,
    # started with the old one, would fail at their next connection (a pool refill, a PostgreSQL restart).
    restart = {
        str(d["service"]): now
        for d in database.detail
        if d.get("recreated") or (d.get("passwordGenerated") and str(d["service"]) in known)
    }
    workloads = await _timed(ctx, "workloads", lambda: ctx.workloads.reconcile(owner, spec, known, restart))

    outcomes = {st.TOPICS_READY: topics, st.DATABASE_READY: database, st.WORKLOADS_READY: workloads}
    concern_conditions = [st.from_outcome(t, o, generation, now) for t, o in outcomes.items()]
    ready = st.ready_condition(concern_conditions, generation, now)
    conditions = st.merge_conditions(previous, [ready, *concern_conditions], drop=(st.PAUSED, st.DELETING))
    new_status = {
        "observedGeneration": generation,
        "conditions": conditions,
        # An unreachable broker shows nothing: keep the last observed topics rather than blank them.
        "topics": st.topic_entries(topics.detail) if topics.detail else previous_status.get("topics") or [],
        "services": st.service_entries(SERVICES, spec.enabled_services(), database.detail, workloads.detail),
    }
    _announce(ctx, body, outcomes, previous)
    await patch_status(ctx, owner, new_status)
    ctx.metrics.set_conditions(owner.namespace, owner.name, conditions)

    result = _next_pass(ctx, outcomes.values(), failures)
    tracing.record_pass(ready, result.delay_s)
    log.info(
        "reconciled %s/%s generation %d: Ready=%s (%s); next pass in %.0f s",
        owner.namespace,
        owner.name,
        generation,
        ready["status"],
        ready["reason"],
        result.delay_s,
    )
    return result


def _next_pass(ctx: OperatorContext, outcomes: Iterable[Outcome], failures: int) -> PassResult:
    """Backoff while a backend fails; a short requeue while a rollout progresses; else the drift interval."""
    outcomes = list(outcomes)
    interval = ctx.settings.reconcile.interval_s
    if any(not o.ready and o.retry for o in outcomes):
        return PassResult(backoff_s(ctx, failures + 1), failed=True)
    if any(not o.ready and o.requeue_s is None for o in outcomes):
        return PassResult(interval, failed=False)  # the spec must change (e.g. a partition shrink)
    requeues = [o.requeue_s for o in outcomes if o.requeue_s is not None and not o.ready]
    return PassResult(min([interval, *requeues]), failed=False)


async def delete_pass(ctx: OperatorContext, body: kopf.Body, retry: int) -> None:
    """Clean the backends per ``deletionPolicy``; raise kopf.TemporaryError to retry with backoff.

    Traced as ``cleanup <namespace>/<name>``.
    """
    with tracing.platform_span("cleanup", body["metadata"]):
        await _delete(ctx, body, retry)


async def _delete(ctx: OperatorContext, body: kopf.Body, retry: int) -> None:
    meta = body["metadata"]
    owner = Owner(name=meta["name"], namespace=meta["namespace"], uid=meta["uid"])
    annotations = dict(meta.get("annotations") or {})
    release_key = ctx.settings.reconcile.release_annotation
    ctx.metrics.forget(owner.namespace, owner.name)
    if is_true(annotations, release_key):
        kopf.event(
            body,
            type="Warning",
            reason="FinalizerReleased",
            message=f"{release_key} is set: deleted without cleaning topics and schemas (they are left as they are)",
        )
        return
    spec = PlatformSpec.parse(body["spec"])
    if spec.deletion_policy == "Retain":
        kopf.event(body, type="Normal", reason="Retained", message="deletionPolicy Retain: topics and schemas kept")
        return

    topics = await _timed(ctx, "deletion", lambda: delete_topics(spec.kafka, ctx.settings.kafka))
    database: Outcome
    try:
        admin = await read_admin(ctx.api, owner.namespace, spec.postgres)
        databases = [service_database(owner.name, spec, s) for s in SERVICES]
        database = await _timed(
            ctx,
            "deletion",
            lambda: delete_database(
                spec.postgres,
                AdminCredentials(admin.username, admin.password),
                databases,
                f"{owner.namespace}/{owner.name}",
                ctx.settings.postgres,
            ),
        )
    except CredentialsError as exc:
        database = Outcome(False, exc.reason, str(exc), retry=True)
    for outcome in (topics, database):
        for notice in outcome.notices:
            kopf.event(body, type=notice.type, reason=notice.reason, message=notice.message)
    blocked = [o for o in (topics, database) if not o.ready]
    now = st.now_rfc3339()
    generation = int(meta.get("generation") or 0)
    previous = list((body.get("status") or {}).get("conditions") or [])
    if not blocked:
        kopf.event(body, type="Normal", reason="Deleted", message=f"{topics.message}; {database.message}")
        return
    delay = backoff_s(ctx, retry + 1)
    message = (
        "; ".join(o.message for o in blocked)
        + f"; retrying in {delay:.0f} s. To delete without cleaning up, annotate the object with {release_key}=true"
    )
    deleting = st.condition(st.DELETING, "True", blocked[0].reason, message, generation, now)
    await patch_status(ctx, owner, {"conditions": st.merge_conditions(previous, [deleting])})
    kopf.event(body, type="Warning", reason=blocked[0].reason, message=f"deletion blocked: {message}")
    raise kopf.TemporaryError(message, delay=delay)
