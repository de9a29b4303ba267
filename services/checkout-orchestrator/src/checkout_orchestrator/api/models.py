"""Response bodies of ``/sagas``: what a client may know about a saga (never its payment token)."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from typing import Final

from pydantic import BaseModel, Field

from checkout_orchestrator.domain.rules import TimelineEntry
from checkout_orchestrator.domain.state import SagaState
from checkout_orchestrator.storage.sagas import SagaRecord


class SagaStatus(enum.StrEnum):
    """What a client waits for: still running, or how it ended."""

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"

    @classmethod
    def of(cls, state: SagaState) -> SagaStatus:
        """The status of a saga in ``state``."""
        if state is SagaState.COMPLETED:
            return cls.COMPLETED
        if state is SagaState.FAILED:
            return cls.FAILED
        return cls.PENDING


STATES_BY_STATUS: Final = {
    status: frozenset(s for s in SagaState if SagaStatus.of(s) is status) for status in SagaStatus
}
"""The saga states each status covers (PENDING: every non-terminal state, COMPENSATING included)."""


class Amount(BaseModel):
    """Money in minor units (0 until the inventory priced the lines)."""

    amount_minor: int = Field(examples=[2500])
    currency: str = Field(examples=["EUR"])


class TimelineStep(BaseModel):
    """One entry of the saga's timeline."""

    at: dt.datetime
    state: SagaState
    """The saga's state once this happened."""
    event: str = Field(examples=["ProcessPayment sent"])
    detail: str = ""

    @classmethod
    def of(cls, entry: TimelineEntry) -> TimelineStep:
        """The API view of a timeline entry."""
        return cls(at=entry.at, state=entry.state, event=entry.event, detail=entry.detail)


class SagaSummary(BaseModel):
    """A saga as ``GET /sagas`` lists it."""

    saga_id: uuid.UUID
    state: SagaState
    status: SagaStatus
    order_id: str | None
    payment_id: str | None
    reservation_id: str | None
    amount: Amount
    failure_code: str | None = Field(examples=["FAILURE_CODE_PAYMENT_DECLINED"])
    """The FailureCode name, once the saga fails."""
    failure_reason: str | None
    """Human-readable detail of the failure."""
    trace_id: str | None
    """The checkout's trace (W3C trace id), to find it in the tracing backend."""
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def fields_of(cls, record: SagaRecord) -> dict[str, object]:
        """The summary's fields, from a stored saga."""
        saga = record.saga
        return {
            "saga_id": uuid.UUID(saga.saga_id),
            "state": saga.state,
            "status": SagaStatus.of(saga.state),
            "order_id": saga.order_id,
            "payment_id": saga.payment_id,
            "reservation_id": saga.reservation_id,
            "amount": Amount(amount_minor=saga.amount_minor, currency=saga.currency),
            "failure_code": saga.failure_code,
            "failure_reason": saga.failure_message,
            "trace_id": record.trace_id,
            "created_at": saga.created_at,
            "updated_at": saga.updated_at,
        }

    @classmethod
    def of(cls, record: SagaRecord) -> SagaSummary:
        """The summary of a stored saga."""
        return cls.model_validate(cls.fields_of(record))


class SagaDetail(SagaSummary):
    """A saga with its timeline: ``GET /sagas/{saga_id}``."""

    steps: list[TimelineStep]
    """What happened, oldest first."""

    @classmethod
    def with_steps(cls, record: SagaRecord, steps: Sequence[TimelineEntry]) -> SagaDetail:
        """The detail view of a stored saga and its timeline."""
        return cls.model_validate({**cls.fields_of(record), "steps": [TimelineStep.of(entry) for entry in steps]})


class SagaList(BaseModel):
    """``GET /sagas``: newest first."""

    sagas: list[SagaSummary]
