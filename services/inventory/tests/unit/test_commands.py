"""Which inventory commands are valid, and how they are normalised."""

from __future__ import annotations

import uuid

import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_inventory.commands import MAX_QUANTITY, Line, Release, Reserve, parse
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import reason_name, reason_value

SAGA = str(uuid.uuid4())


def envelope(message: object, saga_id: str = SAGA) -> Envelope:
    return Envelope(message=message, saga_id=saga_id, source="test")  # type: ignore[arg-type]


def reserve(*lines: tuple[str, int], saga_id: str = SAGA) -> commands_pb2.ReserveInventory:
    return commands_pb2.ReserveInventory(
        saga_id=saga_id, items=[types_pb2.LineItem(sku=sku, quantity=q) for sku, q in lines]
    )


def test_reserve_merges_repeated_skus_and_sorts_by_sku() -> None:
    command = parse(envelope(reserve(("SKU-B", 1), ("SKU-A", 2), ("SKU-B", 3))), max_lines=10)
    assert command == Reserve(saga_id=uuid.UUID(SAGA), lines=(Line("SKU-A", 2), Line("SKU-B", 4)))


def test_release_with_and_without_a_reservation_id() -> None:
    reservation = uuid.uuid4()
    named = commands_pb2.ReleaseInventory(
        saga_id=SAGA, reservation_id=str(reservation), reason=types_pb2.FAILURE_CODE_DEADLINE_EXCEEDED
    )
    assert parse(envelope(named), max_lines=10) == Release(
        uuid.UUID(SAGA), reservation, types_pb2.FAILURE_CODE_DEADLINE_EXCEEDED
    )
    bare = parse(envelope(commands_pb2.ReleaseInventory(saga_id=SAGA)), max_lines=10)
    assert bare == Release(uuid.UUID(SAGA), None, types_pb2.FAILURE_CODE_UNSPECIFIED)


def test_an_unknown_reason_value_is_kept_as_unspecified() -> None:
    future = commands_pb2.ReleaseInventory(saga_id=SAGA, reason=99)  # type: ignore[arg-type]
    command = parse(envelope(future), max_lines=10)
    assert isinstance(command, Release)
    assert command.reason == types_pb2.FAILURE_CODE_UNSPECIFIED


@pytest.mark.parametrize(
    ("message", "saga_id", "detail"),
    [
        (reserve(("SKU-A", 0)), SAGA, "quantity 0"),
        (reserve(("SKU-A", -3)), SAGA, "quantity -3"),
        (reserve(("SKU-A", MAX_QUANTITY + 1)), SAGA, "between 1 and"),
        (reserve(("SKU-A", MAX_QUANTITY), ("SKU-A", 1)), SAGA, "add up to more than"),
        (reserve(), SAGA, "no items"),
        (reserve(("", 1)), SAGA, "is not a SKU"),
        (reserve(("has space", 1)), SAGA, "is not a SKU"),
        (reserve(("SKU-A", 1), saga_id=""), SAGA, "no saga_id"),
        (reserve(("SKU-A", 1), saga_id="nope"), SAGA, "not a UUID"),
        (reserve(("SKU-A", 1)), str(uuid.uuid4()), "differs from the envelope"),
        (commands_pb2.ReleaseInventory(saga_id=""), SAGA, "no saga_id"),
        (commands_pb2.ReleaseInventory(saga_id=SAGA, reservation_id="r-1"), SAGA, "reservation_id"),
    ],
)
def test_invalid_commands_raise_invalid_message(message: object, saga_id: str, detail: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(envelope(message, saga_id), max_lines=10)
    assert caught.value.reason == "invalid-payload"
    assert detail in caught.value.detail


def test_too_many_skus_are_invalid() -> None:
    with pytest.raises(InvalidMessageError, match="at most 2"):
        parse(envelope(reserve(("A", 1), ("B", 1), ("C", 1))), max_lines=2)


def test_a_message_that_is_not_an_inventory_command_is_unexpected() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(envelope(events_pb2.InventoryReleased(saga_id=SAGA)), max_lines=10)
    assert caught.value.reason == "unexpected-type"


def test_reason_names_round_trip() -> None:
    assert reason_name(types_pb2.FAILURE_CODE_OUT_OF_STOCK) == "FAILURE_CODE_OUT_OF_STOCK"
    assert reason_value("FAILURE_CODE_OUT_OF_STOCK", types_pb2.FAILURE_CODE_INTERNAL) == 1
    assert reason_value(None, types_pb2.FAILURE_CODE_INTERNAL) == types_pb2.FAILURE_CODE_INTERNAL
    assert reason_value("FAILURE_CODE_FROM_THE_FUTURE", types_pb2.FAILURE_CODE_INTERNAL) == 7
