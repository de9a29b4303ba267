"""`make services`: the launcher migrates and starts the services that exist, and `down` leaves nothing.

The services run from a run directory, database, topic prefix and ports of their own, against
the shared PostgreSQL and Kafka (which this stack finds healthy and so does not start or stop),
so the stack's leftover check sees exactly the service processes. Gateway and cart are started:
the two whose packages this test can count on.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from checkout_stack.components.platform_services import TOPIC_NAMES
from checkout_stack.settings import REPO_ROOT, ServicesSettings, StackSettings
from checkout_stack.stack import Stack

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def services_stack(local_stack: Stack, postgres_dsn: str, kafka_bootstrap_servers: str) -> Iterator[Stack]:
    suffix = uuid.uuid4().hex[:8]
    run_dir = REPO_ROOT / ".run" / f"services-{suffix}"
    shared = local_stack.settings
    settings = StackSettings(
        cache_dir=shared.cache_dir,
        run_dir=run_dir,
        postgres=shared.postgres,
        kafka=shared.kafka,
        services=ServicesSettings(
            gateway_port=free_port(),
            orchestrator_port=free_port(),
            inventory_port=free_port(),
            payment_port=free_port(),
            order_port=free_port(),
            cart_port=free_port(),
            enabled=["gateway-bff", "cart"],
            topic_prefix=f"services-test-{suffix}",
            database=f"services_it_{suffix}",
            stop_timeout_s=20,
        ),
    )
    stack = Stack(settings)
    # The shared server's superuser password, so this stack's DSN reaches it.
    secret = stack.postgres.password_file
    secret.parent.mkdir(parents=True, mode=0o700)
    shutil.copyfile(local_stack.postgres.password_file, secret)
    try:
        yield stack
    finally:
        stack.down(["services"])
        stack.services.purge()
        shutil.rmtree(run_dir, ignore_errors=True)


async def _topics(bootstrap_servers: str, prefix: str) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([f"{prefix}.{name}" for name in TOPIC_NAMES])
        return {topic["topic"]: len(topic["partitions"]) for topic in described if topic["error_code"] == 0}
    finally:
        await admin.close()


def test_services_up_serves_each_service_and_down_leaves_no_process(
    services_stack: Stack, kafka_bootstrap_servers: str
) -> None:
    services = services_stack.services
    assert services_stack.leftover_processes() == []
    assert services.healthy() is False

    started = services_stack.up(["services"])

    assert started == [services]
    assert services.healthy()
    env = services_stack.env()
    urls = {name: env[variable] for name, variable in (("gateway-bff", "BFF_URL"), ("cart", "CART_URL"))}
    for url in urls.values():
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["database"] == "ok"
    prefix = services_stack.settings.services.topic_prefix
    assert asyncio.run(_topics(kafka_bootstrap_servers, prefix)) == {f"{prefix}.{name}": 3 for name in TOPIC_NAMES}
    # The gateway reaches the cart it was pointed at, and accepts a checkout.
    created = httpx.post(f"{urls['gateway-bff']}/api/carts", json={"customer_id": "c1", "currency": "EUR"}, timeout=10)
    assert created.status_code == 201, created.text
    accepted = httpx.post(
        f"{urls['gateway-bff']}/api/checkout/initiate",
        json={
            "customer_id": "c1",
            "items": [{"sku": "S", "quantity": 1}],
            "currency": "EUR",
            "payment_token": "tok_visa",
        },
        timeout=10,
    )
    assert accepted.status_code == 202, accepted.text
    running = services_stack.leftover_processes()
    assert {name for name in ("checkout_gateway", "checkout_cart") if any(f"-m {name}" in p for p in running)} == {
        "checkout_gateway",
        "checkout_cart",
    }
    rows = {row.name: row for row in services.statuses()}
    assert set(rows) == {"gateway-bff", "cart"}
    assert all(row.running and row.healthy for row in rows.values())

    # A second `up` finds them healthy and starts nothing.
    assert services_stack.up(["services"]) == []

    services_stack.down(["services"])

    assert services_stack.leftover_processes() == []
    assert not services.healthy()
    log = (services_stack.settings.logs_dir / "gateway-bff.log").read_text()
    assert "Application shutdown complete" in log, "SIGTERM let the gateway drain and stop cleanly"
