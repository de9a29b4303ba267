"""Which CreateOrder commands are valid, and how they are read."""

from __future__ import annotations

import uuid

import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import Money
from checkout_order.commands import CreateOrder, OrderLine, parse

SAGA = str(uuid.uuid4())
PAYMENT = uuid.uuid4()


def envelope(message: object, saga_id: str = SAGA) -> Envelope:
    return Envelope(message=message, saga_id=saga_id, source="test")  # type: ignore[arg-type]


def line(sku: str, quantity: int, price: int | None = None, currency: str = "EUR") -> types_pb2.LineItem:
    if price is None:
        return types_pb2.LineItem(sku=sku, quantity=quantity)
    return types_pb2.LineItem(
        sku=sku, quantity=quantity, unit_price=types_pb2.Money(amount_minor=price, currency=currency)
    )


def order(*items: types_pb2.LineItem, total: int = 1_500, **overrides: object) -> commands_pb2.CreateOrder:
    fields: dict[str, object] = {
        "saga_id": SAGA,
        "customer_id": "cust_42",
        "items": list(items),
        "total": types_pb2.Money(amount_minor=total, currency="EUR"),
        "payment_id": str(PAYMENT),
    }
    fields.update(overrides)
    return commands_pb2.CreateOrder(**fields)  # type: ignore[arg-type]


def test_a_priced_order() -> None:
    command = parse(envelope(order(line("SKU-A", 2, 250), line("SKU-B", 1, 1_000))), max_lines=10)
    assert command == CreateOrder(
        uuid.UUID(SAGA),
        "cust_42",
        (OrderLine("SKU-A", 2, 250), OrderLine("SKU-B", 1, 1_000)),
        Money(1_500, "EUR"),
        PAYMENT,
    )


def test_unpriced_lines_are_accepted_without_a_sum_check_and_the_payment_id_is_optional() -> None:
    command = parse(envelope(order(line("SKU-A", 2), total=999, payment_id="")), max_lines=10)
    assert command.lines == (OrderLine("SKU-A", 2, None),)
    assert command.payment_id is None


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (order(), "no items"),
        (order(line("SKU-A", 0, 0), total=0), "quantity 0"),
        (order(line("bad sku", 1, 1_500)), "is not a SKU"),
        (order(line("SKU-A", 1, 1_500, currency="USD")), "priced in USD"),
        (order(line("SKU-A", 1, 1_499)), "add up to 1499"),
        (order(line("SKU-A", 1, 1_500), total=-1), "amount_minor -1"),
        (order(line("SKU-A", 1, 1_500), customer_id=""), "customer_id"),
        (order(line("SKU-A", 1, 1_500), saga_id=""), "no saga_id"),
        (order(line("SKU-A", 1, 1_500), payment_id="pay-1"), "payment_id"),
        (commands_pb2.CreateOrder(saga_id=SAGA, customer_id="c", items=[line("SKU-A", 1)]), "no total"),
    ],
)
def test_invalid_commands_raise_invalid_message(message: object, detail: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(envelope(message), max_lines=10)
    assert caught.value.reason == "invalid-payload"
    assert detail in caught.value.detail


def test_too_many_lines_are_invalid() -> None:
    with pytest.raises(InvalidMessageError, match="at most 1"):
        parse(envelope(order(line("A", 1), line("B", 1), total=0)), max_lines=1)


def test_a_message_that_is_not_create_order_is_unexpected() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(envelope(events_pb2.OrderCreated(saga_id=SAGA)), max_lines=10)
    assert caught.value.reason == "unexpected-type"
