"""The CloudEvents Kafka binding (binary mode): headers out, the same envelope back, poison named."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.codec import JSON, PROTOBUF, PoisonMessageError
from checkout_kit.messaging.envelope import OVERSIZED, Envelope, record_size

SAGA = "0b7e4b0e-7f1a-4e55-8d0c-5d8b8f0d2a61"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def envelope(**overrides: object) -> Envelope:
    fields: dict[str, object] = {
        "message": commands_pb2.ReserveInventory(saga_id=SAGA, items=[types_pb2.LineItem(sku="A", quantity=1)]),
        "saga_id": SAGA,
        "source": "checkout-orchestrator",
        "reply_to": "checkout.checkout-events",
        "time": dt.datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC),
        "trace_headers": {"traceparent": TRACEPARENT, "tracestate": "vendor=1"},
    }
    fields.update(overrides)
    return Envelope(**fields)  # type: ignore[arg-type]


def decode(env: Envelope) -> Envelope:
    return Envelope.from_record(env.key(), env.value(), env.headers())


@pytest.mark.parametrize("content_type", [PROTOBUF, JSON])
def test_round_trip(content_type: str) -> None:
    original = envelope(content_type=content_type)
    assert decode(original) == original


def test_headers_of_the_binary_mode_binding() -> None:
    env = envelope()
    headers = dict(env.headers())
    assert headers == {
        "ce_specversion": b"1.0",
        "ce_id": env.id.encode(),
        "ce_type": b"checkout.v1.ReserveInventory",
        "ce_source": b"checkout-orchestrator",
        "ce_time": b"2025-01-02T03:04:05.678000Z",
        "content-type": b"application/protobuf",
        "saga_id": SAGA.encode(),
        "reply_to": b"checkout.checkout-events",
        "traceparent": TRACEPARENT.encode(),
        "tracestate": b"vendor=1",
    }
    assert env.key() == SAGA.encode()
    assert env.type == "checkout.v1.ReserveInventory"


def test_each_message_gets_a_new_id() -> None:
    first, second = envelope(), envelope()
    assert first.id != second.id
    uuid.UUID(first.id)


def test_reply_to_is_omitted_when_unset() -> None:
    names = [name for name, _ in envelope(reply_to=None).headers()]
    assert "reply_to" not in names
    assert decode(envelope(reply_to=None)).reply_to is None


def test_only_w3c_trace_headers_travel() -> None:
    env = envelope(trace_headers={"traceparent": TRACEPARENT, "baggage": "user=secret", "x-b3-traceid": "1"})
    names = [name for name, _ in env.headers()]
    assert "traceparent" in names
    assert "baggage" not in names
    assert "x-b3-traceid" not in names
    assert decode(env).trace_headers == {"traceparent": TRACEPARENT}


def test_a_record_without_key_is_accepted() -> None:
    env = envelope()
    assert Envelope.from_record(None, env.value(), env.headers()) == env


def test_content_type_defaults_to_protobuf_and_is_normalized() -> None:
    env = envelope()
    without = [(name, value) for name, value in env.headers() if name != "content-type"]
    assert Envelope.from_record(env.key(), env.value(), without).content_type == PROTOBUF
    json_env = envelope(content_type=JSON)
    with_params = [
        (name, b"Application/JSON; charset=utf-8" if name == "content-type" else value)
        for name, value in json_env.headers()
    ]
    assert Envelope.from_record(json_env.key(), json_env.value(), with_params).content_type == JSON


def test_missing_time_defaults_to_now() -> None:
    env = envelope()
    headers = [(name, value) for name, value in env.headers() if name != "ce_time"]
    before = dt.datetime.now(dt.UTC)
    assert Envelope.from_record(env.key(), env.value(), headers).time >= before


def test_saga_id_is_normalized() -> None:
    upper = SAGA.upper()
    env = envelope(saga_id=upper, message=events_pb2.OrderCreated(saga_id=SAGA, order_id="o-1"))
    assert Envelope.from_record(None, env.value(), env.headers()).saga_id == SAGA


def replace_header(env: Envelope, name: str, value: bytes | None) -> list[tuple[str, bytes]]:
    headers = [(n, v) for n, v in env.headers() if n != name]
    if value is not None:
        headers.append((name, value))
    return headers


def reason_of(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> str:
    with pytest.raises(PoisonMessageError) as caught:
        Envelope.from_record(key, value, headers)
    assert caught.value.detail
    return caught.value.reason


@pytest.mark.parametrize("name", ["ce_id", "ce_type", "ce_source", "ce_specversion", "saga_id"])
@pytest.mark.parametrize("value", [None, b""], ids=["absent", "empty"])
def test_missing_headers(name: str, value: bytes | None) -> None:
    env = envelope()
    assert reason_of(env.key(), env.value(), replace_header(env, name, value)) == "missing-headers"


def test_no_headers_at_all() -> None:
    assert reason_of(b"k", b"garbage", []) == "missing-headers"


def test_invalid_headers() -> None:
    env = envelope()
    assert reason_of(env.key(), env.value(), replace_header(env, "ce_source", b"\xff\xfe")) == "invalid-headers"


def test_unsupported_specversion() -> None:
    env = envelope()
    assert reason_of(env.key(), env.value(), replace_header(env, "ce_specversion", b"0.3")) == "unsupported-specversion"


def test_empty_payload() -> None:
    env = envelope()
    assert reason_of(env.key(), None, env.headers()) == "empty-payload"


def test_invalid_saga_id() -> None:
    env = envelope()
    assert reason_of(None, env.value(), replace_header(env, "saga_id", b"not-a-uuid")) == "invalid-saga-id"


def test_invalid_saga_id_in_the_payload() -> None:
    env = envelope(message=events_pb2.OrderCreated(saga_id="nope", order_id="o-1"))
    assert reason_of(None, env.value(), env.headers()) == "invalid-saga-id"


def test_saga_id_mismatch() -> None:
    other = str(uuid.uuid4())
    env = envelope(message=events_pb2.OrderCreated(saga_id=other, order_id="o-1"))
    assert reason_of(env.key(), env.value(), env.headers()) == "saga-id-mismatch"


def test_key_mismatch() -> None:
    env = envelope()
    assert reason_of(str(uuid.uuid4()).encode(), env.value(), env.headers()) == "key-mismatch"


def test_invalid_time() -> None:
    env = envelope()
    assert reason_of(env.key(), env.value(), replace_header(env, "ce_time", b"yesterday")) == "invalid-time"


def test_unknown_type() -> None:
    env = envelope()
    assert reason_of(env.key(), env.value(), replace_header(env, "ce_type", b"checkout.v2.Nope")) == "unknown-type"


def test_undecodable_payload() -> None:
    env = envelope()
    assert reason_of(env.key(), b"\xff\xff\xff", env.headers()) == "undecodable"


def test_unsupported_content_type() -> None:
    env = envelope()
    headers = replace_header(env, "content-type", b"text/plain")
    assert reason_of(env.key(), env.value(), headers) == "unsupported-content-type"


def test_a_record_above_the_size_limit_is_refused_before_parsing() -> None:
    env = envelope()
    size = record_size(env.key(), env.value(), env.headers())
    assert Envelope.from_record(env.key(), env.value(), env.headers(), max_bytes=size) == env
    with pytest.raises(PoisonMessageError) as caught:
        Envelope.from_record(env.key(), env.value(), env.headers(), max_bytes=size - 1)
    assert caught.value.reason == OVERSIZED
    assert str(size) in caught.value.detail
    # Refused whatever it holds: garbage without headers is oversized, not missing-headers.
    with pytest.raises(PoisonMessageError) as caught:
        Envelope.from_record(None, b"\x00" * 2_048, [], max_bytes=1_024)
    assert caught.value.reason == OVERSIZED
