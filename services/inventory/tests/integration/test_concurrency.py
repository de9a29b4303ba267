"""Never oversell: 20 sagas racing for the last 5 units get exactly 5 reservations."""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack

import httpx
import pytest
from pydantic import SecretStr

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_inventory.commands import Line, Reserve
from checkout_inventory.config import InventoryDatabaseSettings
from checkout_inventory.handlers import reserve
from checkout_kit.db import create_engine, session_factory
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, SchemaReader, command

pytestmark = pytest.mark.integration

SAGAS = 20
UNITS = 5


def _reserve(sku: str, saga_id: str) -> commands_pb2.ReserveInventory:
    return commands_pb2.ReserveInventory(saga_id=saga_id, items=[types_pb2.LineItem(sku=sku, quantity=1)])


async def test_twenty_concurrent_transactions_for_the_last_five_units_hold_exactly_five(
    client: httpx.AsyncClient, postgres_dsn: str, schema: str, database: SchemaReader
) -> None:
    """Twenty reserving transactions open at once on the real database: the row lock serialises them."""
    await client.put("/inventory/SKU-LAST", json={"available": UNITS, "unit_price_minor": 999, "currency": "EUR"})
    # A second SKU locked by every saga, in the opposite request order: sorted locking must not deadlock.
    await client.put("/inventory/SKU-AAA", json={"available": 1_000, "unit_price_minor": 1, "currency": "EUR"})
    engine = create_engine(
        InventoryDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema, pool_size=SAGAS, max_overflow=0)
    )
    sessions = session_factory(engine)
    start = asyncio.Event()

    async def one_saga() -> object:
        await start.wait()
        async with sessions() as session, session.begin():
            lines = (Line("SKU-AAA", 1), Line("SKU-LAST", 1))
            return await reserve(session, Reserve(saga_id=uuid.uuid4(), lines=lines))

    try:
        racing = [asyncio.create_task(one_saga()) for _ in range(SAGAS)]
        start.set()
        outcomes = await asyncio.wait_for(asyncio.gather(*racing), 60)
    finally:
        await engine.dispose()

    held = [o for o in outcomes if isinstance(o, events_pb2.InventoryReserved)]
    refused = [o for o in outcomes if isinstance(o, events_pb2.InventoryReservationFailed)]
    assert len(held) == UNITS
    assert len(refused) == SAGAS - UNITS
    assert {r.reason for r in refused} == {types_pb2.FAILURE_CODE_OUT_OF_STOCK}
    body = (await client.get("/inventory/SKU-LAST")).json()
    assert (body["available"], body["reserved"]) == (0, UNITS)
    assert await database.fetchval("SELECT count(*) FROM reservations WHERE status = 'HELD'") == UNITS
    assert await database.fetchval("SELECT min(available) FROM stock") >= 0


async def test_twenty_sagas_through_kafka_on_three_instances_reserve_exactly_five(
    kafka: Kafka, publisher: Publisher, replies: Replies, settings_for, serve
) -> None:
    """The whole path: four partitions, three inventory instances in one group, twenty commands."""
    await kafka.create(kafka.topics.inventory_command, partitions=4)
    settings = settings_for()
    async with AsyncExitStack() as stack:
        instances = [await stack.enter_async_context(serve(settings)) for _ in range(3)]
        await kafka.wait_group(settings.group_id(), 3)  # each instance owns a partition or two
        admin = instances[0]
        await admin.put("/inventory/SKU-LAST", json={"available": UNITS, "unit_price_minor": 999, "currency": "EUR"})
        sagas = [str(uuid.uuid4()) for _ in range(SAGAS)]
        await asyncio.gather(
            *(
                publisher.publish(
                    kafka.topics.inventory_command, command(_reserve("SKU-LAST", s), reply_to=kafka.replies)
                )
                for s in sagas
            )
        )

        answers = await replies.wait_for_all(sagas, within_s=60)

        stock = (await admin.get("/inventory/SKU-LAST")).json()
    kinds = [answers[s].type for s in sagas]
    assert kinds.count("checkout.v1.InventoryReserved") == UNITS
    assert kinds.count("checkout.v1.InventoryReservationFailed") == SAGAS - UNITS
    assert (stock["available"], stock["reserved"]) == (0, UNITS)
    assert all(len(replies.of(s)) == 1 for s in sagas)
