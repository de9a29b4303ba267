"""The CloudEvents Kafka protocol binding, binary mode: metadata in headers, the payload as is.

Headers: ``ce_specversion`` (1.0), ``ce_id``, ``ce_type`` (the protobuf full name),
``ce_source`` (the producing service), ``ce_time`` (RFC 3339), ``content-type``; and the saga's
own ``saga_id`` and ``reply_to``, plus the W3C ``traceparent``/``tracestate`` when tracing is on.
The Kafka key is the saga id, so one saga's messages stay ordered in one partition.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from google.protobuf.message import Message

from checkout_kit.messaging import codec
from checkout_kit.messaging.codec import PoisonMessageError

SPEC_VERSION: Final = "1.0"
TRACE_HEADERS: Final = ("traceparent", "tracestate")
OVERSIZED: Final = "oversized"
"""``dlq_reason`` of a record larger than the consumer's ``KafkaSettings.max_message_bytes``."""
KafkaHeaders = list[tuple[str, bytes]]


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> int:
    """Bytes a record carries: key, value, and every header's name and value."""
    return len(key or b"") + len(value or b"") + sum(len(name) + len(raw) for name, raw in headers)


def _uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise PoisonMessageError("invalid-saga-id", f"{what} {value!r} is not a UUID") from error


@dataclass(frozen=True)
class Envelope:
    """One saga message with its CloudEvents metadata."""

    message: Message
    """The decoded payload (a contracts message)."""
    saga_id: str
    """The saga it belongs to (also the Kafka key)."""
    source: str
    """The producing service (``ce_source``)."""
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    """Unique per message; consumers deduplicate on it (``ce_id``)."""
    time: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    """When the message was created (``ce_time``)."""
    reply_to: str | None = None
    """Topic the reply to this command goes to."""
    content_type: str = codec.PROTOBUF
    """How the payload is encoded."""
    trace_headers: Mapping[str, str] = field(default_factory=dict)
    """W3C trace context (``traceparent``, ``tracestate``) carried across Kafka."""

    @property
    def type(self) -> str:
        """The CloudEvents type: the message's protobuf full name."""
        return codec.type_name(self.message)

    def key(self) -> bytes:
        """The Kafka record key."""
        return self.saga_id.encode()

    def headers(self) -> KafkaHeaders:
        """The Kafka record headers of the binary-mode binding."""
        headers: KafkaHeaders = [
            ("ce_specversion", SPEC_VERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
            ("ce_time", self.time.isoformat().replace("+00:00", "Z").encode()),
            ("content-type", self.content_type.encode()),
            ("saga_id", self.saga_id.encode()),
        ]
        if self.reply_to:
            headers.append(("reply_to", self.reply_to.encode()))
        headers.extend((name, value.encode()) for name, value in self.trace_headers.items() if name in TRACE_HEADERS)
        return headers

    def value(self) -> bytes:
        """The Kafka record value: the payload in :attr:`content_type`."""
        return codec.encode(self.message, self.content_type)

    @classmethod
    def from_record(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        *,
        max_bytes: int | None = None,
    ) -> Envelope:
        """Decode a Kafka record; raise :class:`PoisonMessageError` for anything that can never be processed.

        ``max_bytes``: a record larger than this (:func:`record_size`) is refused as :data:`OVERSIZED`
        before anything of it is parsed.
        """
        if max_bytes is not None:
            size = record_size(key, value, headers)
            if size > max_bytes:
                raise PoisonMessageError(OVERSIZED, f"the record carries {size} bytes, above the limit of {max_bytes}")
        try:
            fields = {name: raw.decode("utf-8") for name, raw in headers}
        except UnicodeDecodeError as error:
            raise PoisonMessageError("invalid-headers", f"a header is not UTF-8: {error}") from error
        missing = [h for h in ("ce_id", "ce_type", "ce_source", "ce_specversion", "saga_id") if not fields.get(h)]
        if missing:
            raise PoisonMessageError("missing-headers", f"required CloudEvents headers missing: {', '.join(missing)}")
        if fields["ce_specversion"] != SPEC_VERSION:
            raise PoisonMessageError("unsupported-specversion", f"ce_specversion {fields['ce_specversion']!r}")
        if value is None:
            raise PoisonMessageError("empty-payload", "the record has no value")
        saga_id = _uuid(fields["saga_id"], "saga_id header")
        content_type = codec.normalize_content_type(fields.get("content-type", codec.PROTOBUF))
        message = codec.decode(fields["ce_type"], content_type, value)
        payload_saga = getattr(message, "saga_id", "")
        if payload_saga and _uuid(payload_saga, "payload saga_id") != saga_id:
            raise PoisonMessageError("saga-id-mismatch", f"header saga_id {saga_id} != payload saga_id {payload_saga}")
        if key is not None and key.decode("utf-8", "replace") != fields["saga_id"]:
            raise PoisonMessageError("key-mismatch", "the record key is not the saga id")
        try:
            time = dt.datetime.fromisoformat(fields["ce_time"]) if fields.get("ce_time") else dt.datetime.now(dt.UTC)
        except ValueError as error:
            raise PoisonMessageError("invalid-time", f"ce_time {fields['ce_time']!r} is not RFC 3339") from error
        return cls(
            message=message,
            saga_id=saga_id,
            source=fields["ce_source"],
            id=fields["ce_id"],
            time=time,
            reply_to=fields.get("reply_to") or None,
            content_type=content_type,
            trace_headers={name: fields[name] for name in TRACE_HEADERS if name in fields},
        )
