"""Applying payment commands: the charge or refund and its reply, in the consumer's one transaction.

The :class:`TransactionalConsumer` calls :class:`PaymentCommands` with a session whose
transaction also holds the inbox row; the reply is enqueued in the outbox in that same
transaction, so a charge and its PaymentProcessed commit together or not at all.

Every command is idempotent per saga, not only per message: the inbox drops a redelivery of
the same ``ce_id``, and a command the orchestrator sends again (a new ``ce_id`` after its
deadline) finds the saga's charge row and answers from it. A charge the provider never
answered stays PENDING and is answered by silence, every time: the orchestrator's deadline
decides, and its RefundPayment voids the charge.
"""

from __future__ import annotations

import logging
from typing import Final

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import events_pb2, types_pb2
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.participant import Money, reason_name, reason_value, reply_topic
from checkout_kit.outbox import enqueue
from checkout_kit.telemetry import inject_trace_headers
from checkout_kit.topics import Topics
from checkout_payment.commands import Charge, Refund, parse
from checkout_payment.provider import ChargeRequest, Outcome, PaymentProvider
from checkout_payment.storage import charges
from checkout_payment.storage.charges import ChargeView
from checkout_payment.storage.tables import CHARGED, DECLINED, PENDING, REFUNDED, VOIDED

log = logging.getLogger(__name__)

_STATUS_OF: Final = {Outcome.APPROVED: CHARGED, Outcome.DECLINED: DECLINED, Outcome.NO_ANSWER: PENDING}


def _money(amount_minor: int, currency: str | None) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=amount_minor, currency=currency or "")


def charge_answer(view: ChargeView) -> Message | None:
    """What ProcessPayment answers for the saga's charge (None: the provider has not answered)."""
    row = view.charge
    saga_id, payment_id = str(row.saga_id), str(row.id)
    if row.status == CHARGED:
        return events_pb2.PaymentProcessed(
            saga_id=saga_id, payment_id=payment_id, amount=_money(row.amount_minor, row.currency)
        )
    if row.status == DECLINED:
        return events_pb2.PaymentFailed(
            saga_id=saga_id, reason=types_pb2.FAILURE_CODE_PAYMENT_DECLINED, message=row.decline_message or ""
        )
    if row.status == PENDING:
        return None
    why = row.compensation_reason or "no reason given"
    reason = reason_value(row.compensation_reason, types_pb2.FAILURE_CODE_INTERNAL)
    if row.status == VOIDED:
        return events_pb2.PaymentFailed(
            saga_id=saga_id, reason=reason, message=f"payment {payment_id} was voided by refund ({why})"
        )
    return events_pb2.PaymentFailed(
        saga_id=saga_id, reason=reason, message=f"payment {payment_id} was refunded in full ({why})"
    )


def refund_answer(view: ChargeView) -> events_pb2.PaymentRefunded:
    """What RefundPayment answers: the money given back (0 when none had moved)."""
    row = view.charge
    return events_pb2.PaymentRefunded(
        saga_id=str(row.saga_id), payment_id=str(row.id), amount=_money(view.refunded_minor, row.currency)
    )


async def process(session: AsyncSession, command: Charge, provider: PaymentProvider) -> Message | None:
    """Charge once per saga; answer as before if the saga already has a charge row."""
    existing = await charges.find(session, command.saga_id, lock=True)
    if existing is not None:
        log.info("saga %s already has payment %s (%s)", command.saga_id, existing.charge.id, existing.charge.status)
        if existing.charge.amount_minor != command.amount.amount_minor and existing.charge.customer_id is not None:
            log.warning(
                "saga %s: ProcessPayment asks %d %s but the saga's payment was for %d %s; answering as before",
                command.saga_id,
                command.amount.amount_minor,
                command.amount.currency,
                existing.charge.amount_minor,
                existing.charge.currency,
            )
        return charge_answer(existing)
    verdict = provider.charge(ChargeRequest(command.token, command.amount.amount_minor, command.amount.currency))
    status = _STATUS_OF[verdict.outcome]
    view = await charges.insert_attempt(session, command, status, verdict.message or None)
    if status == PENDING:
        log.warning("saga %s: the provider did not answer; payment %s stays PENDING", command.saga_id, view.charge.id)
    else:
        log.info("saga %s: payment %s %s", command.saga_id, view.charge.id, status)
    return charge_answer(view)


async def refund(session: AsyncSession, command: Refund) -> events_pb2.PaymentRefunded:
    """Give back what the saga paid, void what it might have, and refuse what it has not tried yet."""
    reason = reason_name(command.reason)
    view = await charges.find(session, command.saga_id, lock=True)
    if view is None:
        currency = command.amount.currency if command.amount is not None else None
        view = await charges.insert_tombstone(session, command.saga_id, currency, reason)
        log.info("saga %s refunded before it was charged: tombstone %s", command.saga_id, view.charge.id)
    elif view.charge.status == CHARGED:
        row = view.charge
        assert row.currency is not None  # a charged row has its currency (CHECK attempt_is_complete)
        if command.amount is not None and command.amount.amount_minor != row.amount_minor:
            log.warning(
                "saga %s: RefundPayment asks %d back but payment %s charged %d; refunding the full charge",
                command.saga_id,
                command.amount.amount_minor,
                row.id,
                row.amount_minor,
            )
        refund_row = await charges.insert_refund(session, row, Money(row.amount_minor, row.currency))
        await charges.set_status(session, row, REFUNDED, reason)
        view = ChargeView(row, [refund_row])
        log.info("saga %s: payment %s refunded (%d %s)", command.saga_id, row.id, row.amount_minor, row.currency)
    elif view.charge.status == PENDING:
        await charges.set_status(session, view.charge, VOIDED, reason)
        log.info("saga %s: pending payment %s voided", command.saga_id, view.charge.id)
    if command.payment_id is not None and command.payment_id != view.charge.id:
        log.warning(
            "saga %s: RefundPayment names payment %s but the saga's is %s; refunded by saga",
            command.saga_id,
            command.payment_id,
            view.charge.id,
        )
    return refund_answer(view)


class PaymentCommands:
    """The command consumer's handler: parse, apply, enqueue the reply if there is one (never commits)."""

    def __init__(self, topics: Topics, source: str, provider: PaymentProvider) -> None:
        self.topics = topics
        self.source = source
        """``ce_source`` of the replies (the service name)."""
        self.provider = provider

    async def __call__(self, envelope: Envelope, session: AsyncSession) -> None:
        """Apply one command in the consumer's transaction."""
        command = parse(envelope)
        topic = reply_topic(envelope, self.topics.checkout_events)
        if isinstance(command, Charge):
            reply = await process(session, command, self.provider)
        else:
            reply = await refund(session, command)
        if reply is not None:
            await enqueue(
                session,
                topic,
                Envelope(
                    message=reply, saga_id=envelope.saga_id, source=self.source, trace_headers=inject_trace_headers()
                ),
            )
