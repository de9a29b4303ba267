"""`make demo`'s flow for real, twice, on names of its own; then everything it made is removed.

The same code `make demo` runs (:func:`checkout_stack.demo.run_demo`) against the running stack, with
a namespace pair, helm release, database, topic prefix, CheckoutPlatform and node agent of this test's
own (its Service proxies on free ports), so it neither disturbs nor is disturbed by `make demo`'s
platform or an e2e run. The second run must reuse what the first made and run another checkout.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from checkout_stack import demo
from checkout_stack.demo import DemoPlatform
from checkout_stack.stack import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SAGA = re.compile(r"^→ saga (\S+) …$", re.MULTILINE)


@pytest.fixture
def platform(
    local_stack: Stack,
    postgres_dsn: str,
    kafka_bootstrap_servers: str,
    kubeconfig: Path,
    otlp_endpoint: str,
    prometheus_url: str,
    tmp_path: Path,
) -> Iterator[DemoPlatform]:
    """Unique names; afterwards the resource, release, namespaces, agent, database, roles and topics are gone."""
    run_id = uuid.uuid4().hex[:8]
    chosen = DemoPlatform(
        name="demo",
        namespace=f"demo-{run_id}",
        operator_namespace=f"demo-{run_id}-system",
        release=f"demo-{run_id}",
        database=f"demo_{run_id}",
        topic_prefix=f"demo-{run_id}",
        agent_name=f"kubelet-demo-{run_id}",
        state_dir=tmp_path / "agent",
        prefer_service_ports=False,
    )
    try:
        yield chosen
    finally:
        _remove(local_stack, chosen, postgres_dsn, kafka_bootstrap_servers)


def _remove(stack: Stack, platform: DemoPlatform, dsn: str, bootstrap: str) -> None:
    cluster = demo.cluster_of(stack)
    ns = platform.namespace
    roles: list[str] = []
    with contextlib.suppress(Exception):
        obj = cluster.platform(ns, platform.name)
        if obj is not None:
            roles = [s["role"] for s in (obj.get("status") or {}).get("services") or [] if s.get("role")]
            cluster.run(
                "-n", ns, "annotate", "checkoutplatform", platform.name,
                "checkout.platform.io/release-finalizer=true", "--overwrite",
            )  # fmt: skip
            cluster.run("-n", ns, "delete", "checkoutplatform", platform.name, "--timeout=60s")
    if cluster.platform(ns, platform.name) is not None:  # no operator to honour the annotation: let it go
        finalizers = '{"metadata":{"finalizers":null}}'
        cluster.run(
            "-n", ns, "patch", "checkoutplatform", platform.name, "--type", "merge", "-p", finalizers, check=False
        )
    with contextlib.suppress(Exception):
        cluster.helm_run("uninstall", platform.release, "--namespace", platform.operator_namespace, "--wait")
    for namespace in (ns, platform.operator_namespace):
        cluster.run("delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)
    agent = platform.agent(stack.settings.run_dir)
    agent.stop()
    agent.process.log_path.unlink(missing_ok=True)
    asyncio.run(_drop(dsn, platform.database, roles))
    asyncio.run(_delete_topics(bootstrap, platform.topic_prefix))


async def _drop(dsn: str, database: str, roles: list[str]) -> None:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for role in roles:
            await connection.execute(f'DROP ROLE IF EXISTS "{role}"')
    finally:
        await connection.close()


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(f"{prefix}.")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def _run(stack: Stack, platform: DemoPlatform, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """One `make demo`; its output and the saga id of its checkout."""
    demo.run_demo(stack, platform)
    err = capsys.readouterr().err
    sagas = SAGA.findall(err)
    assert len(sagas) == 1, err
    return err, sagas[0]


def _svg(err: str) -> Path:
    match = re.search(r"^SVG: (\S+)$", err, re.MULTILINE)
    assert match, err
    return Path(match.group(1))


def test_the_demo_installs_checks_out_and_traces_then_reruns_on_what_it_made(
    local_stack: Stack, platform: DemoPlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = platform.namespace
    first, saga = _run(local_stack, platform, capsys)
    svg = _svg(first)
    try:
        assert f"release {platform.release} in {platform.operator_namespace}: revision 1, deployed" in first
        assert f"checkoutplatform.checkout.platform.io/{platform.name} created" in first
        assert re.search(r"^  \+\s*\d+\.\ds  ", first, re.MULTILINE), "no progress of the waits"
        table = first.split(f"$ kubectl -n {ns} get checkoutplatforms\n", 1)[1].splitlines()
        assert table[0].split()[:2] == ["NAME", "READY"]
        assert table[1].split()[:2] == [platform.name, "True"]
        pods = first.split(f"$ kubectl -n {ns} get pods -o wide\n", 1)[1].splitlines()
        rows = [line.split() for line in pods[1:] if line.startswith(f"{platform.name}-")]
        # The example's services: gateway-bff x2, orchestrator, inventory, payment, order (cart disabled).
        assert len([r for r in rows if r[2] == "Running"]) == 6, pods
        assert all(r[0].split("-")[1] != "cart" for r in rows)
        assert "COMPLETED" in first
        assert "order id: " in first
        assert svg.is_file()
        waterfall = first.split(f"→ trace of saga {saga} …", 1)[1]
        for service in demo.TRACED_SERVICES:
            assert service in waterfall, f"no {service} span in the waterfall"
        assert f"kubectl -n {ns} describe checkoutplatform {platform.name}" in first
        assert platform.agent(local_stack.settings.run_dir).process.running(), "the platform must keep running"

        second, again = _run(local_stack, platform, capsys)
        _svg(second).unlink(missing_ok=True)
        assert again != saga
        assert "already running (pid " in second
        assert "): reused" in second
        assert "revision 2, deployed" in second
        assert f"checkoutplatform.checkout.platform.io/{platform.name} unchanged" in second
        assert "COMPLETED" in second
    finally:
        svg.unlink(missing_ok=True)
