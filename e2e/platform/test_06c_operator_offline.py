"""The operator rows of the fault matrix that need a platform of their own: a stalled API server watch, and a
CheckoutPlatform deleted while its operator is down.

A second, small platform (inventory only, ``deletionPolicy: Delete``) gets its own namespaces, topic prefix,
database, operator chart release and node agent (``operator_faults.small_platform``), so what happens to it
cannot reach the main platform; the main platform carries the steady checkout load meanwhile, and its
invariants and consumer lag are the rows' verdict (a fault on a neighbour must cost it nothing).

4. The watch stalled: the small platform's chart operator is scaled to 0 and the same operator runs as a
   standalone process whose kubeconfig points at a toxiproxy proxy in front of the API server. The proxy
   stalls (nothing passes either way, nothing is closed) for longer than the operator's watch timeouts, an edit
   is made meanwhile, the stall is lifted without closing anything (what was dropped stays lost, so a request
   sent during the stall never gets an answer): the operator must notice and converge within a bounded time.
3. Deleted while down: with the operator scaled to 0 (its process gone), ``kubectl delete`` leaves the resource
   Terminating (the finalizer holds it); scaled up again, the operator cleans up per ``deletionPolicy: Delete``
   (topics, schemas, roles, Secrets, workloads, processes) and the resource goes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from deployed import DeployedPlatform, Traffic, topics
from operator_faults import (
    FAULT_SKU,
    SmallPlatform,
    Toxiproxy,
    api_server_address,
    in_flight,
    kubeconfig_via,
    load_rate,
    objects,
    record_row,
    seed_fault_stock,
    small_platform,
    verdict,
    wait_for,
)
from operator_harness import OperatorFactory

# The first test's setup installs the small platform (and, with this file run alone, the main one): more than
# the suite's default 300 s per test on a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

FINALIZER = "checkout.platform.io/finalizer"
WATCH_ENV = {
    "WATCH__SERVER_TIMEOUT_S": "10",
    "WATCH__CLIENT_TIMEOUT_S": "15",
    "WATCH__CONNECT_TIMEOUT_S": "5",
    "KUBERNETES__REQUEST_TIMEOUT_S": "5",
    "KUBERNETES__CONNECT_TIMEOUT_S": "5",
    "RECONCILE__INTERVAL_S": "5",
}
"""The standalone operator's bounds, short so the row stays short (the defaults: watches 300/330/30 s, other requests
60/30 s); the drift interval makes a pass fall inside the stall."""
CONVERGE_S = 45.0
"""Bound on the convergence after the stall is lifted: the request timeout (5 s), the retry backoff (at most 4 s)
and a pass, with room for a loaded machine. A request without a timeout, sent during the stall, is answered never;
before the fix such a pass blocked the object's loop until the API server closed the idle connection (~90 s after
its last answer, 50 s after the lift in the run that found it), or forever where that close does not arrive."""
STALL_S = 25.0
"""Longer than the watch's client timeout (15 s) and than several drift passes."""


@pytest.fixture(scope="module")
def small(platform: DeployedPlatform) -> Iterator[SmallPlatform]:
    """The second platform, Ready with its inventory process running; removed after this file."""
    if platform.target.name != "local":
        pytest.skip("the small platform's node agent and the toxiproxy path exist on the local control plane only")
    with small_platform(platform) as running:
        yield running


def test_operator_notices_a_stalled_api_server_watch_and_converges(
    platform: DeployedPlatform, small: SmallPlatform, toxiproxy_url: str, helm: Path
) -> None:
    seed_fault_stock(platform)
    p = small.platform
    small.stop_operator()
    deployment = p.workload("inventory")
    upstream = api_server_address(p.cluster.kubeconfig)
    failure: str | None = None
    converged: str | None = None
    with Toxiproxy(toxiproxy_url, f"e2e-{p.run_id}-kube-apiserver", upstream) as proxy:
        proxied = kubeconfig_via(p.cluster.kubeconfig, proxy.listen, p.run_dir / "kubeconfig-via-toxiproxy")
        factory = OperatorFactory(p.namespace, proxied, helm)
        try:
            operator = factory.start(standalone=True, **WATCH_ENV)
            wait_for(
                "the standalone operator's first pass",
                lambda: f"reconciled {p.namespace}/{p.name}" in operator.log(),
                timeout_s=60,
            )
            began = time.monotonic()
            with Traffic(platform, FAULT_SKU) as traffic:
                time.sleep(2)
                in_flight_sagas = in_flight(platform, list(traffic.saga_ids))
                proxy.stall()
                stalled = time.monotonic()
                time.sleep(2)
                generation = int(p.resource()["metadata"]["generation"]) + 1
                p.patch({"spec": {"services": {"inventory": {"replicas": 2}}}})
                time.sleep(max(0.0, STALL_S - (time.monotonic() - stalled)))
                during = _replicas(p, deployment)
                alive_during = operator.process is not None and operator.process.poll() is None
                proxy.lift()
                lifted = time.monotonic()
                try:
                    converged = wait_for(
                        "the edit made during the stall converged (Ready=True at its generation, 2 replicas)",
                        lambda: _converged(p, deployment, generation),
                        timeout_s=CONVERGE_S,
                    )
                except AssertionError as exc:
                    failure = str(exc)
                recovery_s = time.monotonic() - lifted
                time.sleep(1)
            load_s = time.monotonic() - began
            log = operator.log()
        finally:
            factory.stop_all()
    saga_ids = list(traffic.saga_ids)
    result = verdict(platform, saga_ids)
    detail = (
        f"standalone operator through toxiproxy (watch server/client timeouts 10/15 s), both directions stalled "
        f"{STALL_S:.0f} s with an edit (inventory replicas 1->2) 2 s in; Deployment at {during} replica(s) when "
        f"lifted; {f'converged {recovery_s:.1f} s after the lift ({converged})' if converged else 'NOT CONVERGED'}; "
        f"operator log: {log.count('Traceback')} tracebacks; load on the main platform; refused initiates: "
        f"{len(traffic.refused)}{f'; {failure}' if failure else ''}"
    )
    record_row(
        f"API server watch stalled {STALL_S:.0f} s (toxiproxy timeout toxic, an edit meanwhile)",
        load_rate(saga_ids, load_s),
        in_flight_sagas,
        result,
        None if failure else recovery_s,
        detail,
        recovered=failure is None and during == 1,
    )
    platform.record("operator's API server connection stalled", f"converged after the lift: {converged}", recovery_s)
    assert failure is None, f"{failure}; operator log: {operator.log_path}"
    assert during == 1, f"the edit reached the Deployment during the stall ({during} replicas): the stall did not hold"
    assert alive_during, f"the operator exited during the stall; log:\n{log[-3000:]}"
    assert traffic.refused == [], traffic.refused
    assert result.holds, result.summary()


def _replicas(platform: DeployedPlatform, name: str) -> int | None:
    obj = platform.cluster.get("deployment", name, platform.namespace)
    return None if obj is None else int(obj["spec"]["replicas"])


def _converged(platform: DeployedPlatform, deployment: str, generation: int) -> str | None:
    resource = platform.resource()
    status = resource.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    if (
        int(status.get("observedGeneration") or 0) >= generation
        and ready
        and ready[0]["status"] == "True"
        and _replicas(platform, deployment) == 2
    ):
        return f"generation {status['observedGeneration']}, Ready=True, 2 replicas"
    return None


async def _existing(dsn: str, roles: list[str], schemas: list[str]) -> dict[str, list[str]]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        found_roles = await connection.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", roles)
        found_schemas = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", schemas
        )
    finally:
        await connection.close()
    return {"roles": [r["rolname"] for r in found_roles], "schemas": [r["nspname"] for r in found_schemas]}


def _left(small: SmallPlatform, schemas: list[str]) -> dict[str, Any]:
    """Everything of the small platform that still exists."""
    p = small.platform
    left: dict[str, Any] = {"topics": sorted(topics(p.target.host.kafka_bootstrap, p.prefix))}
    left.update(asyncio.run(_existing(p.dsn, small.roles, schemas)))
    for kind in ("secrets", "deployments", "services", "configmaps", "serviceaccounts"):
        left[kind] = [o["metadata"]["name"] for o in objects(p, kind)]
    left["pods"] = [q["metadata"]["name"] for q in p.cluster.list("pods", p.namespace)]
    left["processes"] = sorted(small.processes())
    return {k: v for k, v in left.items() if v}


def test_platform_deleted_while_its_operator_is_down_is_cleaned_up(
    platform: DeployedPlatform, small: SmallPlatform
) -> None:
    seed_fault_stock(platform)
    p = small.platform
    schemas = [s["schema"] for s in p.resource()["status"]["services"] if s.get("schema")]
    small.stop_operator()
    before = _left(small, schemas)
    failure: str | None = None
    gone_s = clean_s = 0.0
    assert {"topics", "roles", "schemas", "secrets", "deployments", "processes"} <= set(before), before
    began = time.monotonic()
    with Traffic(platform, FAULT_SKU) as traffic:
        time.sleep(2)
        in_flight_sagas = in_flight(platform, list(traffic.saga_ids))
        p.cluster.run("-n", p.namespace, "delete", "checkoutplatform", p.name, "--wait=false")
        time.sleep(3)
        held = p.cluster.platform(p.namespace, p.name)
        terminating = held is not None and bool(held["metadata"].get("deletionTimestamp"))
        finalizers = [] if held is None else list(held["metadata"].get("finalizers") or [])
        held_back = _left(small, schemas)
        started = time.monotonic()
        back = small.start_operator()
        operator_s = time.monotonic() - started
        try:
            wait_for(
                "the CheckoutPlatform gone once its operator is back",
                lambda: p.cluster.platform(p.namespace, p.name) is None,
                timeout_s=120,
            )
            gone_s = time.monotonic() - started
            wait_for("nothing of the platform left", lambda: _left(small, schemas) == {}, timeout_s=120, interval_s=1.0)
            clean_s = time.monotonic() - started
        except AssertionError as exc:
            failure = str(exc)
        time.sleep(1)
    load_s = time.monotonic() - began
    saga_ids = list(traffic.saga_ids)
    result = verdict(platform, saga_ids)
    detail = (
        f"operator scaled to 0, kubectl delete: Terminating={terminating} with finalizers {finalizers} and "
        f"{sorted(held_back)} still there after 3 s; operator scaled to 1 (pid {back.pid} ready after "
        f"{operator_s:.1f} s), resource gone after {gone_s:.1f} s, topics/schemas/roles/Secrets/workloads/processes "
        f"gone after {clean_s:.1f} s; load on the main platform; refused initiates: {len(traffic.refused)}"
        f"{f'; NOT CLEANED UP: {failure}' if failure else ''}"
    )
    record_row(
        "CheckoutPlatform deleted while its operator is down (deletionPolicy Delete)",
        load_rate(saga_ids, load_s),
        in_flight_sagas,
        result,
        None if failure else clean_s,
        detail,
        recovered=failure is None and terminating and held_back == before,
    )
    platform.record("platform deleted while its operator was down", "cleaned up, resource gone", clean_s)
    assert failure is None, failure
    assert terminating, f"the resource was not held Terminating: {held}"
    assert FINALIZER in finalizers, finalizers
    assert held_back == before, f"something went while no operator ran: {before} -> {held_back}"
    assert traffic.refused == [], traffic.refused
    assert result.holds, result.summary()
