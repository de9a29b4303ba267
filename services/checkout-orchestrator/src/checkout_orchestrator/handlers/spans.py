"""The orchestrator's own spans: a saga's transitions and its fired deadlines, in the checkout's trace.

Around the kit's ``process <topic>`` span of each checkout event, the orchestrator adds:

- ``saga <STATE>`` (:func:`transition_span`): one per stored change, named after the state the saga
  is in once the change commits (``saga PAYMENT_PENDING`` … ``saga COMPLETED``), current while
  the saga row, its timeline and its commands are written — so the database spans and the
  commands' ``send`` spans are its children, and its context is the one stored with the saga;
- ``deadline <STATE>`` (:func:`deadline_span`): a deadline fired by the scanner, long after any
  message, continuing the trace context stored with the saga (its latest transition): retries
  and compensations stay in the checkout's trace.

Attributes: :data:`~checkout_kit.telemetry.SAGA_ID`, :data:`~checkout_kit.telemetry.SAGA_STATE`
(after the change), :data:`~checkout_kit.telemetry.SAGA_STEP` (the step whose command the
transition sends, or the step whose deadline fired), plus the previous state and the commands sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.trace import Span

from checkout.v1 import commands_pb2, events_pb2
from checkout_kit.telemetry import SAGA_ID, SAGA_STATE, SAGA_STEP, continued_span
from checkout_orchestrator.domain.rules import Outcome
from checkout_orchestrator.domain.state import FORWARD_STEP, Saga, Step

TRACER_NAME: Final = "checkout_orchestrator"
PREVIOUS_STATE: Final = "checkout.saga.previous_state"
"""Span attribute: the saga's state before the transition (absent for a new saga)."""
COMMANDS: Final = "checkout.saga.commands"
"""Span attribute: the commands the transition sends (protobuf message names)."""
ATTEMPT: Final = "checkout.saga.attempt"
"""Span attribute: how many times the overdue step's command was sent before its deadline fired."""

COMMAND_STEP: Final[dict[type[Message], Step]] = {
    commands_pb2.ReserveInventory: Step.RESERVE_INVENTORY,
    commands_pb2.ProcessPayment: Step.PROCESS_PAYMENT,
    commands_pb2.CreateOrder: Step.CREATE_ORDER,
    commands_pb2.ReleaseInventory: Step.RELEASE_INVENTORY,
    commands_pb2.RefundPayment: Step.REFUND_PAYMENT,
}
"""The step each command performs."""
REPLY_STEP: Final[dict[type[Message], Step]] = {
    events_pb2.InventoryReserved: Step.RESERVE_INVENTORY,
    events_pb2.InventoryReservationFailed: Step.RESERVE_INVENTORY,
    events_pb2.PaymentProcessed: Step.PROCESS_PAYMENT,
    events_pb2.PaymentFailed: Step.PROCESS_PAYMENT,
    events_pb2.OrderCreated: Step.CREATE_ORDER,
    events_pb2.OrderCreationFailed: Step.CREATE_ORDER,
    events_pb2.InventoryReleased: Step.RELEASE_INVENTORY,
    events_pb2.PaymentRefunded: Step.REFUND_PAYMENT,
}
"""The step each participant's reply answers."""


def reply_step(message: Message) -> Step | None:
    """The step a checkout event answers (None for CheckoutInitiated, which starts the saga)."""
    return REPLY_STEP.get(type(message))


def label_event(message: Message) -> None:
    """Put the step a consumed checkout event answers on the current (``process``) span."""
    step = reply_step(message)
    if step is not None:
        trace.get_current_span().set_attribute(SAGA_STEP, step.value)


@contextmanager
def transition_span(outcome: Outcome) -> Iterator[Span]:
    """``saga <STATE>``: current while a rule's outcome is written (see the module docstring)."""
    saga = outcome.saga
    attributes: dict[str, str | list[str]] = {SAGA_ID: saga.saga_id, SAGA_STATE: saga.state.value}
    if outcome.previous is not None:
        attributes[PREVIOUS_STATE] = outcome.previous.state.value
    if outcome.commands:
        attributes[COMMANDS] = [type(command).__name__ for command in outcome.commands]
        step = COMMAND_STEP.get(type(outcome.commands[0]))
        if step is not None:
            attributes[SAGA_STEP] = step.value
    with trace.get_tracer(TRACER_NAME).start_as_current_span(f"saga {saga.state.value}", attributes=attributes) as span:
        yield span


def overdue_step(saga: Saga) -> Step | None:
    """The step whose deadline fires: the forward state's step, else the first pending compensation."""
    forward = FORWARD_STEP.get(saga.state)
    if forward is not None:
        return forward
    return min(saga.pending, default=None)


@contextmanager
def deadline_span(saga: Saga) -> Iterator[Span]:
    """``deadline <STATE>``: a fired deadline, in the trace stored with the saga (see the module docstring)."""
    attributes: dict[str, str | int] = {SAGA_ID: saga.saga_id, SAGA_STATE: saga.state.value}
    step = overdue_step(saga)
    if step is not None:
        attributes[SAGA_STEP] = step.value
        attributes[ATTEMPT] = saga.pending.get(step, 0)
    with continued_span(
        f"deadline {saga.state.value}", saga.trace_context, attributes=attributes, tracer=trace.get_tracer(TRACER_NAME)
    ) as span:
        yield span
