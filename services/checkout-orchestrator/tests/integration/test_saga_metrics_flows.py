"""The saga metrics of a running orchestrator, against the real Kafka and PostgreSQL.

What ``/metrics`` shows after real sagas — completed, declined and compensated, stuck — and that
redeliveries and rolled-back transactions count nothing. The last test has the stack's real
Prometheus scrape a served orchestrator and answer for ``checkout_sagas_started_total`` and its
exemplars.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import uvicorn
from google.protobuf.message import Message
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.db import create_engine, session_factory
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.testing import wait_until
from checkout_kit.topics import Topics
from checkout_orchestrator.config import OrchestratorDatabaseSettings, OrchestratorSettings, SagaGaugeSettings
from checkout_orchestrator.domain import rules
from checkout_orchestrator.handlers.outcomes import OutcomeWriter
from checkout_orchestrator.main import MIGRATIONS, create_app
from checkout_orchestrator.metrics import SagaMetrics
from checkout_stack.components.prometheus import Prometheus
from checkout_stack.metrics import PrometheusQuery

pytestmark = pytest.mark.integration

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
DECLINED = "tok_chargeDeclined"
"""The payment token the participants the tests play decline (see conftest)."""


class Scrape:
    """One ``GET /metrics`` in the OpenMetrics format, parsed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [sample for family in text_string_to_metric_families(text) for sample in family.samples]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value (0 when absent: a labelled counter appears once incremented)."""
        found = [s.value for s in self.samples if s.name == name and labels.items() <= s.labels.items()]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return float(found[0]) if found else 0.0

    def exemplar_trace_ids(self, name: str, **labels: str) -> set[str]:
        return {
            s.exemplar.labels["trace_id"]
            for s in self.samples
            if s.name == name and labels.items() <= s.labels.items() and s.exemplar is not None
        }


async def scrape(client: httpx.AsyncClient) -> Scrape:
    response = await client.get("/metrics", headers={"accept": OPENMETRICS})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    return Scrape(response.text)


def fast_gauges(settings: OrchestratorSettings) -> OrchestratorSettings:
    return settings.model_copy(update={"saga_gauges": SagaGaugeSettings(refresh_interval_s=0.1)})


def trace_of(envelope: Envelope) -> str:
    return envelope.trace_headers["traceparent"].split("-")[1]


async def redeliver(harness, envelope: Envelope) -> None:
    """Publish ``envelope`` again, as at-least-once delivery may, and wait until the orchestrator is past it."""
    partition, offset = await harness.publish(envelope)
    await harness.wait_consumed(partition, offset)


async def test_a_completed_saga_counts_once_with_its_duration_its_steps_and_its_trace(harness) -> None:
    async with harness.app(fast_gauges(harness.settings())) as client:
        initiated = await harness.initiate()
        saga_id = initiated.saga_id
        await harness.wait_status(client, saga_id, "COMPLETED")
        order_created = harness.participants.replies[saga_id][-1]
        assert isinstance(order_created.message, events_pb2.OrderCreated)
        await redeliver(harness, initiated)  # the same ce_id: the inbox absorbs it
        await redeliver(harness, order_created)
        copy = Envelope(message=order_created.message, saga_id=saga_id, source="test-participant")
        await redeliver(harness, copy)  # a new ce_id: the rules find nothing to change
        metrics = await scrape(client)

        async def nothing_in_flight() -> bool:
            return (await scrape(client)).value("checkout_sagas_in_flight", state="ORDER_CREATION_PENDING") == 0

        await wait_until(nothing_in_flight, "the in-flight gauge is back to 0")

    assert metrics.value("checkout_sagas_started_total") == 1
    assert metrics.value("checkout_sagas_completed_total") == 1
    assert metrics.value("checkout_sagas_failed_total") == 0
    assert metrics.value("checkout_sagas_compensated_total") == 0
    assert metrics.value("checkout_saga_duration_seconds_count", outcome="completed") == 1
    for step in ("reserve_inventory", "process_payment", "create_order"):
        assert metrics.value("checkout_saga_step_duration_seconds_count", step=step) == 1, step
    assert metrics.value("checkout_saga_step_duration_seconds_count", step="refund_payment") == 0
    # The latency links to the checkout's trace (one trace across every Kafka hop).
    assert metrics.exemplar_trace_ids("checkout_saga_duration_seconds_bucket", outcome="completed") == {
        trace_of(initiated)
    }
    topic = harness.kafka.topics.checkout_events
    assert metrics.value("checkout_messages_consumed_total", topic=topic, outcome="duplicate") == 2
    assert metrics.value("checkout_messages_consumed_total", topic=topic, outcome="processed") >= 5
    assert metrics.value("checkout_outbox_published_total", topic=harness.kafka.topics.order_command) == 1


async def test_a_declined_payment_fails_and_compensates_with_its_reason(harness) -> None:
    async with harness.app(fast_gauges(harness.settings())) as client:
        initiated = await harness.initiate(payment=DECLINED)
        final = await harness.wait_status(client, initiated.saga_id, "FAILED")
        metrics = await scrape(client)
    assert final["failure_code"] == "FAILURE_CODE_PAYMENT_DECLINED"

    assert metrics.value("checkout_sagas_started_total") == 1
    assert metrics.value("checkout_sagas_completed_total") == 0
    assert metrics.value("checkout_sagas_failed_total", reason="payment_declined") == 1
    assert metrics.value("checkout_sagas_compensated_total", reason="payment_declined") == 1
    assert metrics.value("checkout_saga_duration_seconds_count", outcome="failed") == 1
    assert metrics.value("checkout_saga_duration_seconds_count", outcome="completed") == 0
    for step in ("reserve_inventory", "process_payment", "release_inventory"):
        assert metrics.value("checkout_saga_step_duration_seconds_count", step=step) == 1, step
    assert metrics.value("checkout_saga_step_duration_seconds_count", step="create_order") == 0


async def test_a_saga_past_its_deadline_budget_is_counted_stuck(harness) -> None:
    answer = harness.participants.answer

    def order_service_down(command: Message) -> Message | None:
        return None if isinstance(command, commands_pb2.CreateOrder) else answer(command)

    harness.participants.answer = order_service_down
    # Budget: 3 steps x 2 attempts x 1 s + 2 compensations x 1 attempt x 0.5 s = 7 s. CreateOrder is
    # re-sent without bound (an order cannot be undone), so the saga stays pending past it.
    settings = harness.settings(
        step_timeout_s=1.0, max_attempts=2, compensation_timeout_s=0.5, max_compensation_attempts=1
    )
    assert settings.saga.policy().deadline_budget == dt.timedelta(seconds=7)
    async with harness.app(fast_gauges(settings)) as client:
        initiated = await harness.initiate()
        await harness.wait_state(client, initiated.saga_id, "ORDER_CREATION_PENDING")

        async def waiting_for_the_order() -> bool:
            return (await scrape(client)).value("checkout_sagas_in_flight", state="ORDER_CREATION_PENDING") == 1

        async def stuck() -> bool:
            return (await scrape(client)).value("checkout_sagas_stuck") == 1

        await wait_until(waiting_for_the_order, "the in-flight gauge shows the saga waiting for its order")
        await wait_until(stuck, "the saga is counted stuck once past its budget", within_s=60)
        metrics = await scrape(client)
    assert metrics.value("checkout_sagas_started_total") == 1
    assert metrics.value("checkout_sagas_completed_total") == 0
    assert metrics.value("checkout_sagas_in_flight", state="PAYMENT_PENDING") == 0


# the writer on its own, inside a span of a real SDK


@pytest.fixture
async def sessions(postgres_dsn: str, schema: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    database = OrchestratorDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema)
    await upgrade_to_head(database, MIGRATIONS)
    engine = create_engine(database)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


def invalid_checkout() -> events_pb2.CheckoutInitiated:
    """A checkout the rules fail at once: the saga starts and ends in one transaction."""
    return events_pb2.CheckoutInitiated(
        saga_id=str(uuid.uuid4()),
        customer_id="cust_1",
        currency="EUR",
        payment_token="tok_visa",
        items=[types_pb2.LineItem(sku="SKU-1", quantity=0)],
    )


async def test_a_transition_counts_at_commit_only_with_the_current_span_as_exemplar(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    registry = CollectorRegistry()
    writer = OutcomeWriter(Topics("metrics-test"), "checkout-orchestrator", metrics=SagaMetrics.of(registry))
    tracer = TracerProvider().get_tracer("saga-metrics-test")  # sampled spans, without touching the global provider
    now = dt.datetime.now(dt.UTC)

    async with sessions() as session:
        await session.begin()
        assert await writer.store_new(session, rules.start(invalid_checkout(), now, rules.Policy()), now)
        await session.rollback()  # as when the version check, the inbox or the process fails the transaction
    assert registry.get_sample_value("checkout_sagas_started_total") == 0

    with tracer.start_as_current_span("checkout") as span:
        async with sessions() as session, session.begin():
            assert await writer.store_new(session, rules.start(invalid_checkout(), now, rules.Policy()), now)
            assert registry.get_sample_value("checkout_sagas_started_total") == 0  # not committed yet
    trace_id = format(span.get_span_context().trace_id, "032x")

    assert registry.get_sample_value("checkout_sagas_started_total") == 1
    assert registry.get_sample_value("checkout_sagas_failed_total", {"reason": "invalid_request"}) == 1
    exposition = generate_latest(registry).decode()
    bucket = next(
        line
        for line in exposition.splitlines()
        if line.startswith('checkout_saga_duration_seconds_bucket{le="0.05",outcome="failed"}')
    )
    assert f' 1.0 # {{trace_id="{trace_id}"}} 0.0' in bucket


# the stack's Prometheus scraping a served orchestrator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def served(settings: OrchestratorSettings) -> AsyncIterator[str]:
    """The orchestrator on a loopback port, as a scrape target sees it; yields ``host:port``."""
    await upgrade_to_head(settings.database, MIGRATIONS)
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: _started(server, task), f"the orchestrator serves on 127.0.0.1:{port}")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()  # raises why it could not start
        raise AssertionError("the server stopped before it started")
    return bool(server.started)


@pytest.fixture
def scrape_target(prometheus: Prometheus) -> Iterator[tuple[Prometheus, str]]:
    """A target file of this test's own (removed afterwards) and the label telling its series apart."""
    run = uuid.uuid4().hex[:12]
    yield prometheus, run
    prometheus.remove_targets(f"orch-it-{run}")


async def test_the_stacks_prometheus_scrapes_the_saga_counters_and_their_exemplars(
    harness, scrape_target: tuple[Prometheus, str], prometheus_query: PrometheusQuery, prometheus_url: str
) -> None:
    prometheus, run = scrape_target
    async with served(harness.settings()) as address, httpx.AsyncClient(base_url=f"http://{address}") as client:
        prometheus.add_targets("checkout-orchestrator", [address], {"test_run": run}, name=f"orch-it-{run}")
        initiated = await harness.initiate()
        await harness.wait_status(client, initiated.saga_id, "COMPLETED")
        selector = f'job="checkout-orchestrator",test_run="{run}"'
        started = await asyncio.to_thread(
            prometheus_query.wait_for,
            f"checkout_sagas_started_total{{{selector}}}",
            lambda result: any(float(s["value"][1]) == 1 for s in result),
            timeout_s=90,
        )
        completed = await asyncio.to_thread(
            prometheus_query.wait_for,
            f"checkout_sagas_completed_total{{{selector}}}",
            lambda result: any(float(s["value"][1]) == 1 for s in result),
            timeout_s=60,
        )
        exemplars = await asyncio.to_thread(
            _exemplars, prometheus_url, f"checkout_saga_duration_seconds_bucket{{{selector}}}", trace_of(initiated)
        )
    assert started[0]["metric"]["instance"] == address
    assert completed
    assert trace_of(initiated) in exemplars


def _exemplars(prometheus_url: str, query: str, trace_id: str, timeout_s: float = 60) -> set[str]:
    """The trace ids Prometheus stored as exemplars of ``query`` (``/api/v1/query_exemplars``), once ``trace_id`` is."""
    deadline = time.monotonic() + timeout_s
    found: set[str] = set()
    while time.monotonic() < deadline:
        now = time.time()
        response = httpx.get(
            f"{prometheus_url}/api/v1/query_exemplars",
            params={"query": query, "start": now - 600, "end": now + 60},
            timeout=5,
        )
        response.raise_for_status()
        found = {
            exemplar["labels"]["trace_id"]
            for series in response.json()["data"]
            for exemplar in series["exemplars"]
            if "trace_id" in exemplar["labels"]
        }
        if trace_id in found:
            return found
        time.sleep(1)
    raise AssertionError(f"no exemplar with trace_id {trace_id} for {query} within {timeout_s:g}s; found {found}")
