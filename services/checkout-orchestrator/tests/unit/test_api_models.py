"""The status API's views: statuses cover every state once, the saga view hides the payment token."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from checkout_orchestrator.api.models import STATES_BY_STATUS, SagaDetail, SagaStatus, SagaSummary
from checkout_orchestrator.domain.rules import TimelineEntry
from checkout_orchestrator.domain.state import Line, Saga, SagaState
from checkout_orchestrator.storage.sagas import SagaRecord

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (SagaState.STARTED, SagaStatus.PENDING),
        (SagaState.INVENTORY_RESERVATION_PENDING, SagaStatus.PENDING),
        (SagaState.PAYMENT_PENDING, SagaStatus.PENDING),
        (SagaState.ORDER_CREATION_PENDING, SagaStatus.PENDING),
        (SagaState.COMPENSATING, SagaStatus.PENDING),
        (SagaState.COMPLETED, SagaStatus.COMPLETED),
        (SagaState.FAILED, SagaStatus.FAILED),
    ],
)
def test_status_of_each_state(state: SagaState, status: SagaStatus) -> None:
    assert SagaStatus.of(state) is status
    assert state in STATES_BY_STATUS[status]


def test_statuses_partition_the_states() -> None:
    covered = [state for states in STATES_BY_STATUS.values() for state in states]
    assert sorted(covered) == sorted(SagaState)


def record() -> SagaRecord:
    saga = Saga(
        saga_id=str(uuid.uuid4()),
        customer_id="cust_1",
        currency="EUR",
        payment_token="tok_secret",
        lines=[Line("SKU-1", 2, 1250)],
        state=SagaState.FAILED,
        amount_minor=2500,
        reservation_id="res-1",
        failure_code="FAILURE_CODE_PAYMENT_DECLINED",
        failure_message="card declined",
        created_at=T0,
        updated_at=T0 + dt.timedelta(seconds=1),
    )
    return SagaRecord(saga=saga, trace_id="0af7651916cd43dd8448eb211c80319c")


def test_the_detail_view_carries_the_outcome_and_the_timeline() -> None:
    stored = record()
    steps = [
        TimelineEntry(T0, SagaState.STARTED, "CheckoutInitiated"),
        TimelineEntry(T0, SagaState.FAILED, "saga failed", "card declined"),
    ]
    body = SagaDetail.with_steps(stored, steps).model_dump(mode="json")
    assert body["saga_id"] == stored.saga.saga_id
    assert (body["state"], body["status"]) == ("FAILED", "FAILED")
    assert body["amount"] == {"amount_minor": 2500, "currency": "EUR"}
    assert (body["failure_code"], body["failure_reason"]) == ("FAILURE_CODE_PAYMENT_DECLINED", "card declined")
    assert body["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert (body["order_id"], body["payment_id"], body["reservation_id"]) == (None, None, "res-1")
    assert body["steps"] == [
        {"at": "2026-01-01T00:00:00Z", "state": "STARTED", "event": "CheckoutInitiated", "detail": ""},
        {"at": "2026-01-01T00:00:00Z", "state": "FAILED", "event": "saga failed", "detail": "card declined"},
    ]
    assert "tok_secret" not in str(body)


def test_the_summary_has_no_timeline() -> None:
    body = SagaSummary.of(record()).model_dump(mode="json")
    assert "steps" not in body
    assert body["status"] == "FAILED"
