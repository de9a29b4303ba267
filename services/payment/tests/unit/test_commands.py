"""Which payment commands are valid, and how they are read."""

from __future__ import annotations

import uuid

import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging import InvalidMessageError
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import Money, reason_value
from checkout_payment.commands import Charge, Refund, parse

SAGA = str(uuid.uuid4())


def envelope(message: object, saga_id: str = SAGA) -> Envelope:
    return Envelope(message=message, saga_id=saga_id, source="test")  # type: ignore[arg-type]


def pay(**overrides: object) -> commands_pb2.ProcessPayment:
    fields: dict[str, object] = {
        "saga_id": SAGA,
        "customer_id": "cust_42",
        "amount": types_pb2.Money(amount_minor=4_250, currency="EUR"),
        "payment_token": "tok_visa",
    }
    fields.update(overrides)
    return commands_pb2.ProcessPayment(**fields)  # type: ignore[arg-type]


def test_a_charge() -> None:
    assert parse(envelope(pay())) == Charge(uuid.UUID(SAGA), "cust_42", Money(4_250, "EUR"), "tok_visa")


def test_a_zero_amount_and_an_empty_token_are_valid_the_provider_decides() -> None:
    command = parse(envelope(pay(amount=types_pb2.Money(amount_minor=0, currency="JPY"), payment_token="")))
    assert command == Charge(uuid.UUID(SAGA), "cust_42", Money(0, "JPY"), "")


def test_a_refund_with_and_without_payment_id_and_amount() -> None:
    payment = uuid.uuid4()
    full = commands_pb2.RefundPayment(
        saga_id=SAGA,
        payment_id=str(payment),
        amount=types_pb2.Money(amount_minor=10, currency="EUR"),
        reason=types_pb2.FAILURE_CODE_DEADLINE_EXCEEDED,
    )
    assert parse(envelope(full)) == Refund(
        uuid.UUID(SAGA), payment, Money(10, "EUR"), types_pb2.FAILURE_CODE_DEADLINE_EXCEEDED
    )
    assert parse(envelope(commands_pb2.RefundPayment(saga_id=SAGA))) == Refund(
        uuid.UUID(SAGA), None, None, types_pb2.FAILURE_CODE_UNSPECIFIED
    )


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (pay(amount=types_pb2.Money(amount_minor=1, currency="eur")), "currency 'eur'"),
        (pay(amount=types_pb2.Money(amount_minor=1, currency="EURO")), "currency 'EURO'"),
        (pay(amount=types_pb2.Money(amount_minor=1, currency="")), "currency ''"),
        (pay(amount=types_pb2.Money(amount_minor=-1, currency="EUR")), "amount_minor -1"),
        (commands_pb2.ProcessPayment(saga_id=SAGA, customer_id="c", payment_token="tok_visa"), "no amount"),
        (pay(customer_id=""), "customer_id ''"),
        (pay(customer_id="has space"), "customer_id"),
        (pay(saga_id=""), "no saga_id"),
        (pay(payment_token="t" * 256), "payment_token"),
        (commands_pb2.RefundPayment(saga_id=SAGA, payment_id="p-1"), "payment_id 'p-1'"),
        (
            commands_pb2.RefundPayment(saga_id=SAGA, amount=types_pb2.Money(amount_minor=1, currency="x")),
            "currency 'x'",
        ),
    ],
)
def test_invalid_commands_raise_invalid_message(message: object, detail: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(envelope(message))
    assert caught.value.reason == "invalid-payload"
    assert detail in caught.value.detail


def test_a_message_that_is_not_a_payment_command_is_unexpected() -> None:
    with pytest.raises(InvalidMessageError) as caught:
        parse(envelope(events_pb2.PaymentRefunded(saga_id=SAGA)))
    assert caught.value.reason == "unexpected-type"


def test_stored_reasons_read_back() -> None:
    assert reason_value("FAILURE_CODE_DEADLINE_EXCEEDED", types_pb2.FAILURE_CODE_INTERNAL) == 5
    assert reason_value(None, types_pb2.FAILURE_CODE_INTERNAL) == types_pb2.FAILURE_CODE_INTERNAL
    assert reason_value("NOT_A_CODE", types_pb2.FAILURE_CODE_INTERNAL) == types_pb2.FAILURE_CODE_INTERNAL
