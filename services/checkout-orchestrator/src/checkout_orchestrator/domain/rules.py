"""How a saga moves: one pure function per kind of input, returning what to store and send.

Inputs are the CheckoutInitiated that starts a saga, every participant's reply, and the passing
of a deadline. Outputs are the changed saga, the commands to send (through the outbox, in the
same transaction as the change) and timeline entries. Nothing here does I/O, so every rule is a
unit test.

Two rules carry most of the weight:

* Deadlines drive retries, then compensation: a forward step before the pivot (the charge) is
  re-sent up to ``Policy.max_attempts`` times; after that the saga fails with DEADLINE_EXCEEDED
  and undoes whatever may have happened (a hung payment may still charge later, so a refund is
  requested even without a payment id; participants refund/release by saga id). CreateOrder,
  after the pivot, is retried until it answers: an order cannot be undone.
* Late replies are never lost: a charge or a reservation reported after the saga gave up on it
  is undone, and the saga stays COMPENSATING until every compensation is confirmed.
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, field

from google.protobuf.message import Message

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_orchestrator.domain.state import FORWARD_STEP, Line, Saga, SagaState, Step

FailureCode = types_pb2.FailureCode


@dataclass(frozen=True)
class Policy:
    """Deadlines and retry bounds (from settings)."""

    step_timeout: dt.timedelta = dt.timedelta(seconds=10)
    """How long a forward step may take before it is re-sent."""
    max_attempts: int = 3
    """Sends of one forward step before the saga gives up on it."""
    compensation_timeout: dt.timedelta = dt.timedelta(seconds=10)
    """How long a compensation may take before it is re-sent."""
    max_compensation_attempts: int = 30
    """Sends of one compensation before the saga is closed as FAILED with the compensation unconfirmed."""

    @property
    def deadline_budget(self) -> dt.timedelta:
        """How long a saga may run when nobody answers: every forward step's attempts, then every compensation's.

        A saga still running past it is stuck (e.g. CreateOrder, retried without bound, on an order
        service that is down): the deadlines alone will not end it.
        """
        forward = len(FORWARD_STEP) * self.max_attempts * self.step_timeout
        compensations = sum(1 for step in Step if step.compensation)
        return forward + compensations * self.max_compensation_attempts * self.compensation_timeout


@dataclass(frozen=True)
class TimelineEntry:
    """One line of the saga's history (what the status API shows)."""

    at: dt.datetime
    state: SagaState
    event: str
    detail: str = ""


@dataclass
class Outcome:
    """What a rule decided."""

    saga: Saga
    commands: list[Message] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    previous: Saga | None = None
    """The saga as the rule found it (None for a new one): what the change is measured against."""

    @property
    def changed(self) -> bool:
        """Whether anything must be stored."""
        return bool(self.commands or self.timeline)


def _money(saga: Saga) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=saga.amount_minor, currency=saga.currency)


def _items(saga: Saga) -> list[types_pb2.LineItem]:
    return [
        types_pb2.LineItem(
            sku=line.sku,
            quantity=line.quantity,
            unit_price=types_pb2.Money(amount_minor=line.unit_price_minor, currency=saga.currency)
            if line.unit_price_minor
            else None,
        )
        for line in saga.lines
    ]


def command_for(saga: Saga, step: Step) -> Message:
    """The command that performs ``step`` for ``saga`` (re-sent unchanged on retries)."""
    reason = FailureCode.Value(saga.failure_code) if saga.failure_code else FailureCode.FAILURE_CODE_UNSPECIFIED
    if step is Step.RESERVE_INVENTORY:
        return commands_pb2.ReserveInventory(saga_id=saga.saga_id, items=_items(saga))
    if step is Step.PROCESS_PAYMENT:
        return commands_pb2.ProcessPayment(
            saga_id=saga.saga_id, customer_id=saga.customer_id, amount=_money(saga), payment_token=saga.payment_token
        )
    if step is Step.CREATE_ORDER:
        return commands_pb2.CreateOrder(
            saga_id=saga.saga_id,
            customer_id=saga.customer_id,
            items=_items(saga),
            total=_money(saga),
            payment_id=saga.payment_id or "",
        )
    if step is Step.RELEASE_INVENTORY:
        return commands_pb2.ReleaseInventory(
            saga_id=saga.saga_id, reservation_id=saga.reservation_id or "", reason=reason
        )
    return commands_pb2.RefundPayment(
        saga_id=saga.saga_id, payment_id=saga.payment_id or "", amount=_money(saga), reason=reason
    )


class _Decision:
    """A working copy of the saga and what has been decided so far."""

    def __init__(self, saga: Saga, now: dt.datetime, policy: Policy) -> None:
        self.outcome = Outcome(copy.deepcopy(saga), previous=saga)
        self.now = now
        self.policy = policy

    @property
    def saga(self) -> Saga:
        return self.outcome.saga

    def note(self, event: str, detail: str = "") -> None:
        self.outcome.timeline.append(TimelineEntry(self.now, self.saga.state, event, detail))

    def move(self, state: SagaState, event: str, detail: str = "") -> None:
        self.saga.state = state
        if state.terminal and self.saga.finished_at is None:
            self.saga.finished_at = self.now
        self.note(event, detail)

    def send(self, step: Step) -> None:
        attempts = self.saga.pending.get(step, 0) + 1
        if attempts == 1:
            self.saga.step_sent_at[step] = self.now
        self.saga.pending[step] = attempts
        self.outcome.commands.append(command_for(self.saga, step))
        timeout = self.policy.compensation_timeout if step.compensation else self.policy.step_timeout
        self.saga.deadline_at = self.now + timeout
        suffix = f" (attempt {attempts})" if attempts > 1 else ""
        self.note(f"{type(self.outcome.commands[-1]).__name__} sent{suffix}")

    def confirm(self, step: Step) -> None:
        self.saga.pending.pop(step, None)
        self.saga.done.add(step)
        if not self.saga.pending:
            self.saga.deadline_at = None

    def fail(self, code: FailureCode.ValueType, message: str) -> None:
        if self.saga.failure_code is None:
            self.saga.failure_code = FailureCode.Name(code)
            self.saga.failure_message = message

    def compensate(self, *steps: Step) -> None:
        """Enter COMPENSATING and send each compensation not yet confirmed or pending."""
        for forward in list(self.saga.pending):
            if not forward.compensation:
                del self.saga.pending[forward]
        if self.saga.state is not SagaState.COMPENSATING:
            self.move(SagaState.COMPENSATING, "compensation started", self.saga.failure_message or "")
        for step in steps:
            if step not in self.saga.done and step not in self.saga.pending:
                self.send(step)
        self.finish_if_compensated()

    def finish_if_compensated(self) -> None:
        if self.saga.state is SagaState.COMPENSATING and not self.saga.pending:
            self.saga.deadline_at = None
            self.move(SagaState.FAILED, "saga failed", self.saga.failure_message or "")

    def advance(self, state: SagaState, event: str) -> None:
        self.saga.pending.clear()
        self.move(state, event)
        step = FORWARD_STEP.get(state)
        if step is not None:
            self.send(step)
        else:
            self.saga.deadline_at = None


def start(initiated: events_pb2.CheckoutInitiated, now: dt.datetime, policy: Policy) -> Outcome:
    """A new saga from the gateway's CheckoutInitiated."""
    saga = Saga(
        saga_id=initiated.saga_id,
        customer_id=initiated.customer_id,
        currency=initiated.currency,
        payment_token=initiated.payment_token,
        lines=[Line(item.sku, item.quantity) for item in initiated.items],
        cart_id=initiated.cart_id or None,
        created_at=now,
    )
    decision = _Decision(saga, now, policy)
    decision.outcome.previous = None  # a new saga: there was none before
    decision.note("CheckoutInitiated")
    if not saga.lines or any(line.quantity < 1 for line in saga.lines):
        decision.fail(FailureCode.FAILURE_CODE_INVALID_REQUEST, "a checkout needs at least one line of quantity ≥ 1")
        decision.move(SagaState.FAILED, "saga failed", decision.saga.failure_message or "")
        return decision.outcome
    decision.advance(SagaState.INVENTORY_RESERVATION_PENDING, "reserving inventory")
    return decision.outcome


def on_event(saga: Saga, event: Message, now: dt.datetime, policy: Policy) -> Outcome:
    """Apply a participant's reply. Replies that do not fit the state are recorded or ignored."""
    decision = _Decision(saga, now, policy)
    state = saga.state
    name = type(event).__name__
    compensating = state in (SagaState.COMPENSATING, SagaState.FAILED)

    if isinstance(event, events_pb2.InventoryReserved):
        if state is SagaState.INVENTORY_RESERVATION_PENDING and event.total.currency not in ("", saga.currency):
            # Stock priced in another currency than the customer pays in: never charge the number as is.
            decision.saga.reservation_id = event.reservation_id
            decision.fail(
                FailureCode.FAILURE_CODE_INVALID_REQUEST,
                f"stock is priced in {event.total.currency}, the checkout is in {saga.currency}",
            )
            decision.note(name, decision.saga.failure_message or "")
            decision.compensate(Step.RELEASE_INVENTORY)
        elif state is SagaState.INVENTORY_RESERVATION_PENDING:
            decision.saga.reservation_id = event.reservation_id
            decision.saga.lines = [
                Line(item.sku, item.quantity, item.unit_price.amount_minor) for item in event.items
            ] or decision.saga.lines
            decision.saga.amount_minor = event.total.amount_minor
            decision.advance(SagaState.PAYMENT_PENDING, name)
        elif compensating and decision.saga.reservation_id is None:
            # Reserved after we gave up on it: the release (by saga id) covers it; make sure one is sent.
            decision.saga.reservation_id = event.reservation_id
            decision.note(f"late {name}", "reservation will be released")
            if Step.RELEASE_INVENTORY in decision.saga.done:
                decision.saga.done.discard(Step.RELEASE_INVENTORY)
            decision.compensate(Step.RELEASE_INVENTORY)
    elif isinstance(event, events_pb2.InventoryReservationFailed):
        if state is SagaState.INVENTORY_RESERVATION_PENDING:
            decision.fail(event.reason or FailureCode.FAILURE_CODE_OUT_OF_STOCK, event.message or "out of stock")
            decision.saga.pending.clear()
            decision.saga.deadline_at = None
            decision.move(SagaState.FAILED, name, event.message)
    elif isinstance(event, events_pb2.PaymentProcessed):
        if state is SagaState.PAYMENT_PENDING:
            decision.saga.payment_id = event.payment_id
            decision.advance(SagaState.ORDER_CREATION_PENDING, name)
        elif compensating and decision.saga.payment_id is None:
            decision.saga.payment_id = event.payment_id
            decision.note(f"late {name}", "charge will be refunded")
            decision.saga.done.discard(Step.REFUND_PAYMENT)
            decision.compensate(Step.REFUND_PAYMENT)
    elif isinstance(event, events_pb2.PaymentFailed):
        if state is SagaState.PAYMENT_PENDING:
            decision.fail(event.reason or FailureCode.FAILURE_CODE_PAYMENT_DECLINED, event.message or "declined")
            decision.note(name, event.message)
            decision.compensate(Step.RELEASE_INVENTORY)
    elif isinstance(event, events_pb2.OrderCreated):
        if state is SagaState.ORDER_CREATION_PENDING:
            decision.saga.order_id = event.order_id
            decision.advance(SagaState.COMPLETED, name)
        elif compensating and decision.saga.order_id is None:
            decision.saga.order_id = event.order_id
            decision.note(f"late {name}", "order exists for a compensated saga")
    elif isinstance(event, events_pb2.OrderCreationFailed):
        if state is SagaState.ORDER_CREATION_PENDING:
            decision.fail(event.reason or FailureCode.FAILURE_CODE_ORDER_REJECTED, event.message or "order rejected")
            decision.note(name, event.message)
            decision.compensate(Step.REFUND_PAYMENT, Step.RELEASE_INVENTORY)
    elif isinstance(event, events_pb2.PaymentRefunded):
        if Step.REFUND_PAYMENT in decision.saga.pending:
            decision.confirm(Step.REFUND_PAYMENT)
            decision.note(name)
            decision.finish_if_compensated()
    elif isinstance(event, events_pb2.InventoryReleased) and Step.RELEASE_INVENTORY in decision.saga.pending:
        decision.confirm(Step.RELEASE_INVENTORY)
        decision.note(name)
        decision.finish_if_compensated()
    return decision.outcome


def on_deadline(saga: Saga, now: dt.datetime, policy: Policy) -> Outcome:
    """Re-send what is overdue, or give up on it: forward steps compensate, compensations close."""
    decision = _Decision(saga, now, policy)
    if saga.state.terminal or saga.deadline_at is None or now < saga.deadline_at:
        return decision.outcome
    forward = FORWARD_STEP.get(saga.state)
    if forward is Step.CREATE_ORDER:
        # Past the pivot (the charge), creating the order is retried until it answers: a late
        # order could not be undone (there is no CancelOrder), so only OrderCreationFailed
        # compensates. A down order service keeps sagas pending and visible, never half-undone.
        decision.send(forward)
        return decision.outcome
    if forward is not None:
        if saga.pending.get(forward, 0) < policy.max_attempts:
            decision.send(forward)
            return decision.outcome
        decision.fail(
            FailureCode.FAILURE_CODE_DEADLINE_EXCEEDED,
            f"{forward.value} got no answer after {policy.max_attempts} attempts",
        )
        decision.note("deadline exceeded", decision.saga.failure_message or "")
        undo = {
            Step.RESERVE_INVENTORY: (Step.RELEASE_INVENTORY,),
            Step.PROCESS_PAYMENT: (Step.REFUND_PAYMENT, Step.RELEASE_INVENTORY),
        }[forward]
        decision.compensate(*undo)
        return decision.outcome
    for step, attempts in list(saga.pending.items()):
        if attempts < policy.max_compensation_attempts:
            decision.send(step)
        else:
            decision.saga.pending.pop(step)
            decision.note("compensation unconfirmed", f"{step.value} got no answer after {attempts} attempts")
            decision.saga.failure_message = (
                f"{decision.saga.failure_message or ''}; {step.value} unconfirmed after {attempts} attempts"
            ).lstrip("; ")
    decision.finish_if_compensated()
    return decision.outcome
