"""The inbox against real PostgreSQL: first delivery per consumer, in the caller's transaction."""

from __future__ import annotations

import datetime as dt

import pytest
from kit_harness import Database

from checkout_kit.inbox import first_delivery, forget_before

pytestmark = pytest.mark.integration


async def test_only_the_first_delivery_per_consumer_counts(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        assert await first_delivery(session, "payment", "m-1") is True
        assert await first_delivery(session, "payment", "m-1") is False  # same transaction
    async with database.sessions() as session, session.begin():
        assert await first_delivery(session, "payment", "m-1") is False  # committed before
        assert await first_delivery(session, "order", "m-1") is True  # another consumer's inbox
        assert await first_delivery(session, "payment", "m-2") is True


async def test_a_rolled_back_delivery_is_not_remembered(database: Database) -> None:
    async with database.sessions() as session:
        await session.begin()
        assert await first_delivery(session, "payment", "m-1") is True
        await session.rollback()
    async with database.sessions() as session, session.begin():
        assert await first_delivery(session, "payment", "m-1") is True


async def test_old_entries_can_be_forgotten(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        await first_delivery(session, "payment", "m-1")
    async with database.sessions() as session, session.begin():
        assert await forget_before(session, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)) == 0
        assert await forget_before(session, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)) == 1
    async with database.sessions() as session, session.begin():
        assert await first_delivery(session, "payment", "m-1") is True
