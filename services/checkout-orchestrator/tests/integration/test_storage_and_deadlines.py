"""The saga store on the real PostgreSQL: optimistic versions, the timeline, claiming overdue sagas.

No Kafka here: the deadline scanner's commands stop at the outbox, which is where its job ends.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from checkout.v1 import events_pb2, types_pb2
from checkout_kit.db import create_engine, session_factory
from checkout_kit.migrations import upgrade_to_head
from checkout_kit.topics import Topics
from checkout_orchestrator.config import DeadlineScannerSettings, OrchestratorDatabaseSettings
from checkout_orchestrator.domain import rules
from checkout_orchestrator.domain.state import SagaState
from checkout_orchestrator.handlers.deadlines import DeadlineScanner
from checkout_orchestrator.handlers.outcomes import OutcomeWriter
from checkout_orchestrator.main import MIGRATIONS
from checkout_orchestrator.storage import sagas
from checkout_orchestrator.storage.sagas import SagaConflictError
from checkout_orchestrator.storage.tables import outbox, saga_steps

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = rules.Policy(step_timeout=dt.timedelta(seconds=5), max_attempts=2)
WRITER = OutcomeWriter(Topics("store-test"), "checkout-orchestrator")


@pytest.fixture
async def sessions(postgres_dsn: str, schema: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    database = OrchestratorDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema)
    await upgrade_to_head(database, MIGRATIONS)
    engine = create_engine(database)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def started(sessions: async_sessionmaker[AsyncSession], at: dt.datetime = T0) -> str:
    """A saga waiting for its reservation, with a deadline at ``at + 5 s``."""
    saga_id = str(uuid.uuid4())
    initiated = events_pb2.CheckoutInitiated(
        saga_id=saga_id,
        customer_id="cust_1",
        currency="EUR",
        payment_token="tok_visa",
        items=[types_pb2.LineItem(sku="SKU-1", quantity=1)],
    )
    async with sessions() as session, session.begin():
        assert await WRITER.store_new(session, rules.start(initiated, at, POLICY), at, trace_id="ab" * 16)
    return saga_id


async def test_a_stale_write_is_refused_and_the_fresh_one_wins(sessions) -> None:
    saga_id = await started(sessions)
    async with sessions() as session:
        first = await sagas.load(session, saga_id)
        second = await sagas.load(session, saga_id)
    assert first is not None
    assert second is not None
    assert first.version == 0

    reserved = events_pb2.InventoryReserved(saga_id=saga_id, reservation_id="res-1")
    async with sessions() as session, session.begin():
        await WRITER.store_change(session, rules.on_event(first, reserved, T0, POLICY), T0)
    with pytest.raises(SagaConflictError, match="no longer at version 0"):
        async with sessions() as session, session.begin():
            await WRITER.store_change(session, rules.on_deadline(second, T0 + dt.timedelta(seconds=6), POLICY), T0)

    async with sessions() as session:
        stored = await sagas.load(session, saga_id)
        steps = await sagas.timeline(session, uuid.UUID(saga_id))
        commands = (await session.execute(select(func.count()).select_from(outbox))).scalar_one()
    assert stored is not None
    assert (stored.state, stored.version, stored.reservation_id) == (SagaState.PAYMENT_PENDING, 1, "res-1")
    assert [step.event for step in steps][-2:] == ["InventoryReserved", "ProcessPayment sent"]
    assert commands == 2  # ReserveInventory, ProcessPayment: the refused deadline's re-send rolled back


async def test_a_second_insert_of_the_same_saga_writes_nothing(sessions) -> None:
    saga_id = await started(sessions)
    initiated = events_pb2.CheckoutInitiated(
        saga_id=saga_id, customer_id="other", currency="USD", items=[types_pb2.LineItem(sku="X", quantity=9)]
    )
    async with sessions() as session, session.begin():
        assert not await WRITER.store_new(session, rules.start(initiated, T0, POLICY), T0)
    async with sessions() as session:
        record = await sagas.find(session, uuid.UUID(saga_id))
        steps = (await session.execute(select(func.count()).select_from(saga_steps))).scalar_one()
    assert record is not None
    assert (record.saga.customer_id, record.trace_id) == ("cust_1", "ab" * 16)
    assert steps == 3


async def test_claiming_skips_sagas_another_transaction_holds(sessions) -> None:
    older = await started(sessions, T0)
    newer = await started(sessions, T0 + dt.timedelta(seconds=1))
    now = T0 + dt.timedelta(minutes=1)
    async with sessions() as first, first.begin():
        claimed = await sagas.claim_overdue(first, now)
        assert claimed is not None
        assert claimed.saga_id == older
        async with sessions() as second, second.begin():
            other = await sagas.claim_overdue(second, now)
            assert other is not None
            assert other.saga_id == newer
            assert await sagas.claim_overdue(second, now, skip={newer}) is None
    async with sessions() as session, session.begin():
        assert await sagas.claim_overdue(session, T0) is None  # nothing due yet at T0


async def test_the_scanner_fires_every_overdue_deadline_and_a_broken_saga_holds_up_no_other(sessions) -> None:
    broken = await started(sessions, T0 - dt.timedelta(minutes=5))  # the most overdue, first in line
    healthy = await started(sessions, T0)
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE sagas SET pending = '{\"teleport\": 1}' WHERE saga_id = :id"), {"id": uuid.UUID(broken)}
        )
    scanner = DeadlineScanner(
        sessions, WRITER, POLICY, DeadlineScannerSettings(batch_size=10), clock=lambda: T0 + dt.timedelta(seconds=6)
    )

    assert await scanner.scan() == 1
    assert await scanner.scan() == 0  # the broken one stays set aside, not retried at every scan

    async with sessions() as session:
        fired = await sagas.load(session, healthy)
        steps = await sagas.timeline(session, uuid.UUID(healthy))
    assert fired is not None
    assert fired.pending == {rules.Step.RESERVE_INVENTORY: 2}
    assert fired.deadline_at == T0 + dt.timedelta(seconds=11)
    assert steps[-1].event == "ReserveInventory sent (attempt 2)"


async def test_the_scanner_gives_up_after_max_attempts_and_compensates(sessions) -> None:
    saga_id = await started(sessions, T0)
    at = T0
    scanner_at: list[dt.datetime] = [at]
    scanner = DeadlineScanner(sessions, WRITER, POLICY, clock=lambda: scanner_at[0])
    for _ in range(POLICY.max_attempts):
        scanner_at[0] += dt.timedelta(seconds=6)
        assert await scanner.scan() == 1
    async with sessions() as session:
        saga = await sagas.load(session, saga_id)
        topics = (await session.execute(select(outbox.c.topic).order_by(outbox.c.seq))).scalars().all()
    assert saga is not None
    assert saga.state is SagaState.COMPENSATING
    assert saga.failure_code == "FAILURE_CODE_DEADLINE_EXCEEDED"
    assert topics == ["store-test.inventory-command"] * 3  # reserve, reserve again, release
