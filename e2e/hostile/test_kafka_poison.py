"""Hostile records on every consumed topic go to the dead-letter topic with a reason, and block nothing.

On the orchestrator's events topic and on each participant's command topic, on every partition,
ahead of a real checkout: a malformed record (no CloudEvents headers, garbage value), an oversized
one (valid headers, a value above the consumers' ``KAFKA__MAX_MESSAGE_BYTES``), one of an unknown
type, and two with a content type no consumer speaks (``text/plain``, ``application/xml``). Each
must reach ``<prefix>.dlq`` once per partition with its ``dlq_reason`` and the consumer group that
gave up on it, and the checkout started right after them must still complete — through every one of
those topics, so no partition was blocked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Final

import pytest
from chaos_ledger import record_check
from saga_platform import Client, SagaPlatform, checkout_body, outcome, publish_raw, read_dead_letters

pytestmark = pytest.mark.integration

OVERSIZED_BYTES: Final = 300 * 1024
"""Above the consumers' default limit (256 KiB), below the broker's (1 MiB), so the broker takes it."""

CONSUMERS: Final = {
    "checkout-events": ("checkout-orchestrator", "checkout.v1.InventoryReserved"),
    "inventory-command": ("inventory", "checkout.v1.ReserveInventory"),
    "payment-command": ("payment", "checkout.v1.ProcessPayment"),
    "order-command": ("order", "checkout.v1.CreateOrder"),
}
"""Topic (without prefix) → (the service consuming it, a type it really takes)."""


@dataclass(frozen=True)
class Poison:
    """One hostile record and the dead-letter reason it must get."""

    kind: str
    reason: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def ce_headers(ce_type: str, saga_id: str, content_type: str = "application/protobuf") -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", ce_type.encode()),
        ("ce_source", b"e2e-hostile"),
        ("content-type", content_type.encode()),
        ("saga_id", saga_id.encode()),
    ]


def poisons(real_type: str) -> list[Poison]:
    """The hostile records for one topic, each with its own key (a fresh saga id)."""
    made: list[Poison] = []

    def add(kind: str, reason: str, value: bytes, headers: list[tuple[str, bytes]] | None, saga_id: str) -> None:
        made.append(Poison(kind, reason, saga_id.encode(), value, headers if headers is not None else []))

    garbage = str(uuid.uuid4())
    add("malformed (no CloudEvents headers)", "missing-headers", b"\x00\xffnot a cloud event\xfe", None, garbage)
    big = str(uuid.uuid4())
    oversized = b"\x0a" * OVERSIZED_BYTES
    add(f"oversized ({OVERSIZED_BYTES // 1024} KiB)", "oversized", oversized, ce_headers(real_type, big), big)
    unknown = str(uuid.uuid4())
    add("unknown type", "unknown-type", b"\x08\x01", ce_headers("checkout.v1.NoSuchMessage", unknown), unknown)
    for content_type in ("text/plain", "application/xml"):
        saga_id = str(uuid.uuid4())
        add(
            f"content-type {content_type}",
            "unsupported-content-type",
            b"<saga>hostile</saga>",
            ce_headers(real_type, saga_id, content_type),
            saga_id,
        )
    return made


def test_hostile_records_are_dead_lettered_with_a_reason_and_block_no_partition(
    platform: SagaPlatform, client: Client
) -> None:
    planted: dict[str, list[Poison]] = {topic: poisons(real_type) for topic, (_, real_type) in CONSUMERS.items()}
    for topic, records in planted.items():
        asyncio.run(
            publish_raw(
                platform.bootstrap_servers, platform.topic(topic), [(p.key, p.value, p.headers) for p in records]
            )
        )

    began = time.monotonic()
    saga_id = client.start(checkout_body({"HOSTILE-AFTER-POISON": 1}, customer="cust_after_hostile_records"))
    final = client.wait(saga_id, timeout_s=60)
    after = f"checkout right after: {outcome(final)} in {time.monotonic() - began:.1f} s"

    partitions = platform.settings.topic_partitions
    keys = {p.key for records in planted.values() for p in records}
    letters = asyncio.run(
        read_dead_letters(platform.bootstrap_servers, platform.topic("dlq"), partitions, keys, partitions, timeout_s=60)
    )
    problems: list[str] = []
    for topic, records in planted.items():
        service = CONSUMERS[topic][0]
        for poison in records:
            found = letters[poison.key]
            reasons = sorted({h.get("dlq_reason", "?") for h in found})
            wrong = [
                h
                for h in found
                if h.get("dlq_reason") != poison.reason
                or h.get("dlq_topic") != platform.topic(topic)
                or h.get("dlq_consumer_group") != f"{platform.name}.{service}"
                or not h.get("dlq_detail")
            ]
            ok = len(found) == partitions and not wrong and final["status"] == "COMPLETED"
            record_check(
                "hostile-input",
                f"Kafka {topic} ({service}): {poison.kind}",
                f"DLQ on {len(found)}/{partitions} partitions, dlq_reason {', '.join(reasons) or 'none'}; {after}",
                passed=ok,
                detail=next((h.get("dlq_detail", "") for h in found), ""),
            )
            if len(found) != partitions:
                problems.append(f"{topic} {poison.kind}: {len(found)} dead letters, expected {partitions}")
            problems.extend(f"{topic} {poison.kind}: {h}" for h in wrong)
    assert final["status"] == "COMPLETED", f"the checkout behind the hostile records: {final}"
    assert not problems, "\n".join(problems)
