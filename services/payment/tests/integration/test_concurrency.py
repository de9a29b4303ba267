"""At most one charge per saga, even when two transactions charge the same saga at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from checkout.v1 import events_pb2
from checkout_kit.db import create_engine, session_factory
from checkout_kit.messaging.participant import Money
from checkout_kit.testing import SchemaReader
from checkout_payment.commands import Charge
from checkout_payment.config import PaymentDatabaseSettings
from checkout_payment.handlers import process
from checkout_payment.provider import SimulatedProvider

pytestmark = pytest.mark.integration

RACERS = 10


async def test_concurrent_charges_of_one_saga_charge_once_and_all_get_the_same_answer(
    postgres_dsn: str, schema: str, database: SchemaReader
) -> None:
    """As if ten consumers got the saga's ProcessPayment at once: the unique saga id lets one win.

    The losers' inserts fail on the unique index and roll back; like the consumer, they try
    again, find the winner's charge and answer from it.
    """
    engine = create_engine(
        PaymentDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema, pool_size=RACERS, max_overflow=0)
    )
    sessions = session_factory(engine)
    charge = Charge(uuid.uuid4(), "cust_1", Money(1_234, "EUR"), "tok_visa")
    start = asyncio.Event()
    conflicts = 0

    async def one_consumer() -> object:
        nonlocal conflicts
        await start.wait()
        for _ in range(3):
            try:
                async with sessions() as session, session.begin():
                    return await process(session, charge, SimulatedProvider())
            except IntegrityError:
                conflicts += 1
        raise AssertionError("still conflicting after three tries")

    try:
        racing = [asyncio.create_task(one_consumer()) for _ in range(RACERS)]
        start.set()
        answers = await asyncio.wait_for(asyncio.gather(*racing), 60)
    finally:
        await engine.dispose()

    assert all(isinstance(a, events_pb2.PaymentProcessed) for a in answers)
    assert len({a.payment_id for a in answers}) == 1  # type: ignore[attr-defined]
    assert await database.fetchval("SELECT count(*) FROM charges") == 1
    assert conflicts <= RACERS - 1
