"""Dead letters: records no consumer can ever process, parked in ``<prefix>.dlq`` with the reason.

The record is copied as it arrived — same key, value and headers — so it can be inspected and,
once the cause is fixed, replayed to its topic unchanged. The failure is described by headers
added alongside (any ``dlq_*`` headers it already carried, from an earlier trip through the
dead-letter topic, are replaced, not repeated):

``dlq_reason``          machine-readable cause (``undecodable``, ``unknown-type``,
                        ``missing-headers``, ``handler-failed`` ...)
``dlq_detail``          human-readable detail (bounded length)
``dlq_topic``, ``dlq_partition``, ``dlq_offset``   where the record was read
``dlq_consumer_group``  who gave up on it
``dlq_failed_at``       when (RFC 3339, UTC)
``dlq_value_omitted``   only on a copy the producer or the broker refused as too large: the
                        original value's size in bytes. That copy carries the key and the
                        ``dlq_*`` headers only; the record itself stays in its topic, at
                        ``dlq_topic``/``dlq_partition``/``dlq_offset``, until retention

Without that last rule a record too large to copy would fail its dead-lettering forever, and the
consumer, which retries a failed DLQ publish without bound, would block its partition behind it.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Final, Protocol

from aiokafka.errors import MessageSizeTooLargeError

from checkout_kit.messaging.producer import Publisher
from checkout_kit.metrics import MessagingMetrics

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX: Final = "dlq_"
MAX_DETAIL_CHARS: Final = 2_000
"""Headers travel with every fetch of the record; a stack-trace-sized detail is cut here."""


class FailedRecord(Protocol):
    """What the dead-letter topic needs of a consumed record (aiokafka's ``ConsumerRecord`` fits)."""

    @property
    def topic(self) -> str:
        """Topic it was read from."""

    @property
    def partition(self) -> int:
        """Partition it was read from."""

    @property
    def offset(self) -> int:
        """Its offset there."""

    @property
    def key(self) -> bytes | None:
        """Original key."""

    @property
    def value(self) -> bytes | None:
        """Original value."""

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]:
        """Original headers."""


def dead_letter_headers(
    record: FailedRecord,
    *,
    reason: str,
    detail: str,
    consumer_group: str,
    failed_at: dt.datetime | None = None,
) -> list[tuple[str, bytes]]:
    """The original headers (minus stale ``dlq_*`` ones) plus the failure description."""
    when = (failed_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 1] + "…"
    headers = [(name, value) for name, value in record.headers if not name.startswith(DLQ_HEADER_PREFIX)]
    headers += [
        ("dlq_reason", reason.encode()),
        ("dlq_detail", detail.encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
        ("dlq_consumer_group", consumer_group.encode()),
        ("dlq_failed_at", when.isoformat(timespec="milliseconds").replace("+00:00", "Z").encode()),
    ]
    return headers


class DeadLetters:
    """Publishes failed records of one consumer group to the dead-letter topic."""

    def __init__(
        self, publisher: Publisher, topic: str, consumer_group: str, *, metrics: MessagingMetrics | None = None
    ) -> None:
        self.publisher = publisher
        self.topic = topic
        """The dead-letter topic (``Topics(prefix).dlq``)."""
        self.consumer_group = consumer_group
        self.metrics = metrics or MessagingMetrics.detached()
        """Counts acknowledged dead letters (``checkout_dead_letters_total``)."""

    async def send(self, record: FailedRecord, reason: str, detail: str) -> None:
        """Publish the record with its failure and wait for the acknowledgement.

        Raises if the broker does not acknowledge: the caller must then not commit the
        record's offset (it retries), so a record is never lost between its topic and the DLQ.
        """
        headers = dead_letter_headers(record, reason=reason, detail=detail, consumer_group=self.consumer_group)
        try:
            await self.publisher.publish_record(self.topic, key=record.key, value=record.value, headers=headers)
        except MessageSizeTooLargeError:
            # Refused by our producer's max_request_size or the broker's max.message.bytes: no retry can
            # change that, so the failure goes to the DLQ without the value (the original keeps it).
            omitted = len(record.value or b"")
            described = [(name, raw) for name, raw in headers if name.startswith(DLQ_HEADER_PREFIX)]
            described.append(("dlq_value_omitted", str(omitted).encode()))
            await self.publisher.publish_record(self.topic, key=record.key, value=b"", headers=described)
            log.warning(
                "dead letter of %s[%d]@%d sent without its %d-byte value (too large to copy)",
                record.topic,
                record.partition,
                record.offset,
                omitted,
            )
        self.metrics.dead_letters.labels(record.topic, reason).inc()
        log.warning(
            "dead-lettered %s[%d]@%d to %s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            self.topic,
            reason,
            detail,
        )
