"""Crashes and garbage: the orchestrator SIGKILLed mid-saga, and poison messages on its topic."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from saga_platform import (
    STOCK,
    Client,
    SagaPlatform,
    checkout_body,
    net_charge,
    outcome,
    publish_raw,
    read_dead_letters,
)

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("short_deadlines")
def test_every_saga_finishes_after_the_orchestrator_is_killed_and_restarted(
    platform: SagaPlatform, client: Client
) -> None:
    sku = "E2E-KILL"
    hung = client.start(checkout_body({sku: 1}, card="tok_timeout", customer="cust_kill_hung"))
    client.wait(hung, until=("PAYMENT_PENDING",), timeout_s=20)  # waiting on its deadline
    batch = [client.start(checkout_body({sku: 1}, customer=f"cust_kill_{i}")) for i in range(10)]

    began = time.monotonic()
    killed = platform.kill_service("checkout-orchestrator")
    platform.restart_services()
    restarted_after = time.monotonic() - began
    orchestrator = platform.stack.services.process(platform.stack.services.by_name("checkout-orchestrator"))
    assert orchestrator.pid() not in (None, killed), "the launcher started a new orchestrator"
    finals = {saga_id: client.wait(saga_id, timeout_s=90) for saga_id in (hung, *batch)}
    outcomes = Counter(f["status"] for f in finals.values())
    platform.record(
        "orchestrator SIGKILLed mid-saga, restarted",
        f"{outcomes['COMPLETED']} COMPLETED, {outcomes['FAILED']} FAILED of 11 (restart {restarted_after:.0f} s)",
        time.monotonic() - began,
    )

    assert finals[hung]["status"] == "FAILED", finals[hung]
    assert finals[hung]["failure_code"] == "FAILURE_CODE_DEADLINE_EXCEEDED"
    assert net_charge(client.payments(hung)) == 0
    assert [r["status"] for r in client.reservations(hung)] == ["RELEASED"]
    for saga_id in batch:
        final = finals[saga_id]
        if final["status"] == "COMPLETED":
            assert len(client.orders(saga_id)) == 1, final
            assert net_charge(client.payments(saga_id)) == STOCK[sku][1], final
        else:
            assert net_charge(client.payments(saga_id)) == 0, final
            assert client.orders(saga_id) == [], final
            assert "HELD" not in [r["status"] for r in client.reservations(saga_id)], final
    stock = client.stock(sku)
    assert stock["reserved"] == outcomes["COMPLETED"], stock
    assert stock["available"] + stock["reserved"] == STOCK[sku][0], stock


def _ce_headers(ce_type: str, saga_id: str) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(uuid.uuid4()).encode()),
        ("ce_type", ce_type.encode()),
        ("ce_source", b"e2e-poison"),
        ("content-type", b"application/protobuf"),
        ("saga_id", saga_id.encode()),
    ]


def test_poison_messages_go_to_the_dead_letter_topic_and_block_nothing(platform: SagaPlatform, client: Client) -> None:
    events = platform.topic("checkout-events")
    garbage = f"poison-garbage-{uuid.uuid4().hex}".encode()
    unknown_saga, undecodable_saga = str(uuid.uuid4()), str(uuid.uuid4())
    expected = {
        garbage: "missing-headers",
        unknown_saga.encode(): "unknown-type",
        undecodable_saga.encode(): "undecodable",
    }
    poison = [
        (garbage, b"\x00\xffnot a cloud event\xfe", []),
        (unknown_saga.encode(), b"\x08\x01", _ce_headers("checkout.v1.NoSuchEvent", unknown_saga)),
        (undecodable_saga.encode(), b"\xff\xff\xff", _ce_headers("checkout.v1.InventoryReserved", undecodable_saga)),
    ]
    # On every partition, ahead of the checkout below: wherever its key lands, poison is in front.
    asyncio.run(publish_raw(platform.bootstrap_servers, events, poison))

    began = time.monotonic()
    saga_id = client.start(checkout_body({"E2E-POISON": 1}, customer="cust_after_poison"))
    final = client.wait(saga_id, timeout_s=30)
    platform.record("checkout right after poison messages", outcome(final), time.monotonic() - began)
    assert final["status"] == "COMPLETED", final

    partitions = platform.settings.topic_partitions
    letters = asyncio.run(
        read_dead_letters(
            platform.bootstrap_servers, platform.topic("dlq"), partitions, set(expected), partitions, timeout_s=30
        )
    )
    for key, reason in expected.items():
        found = letters[key]
        assert len(found) == partitions, f"{key!r}: {len(found)} dead letters, expected one per partition"
        for headers in found:
            assert headers["dlq_reason"] == reason, headers
            assert headers["dlq_topic"] == events
            assert headers["dlq_consumer_group"] == f"{platform.name}.checkout-orchestrator"
            assert headers.get("dlq_detail"), headers
