"""ProcessPayment and RefundPayment through the real Kafka and PostgreSQL, with the real app.

Commands are published as the orchestrator would (CloudEvents envelopes with ``reply_to``);
replies are read back from the reply topic. The command topic has one partition, so commands
are applied in the order sent: a reply to a later command proves an earlier one was handled,
which is how "no reply" is asserted without sleeping.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.producer import Publisher
from checkout_kit.testing import Kafka, Replies, SchemaReader, command, resent

pytestmark = pytest.mark.integration


def pay(
    token: str, amount: int = 4_250, *, saga_id: str | None = None, currency: str = "EUR"
) -> commands_pb2.ProcessPayment:
    return commands_pb2.ProcessPayment(
        saga_id=saga_id or str(uuid.uuid4()),
        customer_id="cust_42",
        amount=types_pb2.Money(amount_minor=amount, currency=currency),
        payment_token=token,
    )


def refund(saga_id: str, payment_id: str = "", amount: int = 4_250) -> commands_pb2.RefundPayment:
    return commands_pb2.RefundPayment(
        saga_id=saga_id,
        payment_id=payment_id,
        amount=types_pb2.Money(amount_minor=amount, currency="EUR"),
        reason=types_pb2.FAILURE_CODE_ORDER_REJECTED,
    )


async def payment_of(client: httpx.AsyncClient, saga_id: str) -> dict:
    response = await client.get("/payments", params={"saga_id": saga_id})
    assert response.status_code == 200, response.text
    (payment,) = response.json()
    return payment


class Saga:
    """Sends a saga's commands and reads its replies."""

    def __init__(self, publisher: Publisher, topic: str, kafka: Kafka, replies: Replies) -> None:
        self.publisher, self.topic, self.kafka, self.replies = publisher, topic, kafka, replies

    async def send(self, message: object) -> Envelope:
        envelope = command(message, reply_to=self.kafka.replies)  # type: ignore[arg-type]
        await self.publisher.publish(self.topic, envelope)
        return envelope

    async def again(self, envelope: Envelope) -> Envelope:
        copy = resent(envelope)
        await self.publisher.publish(self.topic, copy)
        return copy

    async def settled(self) -> None:
        """Wait until every command sent so far was handled (a marker charge is answered after them)."""
        marker = await self.send(pay("tok_visa", 1))
        await self.replies.wait_for(marker.saga_id)


@pytest.fixture
def saga(publisher: Publisher, command_topic: str, kafka: Kafka, replies: Replies) -> Saga:
    return Saga(publisher, command_topic, kafka, replies)


async def test_tok_visa_is_charged(client: httpx.AsyncClient, saga: Saga, replies: Replies) -> None:
    sent = await saga.send(pay("tok_visa", 4_250))

    (reply,) = await replies.wait_for(sent.saga_id)

    processed = reply.message
    assert isinstance(processed, events_pb2.PaymentProcessed)
    assert (processed.amount.amount_minor, processed.amount.currency) == (4_250, "EUR")
    payment = await payment_of(client, sent.saga_id)
    assert payment["id"] == processed.payment_id
    assert payment["status"] == "CHARGED"
    assert payment["customer_id"] == "cust_42"
    assert payment["net_amount_minor"] == 4_250
    assert payment["refunds"] == []
    assert "token" not in payment
    assert (await client.get(f"/payments/{processed.payment_id}")).json() == payment


@pytest.mark.parametrize(
    ("token", "words"),
    [
        ("tok_chargeDeclined", "Your card was declined."),
        ("tok_chargeDeclinedInsufficientFunds", "insufficient funds"),
        ("tok_mastercard", "approves only tok_visa"),
        ("", "No payment token"),
    ],
)
async def test_other_tokens_are_declined_with_a_reason(
    client: httpx.AsyncClient, saga: Saga, replies: Replies, token: str, words: str
) -> None:
    sent = await saga.send(pay(token))

    (reply,) = await replies.wait_for(sent.saga_id)

    failed = reply.message
    assert isinstance(failed, events_pb2.PaymentFailed)
    assert failed.reason == types_pb2.FAILURE_CODE_PAYMENT_DECLINED
    assert words in failed.message
    payment = await payment_of(client, sent.saga_id)
    assert (payment["status"], payment["net_amount_minor"], payment["decline_message"]) == (
        "DECLINED",
        0,
        failed.message,
    )


async def test_tok_timeout_is_pending_answered_by_silence_and_voided_by_a_refund(
    client: httpx.AsyncClient, saga: Saga, replies: Replies, kafka: Kafka, command_topic: str
) -> None:
    hung = await saga.send(pay("tok_timeout"))
    await saga.settled()  # a later command was answered: the hung one did not block the partition
    assert replies.of(hung.saga_id) == []
    assert (await payment_of(client, hung.saga_id))["status"] == "PENDING"

    await saga.again(hung)  # the orchestrator's deadline retries
    await saga.settled()
    assert replies.of(hung.saga_id) == [], "a pending charge stays silent"

    await saga.send(refund(hung.saga_id))  # then compensates
    (refunded,) = await replies.wait_for(hung.saga_id)
    await saga.again(hung)  # a straggling retry of the charge
    _, refused = await replies.wait_for(hung.saga_id, 2)

    assert isinstance(refunded.message, events_pb2.PaymentRefunded)
    assert refunded.message.amount.amount_minor == 0, "no money had moved"
    assert isinstance(refused.message, events_pb2.PaymentFailed)
    assert "voided by refund" in refused.message.message
    assert refused.message.reason == types_pb2.FAILURE_CODE_ORDER_REJECTED
    payment = await payment_of(client, hung.saga_id)
    assert (payment["status"], payment["net_amount_minor"], payment["refunds"]) == ("VOIDED", 0, [])
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_resent_charge_gets_the_same_answer_without_a_second_charge(
    client: httpx.AsyncClient, saga: Saga, replies: Replies, database: SchemaReader, kafka: Kafka
) -> None:
    charged = await saga.send(pay("tok_visa"))
    declined = await saga.send(pay("tok_chargeDeclined"))
    (first_charged,) = await replies.wait_for(charged.saga_id)
    (first_declined,) = await replies.wait_for(declined.saga_id)

    await saga.again(charged)
    await saga.again(declined)
    second_charged = (await replies.wait_for(charged.saga_id, 2))[1]
    second_declined = (await replies.wait_for(declined.saga_id, 2))[1]

    assert second_charged.message == first_charged.message  # the same payment id and amount
    assert second_declined.message == first_declined.message
    for saga_id in (charged.saga_id, declined.saga_id):
        assert await database.fetchval("SELECT count(*) FROM charges WHERE saga_id = $1", uuid.UUID(saga_id)) == 1
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_duplicated_delivery_is_charged_and_answered_once(
    client: httpx.AsyncClient, saga: Saga, replies: Replies, publisher: Publisher, command_topic: str, kafka: Kafka
) -> None:
    sent = await saga.send(pay("tok_visa"))
    await publisher.publish(command_topic, sent)  # the same record again (same ce_id)
    await saga.settled()

    assert len(replies.of(sent.saga_id)) == 1
    assert (await payment_of(client, sent.saga_id))["net_amount_minor"] == 4_250
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_refund_gives_the_full_charge_back_once(
    client: httpx.AsyncClient, saga: Saga, replies: Replies, database: SchemaReader, kafka: Kafka
) -> None:
    charged = await saga.send(pay("tok_visa", 9_900))
    (processed,) = await replies.wait_for(charged.saga_id)
    payment_id = processed.message.payment_id  # type: ignore[attr-defined]

    first = await saga.send(refund(charged.saga_id, payment_id, amount=9_900))
    await saga.again(first)  # a retried refund
    await saga.send(refund(charged.saga_id))  # without the payment id
    await saga.again(charged)  # a straggling retry of the charge
    answers = await replies.wait_for(charged.saga_id, 5)

    assert [a.type for a in answers] == [
        "checkout.v1.PaymentProcessed",
        "checkout.v1.PaymentRefunded",
        "checkout.v1.PaymentRefunded",
        "checkout.v1.PaymentRefunded",
        "checkout.v1.PaymentFailed",
    ]
    for answer in answers[1:4]:
        assert answer.message.payment_id == payment_id  # type: ignore[attr-defined]
        assert answer.message.amount.amount_minor == 9_900  # type: ignore[attr-defined]
    assert "refunded" in answers[4].message.message  # type: ignore[attr-defined]
    payment = await payment_of(client, charged.saga_id)
    assert payment["status"] == "REFUNDED"
    assert [r["amount_minor"] for r in payment["refunds"]] == [9_900]
    assert payment["net_amount_minor"] == 0
    assert await database.fetchval("SELECT count(*) FROM refunds") == 1
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_a_refund_before_the_charge_leaves_a_tombstone_that_refuses_it(
    client: httpx.AsyncClient, saga: Saga, replies: Replies, kafka: Kafka
) -> None:
    saga_id = str(uuid.uuid4())

    await saga.send(refund(saga_id))
    await saga.send(pay("tok_visa", saga_id=saga_id))
    refunded, refused = await replies.wait_for(saga_id, 2)

    assert isinstance(refunded.message, events_pb2.PaymentRefunded)
    assert refunded.message.amount.amount_minor == 0
    assert isinstance(refused.message, events_pb2.PaymentFailed)
    assert "voided by refund" in refused.message.message
    payment = await payment_of(client, saga_id)
    assert payment["id"] == refunded.message.payment_id
    assert (payment["status"], payment["customer_id"], payment["net_amount_minor"]) == ("VOIDED", None, 0)
    assert await kafka.read_all(kafka.topics.dlq) == [], "nothing was dead-lettered"


async def test_refunding_a_declined_charge_moves_no_money(
    client: httpx.AsyncClient, saga: Saga, replies: Replies
) -> None:
    declined = await saga.send(pay("tok_chargeDeclined"))
    await saga.send(refund(declined.saga_id))

    _, refunded = await replies.wait_for(declined.saga_id, 2)

    assert isinstance(refunded.message, events_pb2.PaymentRefunded)
    assert refunded.message.amount.amount_minor == 0
    payment = await payment_of(client, declined.saga_id)
    assert (payment["status"], payment["refunds"]) == ("DECLINED", [])
