"""The outbox and inbox tables as a service's migrations will create them, and outage detection."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.schema import CreateIndex, CreateTable

from checkout_kit.inbox import inbox_table
from checkout_kit.messaging.consumer import is_outage
from checkout_kit.outbox import outbox_table


def ddl(statement: object) -> str:
    return str(statement.compile(dialect=postgresql.dialect())).strip()  # type: ignore[attr-defined]


def test_both_tables_live_in_the_services_own_metadata_without_a_schema() -> None:
    metadata = MetaData()
    outbox, inbox = outbox_table(metadata), inbox_table(metadata)
    assert set(metadata.tables) == {"outbox", "inbox"}
    assert outbox.schema is None
    assert inbox.schema is None


def test_outbox_columns_and_indexes() -> None:
    outbox = outbox_table(MetaData())
    assert [c.name for c in outbox.primary_key.columns] == ["id"]
    assert {c.name: c.nullable for c in outbox.columns} == {
        "id": False,
        "seq": False,
        "topic": False,
        "key": True,
        "headers": False,
        "payload": False,
        "created_at": False,
        "published_at": True,
        "attempts": False,
        "last_error": True,
    }
    create = ddl(CreateTable(outbox))
    assert "GENERATED ALWAYS AS IDENTITY" in create
    assert "headers JSONB" in create
    assert "payload BYTEA" in create
    indexes = {index.name: ddl(CreateIndex(index)) for index in outbox.indexes}
    assert indexes["ix_outbox_unpublished"].endswith("(seq) WHERE published_at IS NULL")


def test_inbox_primary_key_is_consumer_and_message_id() -> None:
    inbox = inbox_table(MetaData())
    assert [c.name for c in inbox.primary_key.columns] == ["consumer", "message_id"]


class FakeAsyncpgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def wrapped(sqlstate: str) -> DBAPIError:
    orig = FakeAsyncpgError(sqlstate)
    return DBAPIError("SELECT 1", None, orig)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "refused"),
        TimeoutError(),
        wrapped("08006"),  # connection failure
        wrapped("57P01"),  # admin shutdown
        wrapped("57P03"),  # cannot connect now (starting up)
        wrapped("53300"),  # too many connections
        DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True),
    ],
    ids=repr,
)
def test_outages_are_recognized(error: BaseException) -> None:
    assert is_outage(error)


def test_an_outage_deep_in_the_cause_chain_is_recognized() -> None:
    def handler() -> None:
        try:
            raise ConnectionResetError("reset by peer")
        except ConnectionResetError as cause:
            raise RuntimeError("handler could not finish") from cause

    with pytest.raises(RuntimeError) as caught:
        handler()
    assert is_outage(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("bug"),
        ValueError("bad"),
        IntegrityError("INSERT", None, FakeAsyncpgError("23505")),  # unique violation
        wrapped("40001"),  # serialization failure: retried, but counted
        wrapped("57014"),  # statement timeout: counted
    ],
    ids=repr,
)
def test_other_failures_count_against_the_bound(error: BaseException) -> None:
    assert not is_outage(error)
