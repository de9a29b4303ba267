"""The checkout platform as a benchmark target: the e2e saga harness's isolated instance under load.

The six services run as processes with their own database, topics and consumer groups, default deadlines
and tracing off. A checkout starts through the gateway over HTTP (``checkout-http``) or by producing
``CheckoutInitiated`` straight to ``<prefix>.checkout-events`` (``checkout-kafka``: the saga without its
HTTP entry point). Latency comes from the orchestrator's own ``created_at``/``finished_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Final

import httpx
from aiokafka import AIOKafkaProducer
from saga_platform import SagaPlatform, checkout_body, launched, seed_stock
from target import Outcome, saga_outcomes

from checkout.v1 import events_pb2, types_pb2
from checkout_invariants import check, snapshot_stock
from checkout_kit.messaging.envelope import Envelope
from checkout_stack.stack import Stack

SKU: Final = "BENCH-SAGA"
SERVICES: Final = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order")


class CheckoutTarget:
    """The platform's saga, entered over HTTP or Kafka."""

    def __init__(self, platform: SagaPlatform, mode: str) -> None:
        self.platform = platform
        self.mode = mode
        self.name = f"checkout-{mode}"
        self.entry = "POST /api/checkout/initiate to the gateway" if mode == "http" else "CheckoutInitiated to Kafka"
        self.dsn = platform.dsn
        self.database = platform.dsn.rsplit("/", 1)[1]
        self.topic_prefix: str | None = platform.prefix
        self.http: httpx.AsyncClient | None = None
        self.producer: AIOKafkaProducer | None = None

    def pgids(self) -> dict[str, int]:
        services = self.platform.stack.services
        found = {}
        for name in SERVICES:
            pid = services.process(services.by_name(name)).pid()
            if pid is not None:
                found[name] = pid
        return found

    async def open(self) -> None:
        if self.mode == "http":
            limits = httpx.Limits(max_connections=500, max_keepalive_connections=100, keepalive_expiry=2.0)
            self.http = httpx.AsyncClient(base_url=self.platform.bff_url, timeout=30, limits=limits)
        else:
            self.producer = AIOKafkaProducer(
                bootstrap_servers=self.platform.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=1
            )
            await self.producer.start()

    async def close(self) -> None:
        if self.http is not None:
            await self.http.aclose()
            self.http = None
        if self.producer is not None:
            await self.producer.stop()
            self.producer = None

    async def start(self, index: int) -> str:
        if self.http is not None:
            body = checkout_body({SKU: 1}, customer=f"cust_bench_{index}")
            response = await self.http.post(
                "/api/checkout/initiate", json=body, headers={"Idempotency-Key": f"bench-{uuid.uuid4()}"}
            )
            if response.status_code != 202:
                raise RuntimeError(f"{response.status_code} {response.text[:200]}")
            return str(response.json()["saga_id"])
        assert self.producer is not None, "open() first"
        saga_id = str(uuid.uuid4())
        now = dt.datetime.now(dt.UTC)
        message = events_pb2.CheckoutInitiated(
            saga_id=saga_id,
            customer_id=f"cust_bench_{index}",
            items=[types_pb2.LineItem(sku=SKU, quantity=1)],
            currency="EUR",
            payment_token="tok_visa",  # noqa: S106 - the simulated provider's test token
        )
        message.initiated_at.FromDatetime(now)
        envelope = Envelope(message=message, saga_id=saga_id, source="bench-saga", time=now)
        await self.producer.send_and_wait(
            self.platform.topic("checkout-events"), envelope.value(), key=envelope.key(), headers=envelope.headers()
        )
        return saga_id

    async def outcomes(self, saga_ids: list[str]) -> list[Outcome]:
        return await saga_outcomes(self.dsn, saga_ids)

    async def verdict(self, saga_ids: list[str]) -> str:
        report = await check(
            self.dsn,
            stock_before=self.platform.stock_before,
            deadline_budget=dt.timedelta(seconds=300),
            saga_ids=saga_ids,
        )
        return report.summary()


@contextlib.contextmanager
def launch(shared: Stack, mode: str) -> Iterator[CheckoutTarget]:
    """An isolated platform instance with a million units of the bench SKU; removed on exit."""
    env = shared.env()
    with launched(shared, env["DATABASE_URL"], env["KAFKA_BOOTSTRAP_SERVERS"]) as platform:
        platform.use_deadlines({})  # the orchestrator's own deadlines
        seed_stock(platform, {SKU: (1_000_000, 100)})
        platform.stock_before = asyncio.run(snapshot_stock(platform.dsn))
        yield CheckoutTarget(platform, mode)
