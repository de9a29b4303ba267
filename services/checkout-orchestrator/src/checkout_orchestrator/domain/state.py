"""The saga's states and its record, as the rules see them (storage maps them to rows)."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field


class SagaState(enum.StrEnum):
    """Where a saga is. COMPLETED and FAILED are terminal."""

    STARTED = "STARTED"
    INVENTORY_RESERVATION_PENDING = "INVENTORY_RESERVATION_PENDING"
    PAYMENT_PENDING = "PAYMENT_PENDING"
    ORDER_CREATION_PENDING = "ORDER_CREATION_PENDING"
    COMPLETED = "COMPLETED"
    COMPENSATING = "COMPENSATING"
    FAILED = "FAILED"

    @property
    def terminal(self) -> bool:
        """Whether nothing more will happen."""
        return self in (SagaState.COMPLETED, SagaState.FAILED)


class Step(enum.StrEnum):
    """A command the saga waits on; each has a deadline and bounded retries."""

    RESERVE_INVENTORY = "reserve_inventory"
    PROCESS_PAYMENT = "process_payment"
    CREATE_ORDER = "create_order"
    RELEASE_INVENTORY = "release_inventory"
    REFUND_PAYMENT = "refund_payment"

    @property
    def compensation(self) -> bool:
        """Compensations undo an effect; they are retried longer and never abandoned silently."""
        return self in (Step.RELEASE_INVENTORY, Step.REFUND_PAYMENT)


FORWARD_STEP = {
    SagaState.INVENTORY_RESERVATION_PENDING: Step.RESERVE_INVENTORY,
    SagaState.PAYMENT_PENDING: Step.PROCESS_PAYMENT,
    SagaState.ORDER_CREATION_PENDING: Step.CREATE_ORDER,
}
"""The step a forward pending state waits on."""


@dataclass(frozen=True)
class Line:
    """One line of the checkout."""

    sku: str
    quantity: int
    unit_price_minor: int = 0


@dataclass
class Saga:
    """Everything the rules need to know about one saga."""

    saga_id: str
    customer_id: str
    currency: str
    payment_token: str
    lines: list[Line]
    state: SagaState = SagaState.STARTED
    version: int = 0
    """Optimistic concurrency: storage updates only where the version is unchanged."""
    reservation_id: str | None = None
    payment_id: str | None = None
    amount_minor: int = 0
    order_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    pending: dict[Step, int] = field(default_factory=dict)
    """Steps awaiting a reply → how many times the command was sent."""
    done: set[Step] = field(default_factory=set)
    """Steps whose reply arrived (compensations are never sent twice once confirmed)."""
    step_sent_at: dict[Step, dt.datetime] = field(default_factory=dict)
    """When each pending step's command was first sent (re-sends keep it): where the step's latency starts."""
    deadline_at: dt.datetime | None = None
    """When the earliest pending step times out (None when nothing is pending)."""
    cart_id: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    """When the saga first reached a terminal state; a late reply reopening a FAILED saga keeps it."""
    trace_context: dict[str, str] = field(default_factory=dict)
    """W3C trace context (``traceparent``, ``tracestate``) of the saga's latest transition.

    Not the rules' business: carried so that what the deadline scanner does later (a re-sent
    command, a compensation) continues the checkout's trace instead of starting one of its own."""
