"""The operator rows of the fault matrix on the deployed platform, under a steady checkout load.

1. The operator SIGKILLed in the middle of a reconcile pass (its process, as the node agent runs it; not its
   Pod): the agent restarts the container, the edit converges, nothing is duplicated or orphaned.
2. Child objects deleted by hand (a Deployment, a Service, a ConfigMap and a generated Secret): the operator
   puts each back, and every running process can still log in to PostgreSQL with what it holds.

Each row waits for every saga of its load to be terminal, runs the invariant checker, waits for the consumer
groups to drain and records a row in the reliability ledger (``operator_faults``).
"""

from __future__ import annotations

import base64
import os
import signal
import time

import pytest
from deployed import DeployedPlatform, Traffic
from kubernetes import client, config
from operator_faults import (
    FAULT_SKU,
    database_logins,
    in_flight,
    load_rate,
    objects,
    operator_container,
    process_alive,
    record_row,
    seed_fault_stock,
    verdict,
    wait_for,
)

from checkout_stack.platform_install import InstallError

pytestmark = pytest.mark.integration

MANAGED = ("deployments", "services", "configmaps", "serviceaccounts")
LOGIN_WAIT_S = 90.0
"""How long the processes get to log in with what they hold once the objects are back (a roll included)."""


def _apps(platform: DeployedPlatform) -> client.AppsV1Api:
    return client.AppsV1Api(config.new_client_from_config(config_file=str(platform.cluster.kubeconfig)))


def _no_duplicates_or_orphans(platform: DeployedPlatform) -> list[str]:
    """What is wrong with the platform's objects: each owned once by the resource, one live ReplicaSet and
    exactly ``replicas`` Pods per Deployment, one Secret per service, one operator Pod."""
    problems: list[str] = []
    uid = platform.resource()["metadata"]["uid"]
    services = [s["name"] for s in platform.resource()["status"]["services"] if s.get("enabled")]
    wanted = {platform.workload(s) for s in services}
    for kind in MANAGED:
        found = objects(platform, kind)
        names = sorted(o["metadata"]["name"] for o in found)
        if kind in ("deployments", "services") and set(names) != wanted:
            problems.append(f"{kind}: {names}, expected {sorted(wanted)}")
        for obj in found:
            owners = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
            if len(owners) != 1 or owners[0]["uid"] != uid:
                problems.append(f"{kind} {obj['metadata']['name']}: controller owners {owners}")
    secrets = sorted(o["metadata"]["name"] for o in objects(platform, "secrets"))
    if secrets != sorted(f"{platform.name}-{s}-database" for s in services):
        problems.append(f"Secrets {secrets}")
    replica_sets = platform.cluster.list("replicasets", platform.namespace)
    pods = [p for p in platform.cluster.list("pods", platform.namespace) if not p["metadata"].get("deletionTimestamp")]
    for deployment in objects(platform, "deployments"):
        name, replicas = deployment["metadata"]["name"], int(deployment["spec"]["replicas"])
        live = [
            rs["metadata"]["name"]
            for rs in replica_sets
            if any(r["uid"] == deployment["metadata"]["uid"] for r in rs["metadata"].get("ownerReferences") or [])
            and int(rs["spec"].get("replicas") or 0) > 0
        ]
        if len(live) != min(replicas, 1):
            problems.append(f"Deployment {name}: live ReplicaSets {live} for {replicas} replicas")
        selector = deployment["spec"]["selector"]["matchLabels"]
        mine = [p for p in pods if all(p["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        if len(mine) != replicas:
            problems.append(f"Deployment {name}: {len(mine)} Pods for {replicas} replicas")
    if len(platform.operator_pods()) != 1:
        problems.append(f"operator Pods {[p['metadata']['name'] for p in platform.operator_pods()]}")
    return problems


def test_operator_sigkilled_mid_reconcile_converges_and_loses_no_saga(platform: DeployedPlatform) -> None:
    seed_fault_stock(platform)
    apps = _apps(platform)
    before = operator_container(platform.target.processes(platform.system_namespace) or {})
    assert before is not None, "the operator's container is not running"
    assert before.pid is not None, f"the operator's container has no process: {before}"
    gateway, cart = platform.workload("gateway-bff"), platform.workload("cart")
    replicas = {n: int(apps.read_namespaced_deployment(n, platform.namespace).spec.replicas) for n in (gateway, cart)}
    assert replicas[gateway] >= 2, replicas
    wanted = {gateway: replicas[gateway] - 1, cart: 0}
    failure: str | None = None
    restarted_s = ready_s = converged_s = 0.0
    back = None
    began = time.monotonic()
    with Traffic(platform, FAULT_SKU) as traffic:
        time.sleep(3)
        # The edit: one gateway replica fewer and no cart (scaling down keeps the row short: no process has to
        # start). The pass applies the services in order (gateway, orchestrator, inventory, payment, order,
        # cart), then prunes, then writes the status: the kill lands as soon as the gateway's Deployment has
        # changed, with five services and the status still to come.
        generation = int(platform.resource()["metadata"]["generation"]) + 1
        platform.patch({"spec": {"services": {"gateway-bff": {"replicas": wanted[gateway]},
                                              "cart": {"replicas": wanted[cart]}}}})  # fmt: skip
        deadline = time.monotonic() + 30
        while apps.read_namespaced_deployment(gateway, platform.namespace).spec.replicas == replicas[gateway]:
            assert time.monotonic() < deadline, "the operator never applied the edit to the gateway's Deployment"
            time.sleep(0.01)
        os.kill(before.pid, signal.SIGKILL)
        killed = time.monotonic()
        at_kill = platform.resource()
        cart_at_kill = int(apps.read_namespaced_deployment(cart, platform.namespace).spec.replicas)
        in_flight_sagas = in_flight(platform, list(traffic.saga_ids))
        observed_at_kill = int((at_kill.get("status") or {}).get("observedGeneration") or 0)
        try:
            assert observed_at_kill < generation, (
                "the pass had already written its status when the kill landed: not a mid-reconcile kill"
            )
            assert not process_alive(before.pid), f"pid {before.pid} survived SIGKILL"
            back = wait_for(
                "the operator's container restarted by the node agent",
                lambda: (
                    (c := operator_container(platform.target.processes(platform.system_namespace) or {})) is not None
                    and c.pid not in (None, before.pid)
                    and c.ready
                    and c
                ),
                timeout_s=90,
            )
            restarted_s = time.monotonic() - killed
            platform.wait_ready(timeout_s=120)
            ready_s = time.monotonic() - killed
            platform.target.wait_workloads(platform.namespace, timeout_s=120)
            converged_s = time.monotonic() - killed
        except (AssertionError, InstallError) as exc:
            failure = str(exc)
        time.sleep(2)
    load_s = time.monotonic() - began
    saga_ids = list(traffic.saga_ids)
    result = verdict(platform, saga_ids)
    problems = _no_duplicates_or_orphans(platform)
    deployments = {n: int(apps.read_namespaced_deployment(n, platform.namespace).spec.replicas) for n in wanted}
    resource = platform.resource()
    detail = (
        f"edit: gateway-bff {replicas[gateway]}->{wanted[gateway]}, cart {replicas[cart]}->0 replicas; killed pid "
        f"{before.pid} with the gateway applied, cart still at {cart_at_kill}, status at generation "
        f"{observed_at_kill} < {generation}; container back (pid {back and back.pid}, restarts {before.restarts}->"
        f"{back and back.restarts}) after {restarted_s:.1f} s, Ready=True after {ready_s:.1f} s, processes match "
        f"after {converged_s:.1f} s; duplicates/orphans: {problems or 'none'}; refused initiates: "
        f"{len(traffic.refused)}{f'; NOT RECOVERED: {failure}' if failure else ''}"
    )
    record_row(
        "operator SIGKILLed mid-reconcile (replica edit of two services)",
        load_rate(saga_ids, load_s),
        in_flight_sagas,
        result,
        None if failure else converged_s,
        detail,
        recovered=failure is None and not problems,
    )
    platform.record(
        "operator SIGKILLed mid-reconcile", f"{len(saga_ids)} sagas: {result.report.summary()}", converged_s
    )
    assert failure is None, failure
    assert back is not None
    assert deployments == wanted, deployments
    assert resource["status"]["observedGeneration"] == resource["metadata"]["generation"] >= generation
    assert back.restarts == before.restarts + 1, (before, back)
    assert problems == [], problems
    assert traffic.refused == [], traffic.refused
    assert len(saga_ids) >= 10, "the load never got going"
    assert result.holds, result.summary()


def _uid(platform: DeployedPlatform, kind: str, name: str) -> str | None:
    obj = platform.cluster.get(kind, name, platform.namespace)
    return None if obj is None else str(obj["metadata"]["uid"])


def _password(platform: DeployedPlatform, name: str) -> str:
    secret = platform.cluster.get("secret", name, platform.namespace)
    assert secret is not None, f"no Secret {name}"
    return base64.b64decode(secret["data"]["password"]).decode()


def _pods_of(platform: DeployedPlatform, service: str) -> set[str]:
    """The Pods of a service the node agent runs."""
    pods = platform.target.processes(platform.namespace) or {}
    return {name for name, pod in pods.items() if pod["labels"].get("checkout.platform.io/service") == service}


def test_deleted_child_objects_come_back_and_every_process_still_logs_in(platform: DeployedPlatform) -> None:
    seed_fault_stock(platform)
    # Deleted in this order: the Secret first, so the pass the Deployment's deletion wakes finds it gone too.
    # The payment's Secret and ConfigMap go while its process keeps running on what it read at start.
    victims = [
        ("secret", f"{platform.name}-payment-database"),
        ("configmap", platform.workload("payment")),
        ("service", platform.workload("order")),
        ("deployment", platform.workload("order")),
    ]
    uids = {victim: _uid(platform, *victim) for victim in victims}
    assert all(uids.values()), uids
    password = _password(platform, f"{platform.name}-payment-database")
    payment_pods = _pods_of(platform, "payment")
    back_s: dict[str, float] = {}
    logins: dict[str, str | None] = {}
    refused: dict[str, str] = {}
    failure: str | None = None
    recreated_s = ready_s = settled_s = 0.0
    began = time.monotonic()
    with Traffic(platform, FAULT_SKU) as traffic:
        time.sleep(3)
        in_flight_sagas = in_flight(platform, list(traffic.saga_ids))
        platform.cluster.run(
            "-n", platform.namespace, "delete", *(f"{kind}/{name}" for kind, name in victims), "--wait=false"
        )
        deleted = time.monotonic()
        try:
            pending = set(victims)
            deadline = deleted + 90
            while pending:
                for victim in sorted(pending):
                    uid = _uid(platform, *victim)
                    if uid is not None and uid != uids[victim]:
                        back_s[f"{victim[0]}/{victim[1]}"] = round(time.monotonic() - deleted, 2)
                        pending.discard(victim)
                assert time.monotonic() < deadline, f"not recreated after 90 s: {sorted(pending)}"
                time.sleep(0.2)
            recreated_s = time.monotonic() - deleted
            platform.wait_ready(timeout_s=120)
            platform.target.wait_workloads(platform.namespace, timeout_s=150)
            ready_s = time.monotonic() - deleted
            # Every process must log in with the URL it holds (the operator resets a role's password to its
            # Secret's, so a Secret recreated with a new password must roll the service's Pods).
            deadline = time.monotonic() + LOGIN_WAIT_S
            while True:
                logins = database_logins(platform.target.processes(platform.namespace) or {})
                refused = {process: why for process, why in logins.items() if why is not None}
                if (logins and not refused) or time.monotonic() > deadline:
                    break
                time.sleep(1.0)
            if not refused:
                platform.target.wait_workloads(platform.namespace, timeout_s=60)
            settled_s = time.monotonic() - deleted
        except (AssertionError, InstallError) as exc:
            failure = str(exc)
        time.sleep(2)
    platform._urls.pop("order", None)  # the recreated Service may answer on a new local proxy port
    load_s = time.monotonic() - began
    saga_ids = list(traffic.saga_ids)
    result = verdict(platform, saga_ids)
    new_password = _password(platform, f"{platform.name}-payment-database")
    detail = (
        f"back after {back_s} s; all back {recreated_s:.1f} s, Ready=True and processes ready {ready_s:.1f} s, "
        f"{len(logins) - len(refused)} of {len(logins)} processes log in with the DATABASE__URL they hold "
        f"{settled_s:.1f} s after the deletion{f' (refused: {refused})' if refused else ''}; payment's password "
        f"{'kept' if new_password == password else 'regenerated'}, its Pods "
        f"{'rolled' if not payment_pods & _pods_of(platform, 'payment') else 'kept'}; refused initiates: "
        f"{len(traffic.refused)}{f'; NOT RECOVERED: {failure}' if failure else ''}"
    )
    record_row(
        "child objects deleted: Secret + ConfigMap of payment, Service + Deployment of order",
        load_rate(saga_ids, load_s),
        in_flight_sagas,
        result,
        None if failure or refused else settled_s,
        detail,
        recovered=failure is None and not refused,
    )
    platform.record("child objects deleted and recreated", f"{len(saga_ids)} sagas: {result.report.summary()}", ready_s)
    assert failure is None, failure
    assert refused == {}, f"processes hold a password their role no longer has: {refused}"
    assert traffic.refused == [], traffic.refused
    assert len(saga_ids) >= 10, "the load never got going"
    assert result.holds, result.summary()
