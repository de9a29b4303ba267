"""The payload codec: protobuf by default, the protobuf JSON mapping accepted, poison named."""

from __future__ import annotations

import json

import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging import codec
from checkout_kit.messaging.codec import JSON, PROTOBUF, PoisonMessageError

SAGA = "6f1c1d55-1f5e-4ad4-9a43-2a1b5f1d9c10"


def samples() -> list[Message]:
    usd = types_pb2.Money(amount_minor=1999, currency="USD")
    line = types_pb2.LineItem(sku="SKU-1", quantity=2, unit_price=usd)
    return [
        commands_pb2.ReserveInventory(saga_id=SAGA, items=[line]),
        commands_pb2.ProcessPayment(saga_id=SAGA, customer_id="c-1", amount=usd, payment_token="tok_visa"),
        commands_pb2.RefundPayment(saga_id=SAGA, payment_id="p-1", amount=usd, reason=types_pb2.FAILURE_CODE_INTERNAL),
        events_pb2.CheckoutInitiated(
            saga_id=SAGA,
            customer_id="c-1",
            items=[line],
            currency="USD",
            initiated_at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5),
        ),
        events_pb2.PaymentFailed(saga_id=SAGA, reason=types_pb2.FAILURE_CODE_PAYMENT_DECLINED, message="déclinée"),
    ]


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
@pytest.mark.parametrize("message", samples(), ids=lambda m: codec.type_name(m))
def test_round_trip(message: Message, content_type: str) -> None:
    payload = codec.encode(message, content_type)
    assert codec.decode(codec.type_name(message), content_type, payload) == message


def test_every_contract_message_is_registered_under_its_full_name() -> None:
    for module in (commands_pb2, events_pb2):
        for name in module.DESCRIPTOR.message_types_by_name:
            assert codec.MESSAGE_TYPES[f"checkout.v1.{name}"] is getattr(module, name)
    assert "checkout.v1.Money" not in codec.MESSAGE_TYPES  # shared types are not messages on the wire


def test_json_is_the_protobuf_json_mapping() -> None:
    message = events_pb2.PaymentProcessed(saga_id=SAGA, payment_id="p-1", amount=types_pb2.Money(amount_minor=5))
    document = json.loads(codec.encode(message, JSON))
    assert document == {"sagaId": SAGA, "paymentId": "p-1", "amount": {"amountMinor": "5"}}


def test_json_from_other_producers_is_accepted_with_snake_case_and_unknown_fields() -> None:
    payload = json.dumps({"saga_id": SAGA, "payment_id": "p-1", "added_later": True}).encode()
    message = codec.decode("checkout.v1.PaymentProcessed", "application/json; charset=utf-8", payload)
    assert message == events_pb2.PaymentProcessed(saga_id=SAGA, payment_id="p-1")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("application/protobuf", PROTOBUF),
        ("application/x-protobuf", PROTOBUF),
        ("application/vnd.google.protobuf", PROTOBUF),
        ("Application/JSON; charset=UTF-8", JSON),
        (" application/json ", JSON),
    ],
)
def test_content_type_aliases_and_parameters(given: str, expected: str) -> None:
    assert codec.normalize_content_type(given) == expected


def test_protobuf_encoding_is_deterministic() -> None:
    message = samples()[0]
    assert codec.encode(message) == codec.encode(message) == message.SerializeToString(deterministic=True)


def test_encoding_in_an_unsupported_content_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unsupported content type"):
        codec.encode(samples()[0], "text/plain")


def poison(ce_type: str, content_type: str, payload: bytes) -> PoisonMessageError:
    with pytest.raises(PoisonMessageError) as caught:
        codec.decode(ce_type, content_type, payload)
    return caught.value


def test_unknown_type() -> None:
    error = poison("checkout.v1.Nope", PROTOBUF, b"")
    assert error.reason == "unknown-type"
    assert "checkout.v1.Nope" in error.detail


def test_unsupported_content_type() -> None:
    error = poison("checkout.v1.OrderCreated", "text/plain", b"hello")
    assert error.reason == "unsupported-content-type"


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        (PROTOBUF, b"\xff\xff\xff\xff"),  # a truncated varint
        (PROTOBUF, b"\x0a\x05ab"),  # a length-delimited field longer than the payload
        (JSON, b"{not json"),
        (JSON, b'{"sagaId": 12}'),  # wrong type
        (JSON, b"\xff\xfe"),  # not UTF-8
    ],
)
def test_undecodable(content_type: str, payload: bytes) -> None:
    error = poison("checkout.v1.OrderCreationFailed", content_type, payload)
    assert error.reason == "undecodable"
    assert str(error).startswith("undecodable: checkout.v1.OrderCreationFailed")
