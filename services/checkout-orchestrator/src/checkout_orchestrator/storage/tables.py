"""The orchestrator's tables. Declared without a schema: the engine's search_path is the service's schema.

``sagas`` holds one row per saga — every field of :class:`~checkout_orchestrator.domain.state.Saga`
— with a ``version`` for optimistic concurrency; ``saga_steps`` is its timeline. The kit's
``outbox`` and ``inbox`` live on the same MetaData, so one set of migrations creates them all and
a saga's change, its timeline and the commands it sends commit in one transaction.

Constraints are named by convention so that migrations name them the same way in every
environment and a later revision can drop them by name.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from checkout_kit.db import service_metadata
from checkout_kit.inbox import inbox_table
from checkout_kit.outbox import outbox_table
from checkout_orchestrator.domain.state import SagaState

metadata = service_metadata()

STATE_LENGTH: Final = 32
_STATES: Final = ", ".join(f"'{state.value}'" for state in SagaState)

sagas = Table(
    "sagas",
    metadata,
    Column("saga_id", UUID(as_uuid=True), primary_key=True, comment="Chosen by the gateway (CheckoutInitiated)."),
    Column("state", String(STATE_LENGTH), nullable=False, comment="Where the saga is (SagaState)."),
    Column("version", Integer, nullable=False, comment="Optimistic concurrency: +1 on every update."),
    Column("customer_id", Text, nullable=False),
    Column("currency", Text, nullable=False, comment="ISO 4217 code the customer pays in."),
    Column("payment_token", Text, nullable=False, comment="Provider token for the payment method."),
    Column("cart_id", Text, nullable=True, comment="The cart the checkout came from, if any."),
    Column("lines", JSONB, nullable=False, comment="[{sku, quantity, unit_price_minor}], priced once reserved."),
    Column("amount_minor", BigInteger, nullable=False, comment="The total in minor units (0 until reserved)."),
    Column("reservation_id", Text, nullable=True),
    Column("payment_id", Text, nullable=True),
    Column("order_id", Text, nullable=True),
    Column("failure_code", Text, nullable=True, comment="FailureCode name when the saga fails."),
    Column("failure_message", Text, nullable=True),
    Column("pending", JSONB, nullable=False, comment="Steps awaiting a reply → commands sent so far."),
    Column("done", JSONB, nullable=False, comment="Steps whose reply arrived."),
    Column(
        "step_sent_at",
        JSONB,
        nullable=False,
        server_default="{}",
        comment="Pending steps → when their command was first sent (ISO 8601): step latency starts there.",
    ),
    Column("deadline_at", DateTime(timezone=True), nullable=True, comment="When the earliest pending step times out."),
    Column("trace_id", Text, nullable=True, comment="The checkout's trace (W3C trace id, 32 hex digits)."),
    Column(
        "trace_context",
        JSONB,
        nullable=True,
        comment="W3C trace context of the latest transition: deadline retries and compensations continue it.",
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column(
        "finished_at",
        DateTime(timezone=True),
        nullable=True,
        comment="When the saga first reached COMPLETED or FAILED (a late reply may reopen a FAILED one).",
    ),
    CheckConstraint(f"state IN ({_STATES})", name="state_known"),
    CheckConstraint("version >= 0", name="version_non_negative"),
    comment="One checkout saga each: the orchestrator's state machine.",
)
# Terminal sagas have no deadline (the rules clear it), so this index holds only sagas in flight
# and stays small however many sagas completed; ``deadline_at <= :now`` implies its predicate.
Index("ix_sagas_deadline_at_open", sagas.c.deadline_at, postgresql_where=sagas.c.deadline_at.is_not(None))
Index("ix_sagas_created_at", sagas.c.created_at)
Index("ix_sagas_state_created_at", sagas.c.state, sagas.c.created_at)

saga_steps = Table(
    "saga_steps",
    metadata,
    Column(
        "saga_id", UUID(as_uuid=True), ForeignKey("sagas.saga_id", ondelete="CASCADE"), primary_key=True, nullable=False
    ),
    Column(
        "seq", Integer, primary_key=True, nullable=False, comment="1, 2, 3 … per saga, in the order things happened."
    ),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("state", String(STATE_LENGTH), nullable=False, comment="The saga's state once the step happened."),
    Column("event", Text, nullable=False, comment="What happened (a reply received, a command sent …)."),
    Column("detail", Text, nullable=False, server_default=""),
    comment="Each saga's timeline, as the status API shows it.",
)

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
