"""Dead-letter headers: the original record kept whole, the failure described beside it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from aiokafka.errors import MessageSizeTooLargeError

from checkout_kit.messaging.dead_letters import MAX_DETAIL_CHARS, DeadLetters, dead_letter_headers


@dataclass
class Record:
    topic: str = "checkout.payment-command"
    partition: int = 3
    offset: int = 41
    key: bytes | None = b"saga"
    value: bytes | None = b"\x00\x01"
    headers: list[tuple[str, bytes]] = field(default_factory=lambda: [("ce_id", b"m-1"), ("x", b"\xff")])


def test_original_headers_come_first_then_the_failure() -> None:
    when = dt.datetime(2025, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    headers = dead_letter_headers(
        Record(), reason="undecodable", detail="bad bytes", consumer_group="payment", failed_at=when
    )
    assert headers == [
        ("ce_id", b"m-1"),
        ("x", b"\xff"),
        ("dlq_reason", b"undecodable"),
        ("dlq_detail", b"bad bytes"),
        ("dlq_topic", b"checkout.payment-command"),
        ("dlq_partition", b"3"),
        ("dlq_offset", b"41"),
        ("dlq_consumer_group", b"payment"),
        ("dlq_failed_at", b"2025-05-06T07:08:09.123Z"),
    ]


def test_a_replayed_dead_letter_does_not_accumulate_old_failure_headers() -> None:
    record = Record(headers=[("ce_id", b"m-1"), ("dlq_reason", b"old"), ("dlq_offset", b"1")])
    headers = dead_letter_headers(record, reason="handler-failed", detail="boom", consumer_group="g")
    names = [name for name, _ in headers]
    assert names.count("dlq_reason") == 1
    assert names.count("dlq_offset") == 1
    assert dict(headers)["dlq_reason"] == b"handler-failed"


def test_failed_at_is_utc_and_defaults_to_now() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    failed_at = dict(dead_letter_headers(Record(), reason="r", detail="d", consumer_group="g"))["dlq_failed_at"]
    assert failed_at.endswith(b"Z")
    assert dt.datetime.fromisoformat(failed_at.decode()) >= before


def test_long_details_are_cut() -> None:
    detail = dict(dead_letter_headers(Record(), reason="r", detail="x" * 50_000, consumer_group="g"))["dlq_detail"]
    assert len(detail.decode()) == MAX_DETAIL_CHARS
    assert detail.decode().endswith("…")


class RefusesLargeRecords:
    """A publisher whose producer takes records up to ``limit`` bytes, like aiokafka's max_request_size."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    async def publish_record(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)
        if size > self.limit:
            raise MessageSizeTooLargeError(f"{size} bytes")
        self.sent.append((topic, key, value, headers))


async def test_a_record_too_large_to_copy_is_dead_lettered_without_its_value() -> None:
    """Otherwise its dead-lettering would fail forever and block the partition behind it."""
    publisher = RefusesLargeRecords(limit=4_096)
    letters = DeadLetters(publisher, "checkout.dlq", "payment")  # type: ignore[arg-type]
    record = Record(value=b"x" * 10_000, headers=[("ce_id", b"m-1"), ("big", b"y" * 3_000)])
    await letters.send(record, "oversized", "too big")
    [(topic, key, value, headers)] = publisher.sent
    assert (topic, key, value) == ("checkout.dlq", b"saga", b"")
    described = dict(headers)
    assert described["dlq_reason"] == b"oversized"
    assert described["dlq_value_omitted"] == b"10000"
    assert described["dlq_offset"] == b"41"
    assert "big" not in described


async def test_a_record_that_fits_is_copied_whole() -> None:
    publisher = RefusesLargeRecords(limit=1_000_000)
    letters = DeadLetters(publisher, "checkout.dlq", "payment")  # type: ignore[arg-type]
    await letters.send(Record(value=b"x" * 10_000), "oversized", "too big")
    [(_, _, value, headers)] = publisher.sent
    assert value == b"x" * 10_000
    assert "dlq_value_omitted" not in dict(headers)
    assert dict(headers)["ce_id"] == b"m-1"
