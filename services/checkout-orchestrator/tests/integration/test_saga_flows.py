"""Every way a saga ends, against the real Kafka and PostgreSQL, the test playing the participants."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from checkout.v1 import commands_pb2, events_pb2
from checkout_kit.messaging.envelope import Envelope

pytestmark = pytest.mark.integration

# How the participants the tests play answer (see conftest.answer_like_the_participants).
OUT_OF_STOCK_SKU = "OUT-OF-STOCK"
DECLINED = "tok_chargeDeclined"
HANGS = "tok_timeout"
ORDER_FAILS = "cust_order_fail"
UNIT_PRICE_MINOR = 1_250


async def test_happy_path_completes_with_the_commands_in_order_each_replying_to_the_events_topic(
    harness,
) -> None:
    async with harness.app() as client:
        initiated = await harness.initiate(quantity=2)
        saga_id = initiated.saga_id
        saga = await harness.wait_status(client, saga_id, "COMPLETED")

    received = harness.participants.received[saga_id]
    assert [(r.name, r.topic) for r in received] == [
        ("ReserveInventory", harness.kafka.topics.inventory_command),
        ("ProcessPayment", harness.kafka.topics.payment_command),
        ("CreateOrder", harness.kafka.topics.order_command),
    ]
    assert {r.envelope.reply_to for r in received} == {harness.kafka.topics.checkout_events}
    assert {r.envelope.source for r in received} == {"checkout-orchestrator"}
    payment = received[1].envelope.message
    assert isinstance(payment, commands_pb2.ProcessPayment)
    assert (payment.amount.amount_minor, payment.amount.currency) == (2 * UNIT_PRICE_MINOR, "EUR")
    assert saga["state"] == "COMPLETED"
    assert saga["order_id"] == f"ord-{saga_id[:8]}"
    assert saga["payment_id"] == f"pay-{saga_id[:8]}"
    assert saga["amount"] == {"amount_minor": 2 * UNIT_PRICE_MINOR, "currency": "EUR"}
    assert saga["failure_code"] is None
    assert saga["trace_id"] == initiated.trace_headers["traceparent"].split("-")[1]


async def test_a_second_checkout_initiated_for_the_same_saga_changes_nothing(harness) -> None:
    async with harness.app() as client:
        first = await harness.initiate()
        before = await harness.wait_status(client, first.saga_id, "COMPLETED")
        again = await harness.initiate(saga_id=first.saga_id, quantity=7)  # a retry with a new ce_id
        await harness.wait_consumed(*await harness.publish(again))  # and the very same record once more
        after = await harness.saga(client, first.saga_id)

    assert after == before
    assert harness.participants.names(first.saga_id).count("ReserveInventory") == 1


async def test_out_of_stock_fails_without_any_payment_command(harness) -> None:
    async with harness.app() as client:
        saga_id = (await harness.initiate(sku=OUT_OF_STOCK_SKU)).saga_id
        saga = await harness.wait_status(client, saga_id, "FAILED")
        await asyncio.sleep(0.5)  # a stray command would show up in this time; none may
    assert harness.participants.names(saga_id) == ["ReserveInventory"]
    assert saga["failure_code"] == "FAILURE_CODE_OUT_OF_STOCK"
    assert saga["state"] == "FAILED"


async def test_a_declined_payment_releases_the_reservation_then_fails(harness) -> None:
    async with harness.app() as client:
        saga_id = (await harness.initiate(payment=DECLINED)).saga_id
        saga = await harness.wait_status(client, saga_id, "FAILED")

    assert harness.participants.names(saga_id) == ["ReserveInventory", "ProcessPayment", "ReleaseInventory"]
    release = harness.participants.received[saga_id][2].envelope.message
    assert isinstance(release, commands_pb2.ReleaseInventory)
    assert release.reservation_id == f"res-{saga_id[:8]}"
    assert saga["failure_code"] == "FAILURE_CODE_PAYMENT_DECLINED"
    events = [step["event"] for step in saga["steps"]]
    assert events.index("InventoryReleased") < events.index("saga failed")


async def test_an_order_failure_refunds_and_releases_then_fails(harness) -> None:
    async with harness.app() as client:
        saga_id = (await harness.initiate(customer_id=ORDER_FAILS)).saga_id
        saga = await harness.wait_status(client, saga_id, "FAILED")

    names = harness.participants.names(saga_id)
    assert names[:3] == ["ReserveInventory", "ProcessPayment", "CreateOrder"]
    assert sorted(names[3:]) == ["RefundPayment", "ReleaseInventory"]
    refund = next(r.envelope.message for r in harness.participants.received[saga_id] if r.name == "RefundPayment")
    assert isinstance(refund, commands_pb2.RefundPayment)
    assert (refund.payment_id, refund.amount.amount_minor) == (f"pay-{saga_id[:8]}", 2 * UNIT_PRICE_MINOR)
    assert saga["failure_code"] == "FAILURE_CODE_ORDER_REJECTED"
    assert {"PaymentRefunded", "InventoryReleased"} <= {step["event"] for step in saga["steps"]}


async def test_a_payment_that_never_answers_is_retried_max_attempts_times_then_compensated(harness) -> None:
    settings = harness.settings(step_timeout_s=1.0, max_attempts=3)
    async with harness.app(settings) as client:
        saga_id = (await harness.initiate(payment=HANGS)).saga_id
        saga = await harness.wait_status(client, saga_id, "FAILED")

    names = harness.participants.names(saga_id)
    assert names[:4] == ["ReserveInventory", "ProcessPayment", "ProcessPayment", "ProcessPayment"]
    assert sorted(names[4:]) == ["RefundPayment", "ReleaseInventory"]
    assert saga["failure_code"] == "FAILURE_CODE_DEADLINE_EXCEEDED"
    events = [step["event"] for step in saga["steps"]]
    assert "ProcessPayment sent (attempt 3)" in events
    assert "ProcessPayment sent (attempt 4)" not in events
    assert events.index("deadline exceeded") < events.index("saga failed")
    refund = next(r.envelope.message for r in harness.participants.received[saga_id] if r.name == "RefundPayment")
    assert isinstance(refund, commands_pb2.RefundPayment)
    assert refund.payment_id == ""  # never learned it: the payment service refunds by saga id


async def test_a_duplicated_reply_changes_nothing_the_second_time(harness) -> None:
    async with harness.app() as client:
        saga_id = (await harness.initiate(payment=HANGS)).saga_id  # the saga waits in PAYMENT_PENDING
        payment = await harness.participants.wait_for(saga_id, "ProcessPayment")
        before = await harness.wait_state(client, saga_id, "PAYMENT_PENDING")
        [reserved] = harness.participants.replies[saga_id]
        assert isinstance(reserved.message, events_pb2.InventoryReserved)

        await harness.wait_consumed(*await harness.publish(reserved))  # same ce_id, delivered again
        assert await harness.saga(client, saga_id) == before
        assert harness.participants.names(saga_id) == ["ReserveInventory", "ProcessPayment"]

        await harness.participants.reply(
            payment.envelope, events_pb2.PaymentProcessed(saga_id=saga_id, payment_id="pay-late")
        )
        saga = await harness.wait_status(client, saga_id, "COMPLETED")
    assert saga["payment_id"] == "pay-late"
    assert harness.participants.names(saga_id) == ["ReserveInventory", "ProcessPayment", "CreateOrder"]


async def test_a_reply_for_an_unknown_saga_is_dead_lettered_and_the_partition_moves_on(harness) -> None:
    stranger = str(uuid.uuid4())
    async with harness.app() as client:
        await harness.publish(
            Envelope(events_pb2.PaymentProcessed(saga_id=stranger, payment_id="pay-x"), stranger, "test-payment")
        )
        dead = await harness.wait_dead_letter(stranger)
        saga_id = (await harness.initiate(saga_id=str(uuid.uuid4()))).saga_id
        await harness.wait_status(client, saga_id, "COMPLETED")
        assert (await client.get(f"/sagas/{stranger}")).status_code == 404

    assert dead["dlq_reason"] == "unknown-saga"
    assert stranger in dead["dlq_detail"]
    assert dead["ce_type"] == "checkout.v1.PaymentProcessed"
    assert dead["dlq_consumer_group"] == harness.kafka.group


async def test_a_command_sent_to_the_events_topic_is_dead_lettered(harness) -> None:
    saga_id = str(uuid.uuid4())
    async with harness.app():
        await harness.publish(Envelope(commands_pb2.ReserveInventory(saga_id=saga_id), saga_id, "confused-service"))
        dead = await harness.wait_dead_letter(saga_id)
    assert dead["dlq_reason"] == "unexpected-command"
    assert harness.participants.names(saga_id) == []


async def test_a_saga_survives_a_restart_of_the_orchestrator_mid_saga(harness) -> None:
    settings = harness.settings()
    async with harness.app(settings) as client:
        saga_id = (await harness.initiate(payment=HANGS)).saga_id
        payment = await harness.participants.wait_for(saga_id, "ProcessPayment")
        await harness.wait_state(client, saga_id, "PAYMENT_PENDING")
    # The first orchestrator is gone; its successor starts from what PostgreSQL and Kafka hold.
    async with harness.app(settings) as client:
        await harness.participants.reply(
            payment.envelope, events_pb2.PaymentProcessed(saga_id=saga_id, payment_id="pay-after-restart")
        )
        saga = await harness.wait_status(client, saga_id, "COMPLETED")

    assert harness.participants.names(saga_id) == ["ReserveInventory", "ProcessPayment", "CreateOrder"]
    assert saga["payment_id"] == "pay-after-restart"
