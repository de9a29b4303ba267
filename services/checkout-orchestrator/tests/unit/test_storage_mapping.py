"""Saga rows ↔ the rules' Saga: nothing is lost on the way to PostgreSQL and back."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid

import pytest

from checkout_orchestrator.domain.state import Line, Saga, SagaState, Step
from checkout_orchestrator.storage.sagas import from_row, to_row
from checkout_orchestrator.storage.tables import sagas

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def full_saga() -> Saga:
    return Saga(
        saga_id=str(uuid.uuid4()),
        customer_id="cust_1",
        currency="EUR",
        payment_token="tok_visa",
        lines=[Line("SKU-1", 2, 1250), Line("SKU-2", 1)],
        state=SagaState.COMPENSATING,
        version=4,
        reservation_id="res-1",
        payment_id="pay-1",
        amount_minor=2500,
        order_id=None,
        failure_code="FAILURE_CODE_ORDER_REJECTED",
        failure_message="no",
        pending={Step.REFUND_PAYMENT: 2, Step.RELEASE_INVENTORY: 1},
        done={Step.RESERVE_INVENTORY, Step.PROCESS_PAYMENT},
        deadline_at=T0 + dt.timedelta(seconds=10),
        cart_id="cart-1",
        created_at=T0,
        updated_at=T0 + dt.timedelta(seconds=3),
    )


def test_a_saga_survives_the_round_trip() -> None:
    saga = full_saga()
    assert from_row({**to_row(saga), "trace_id": None}) == saga


def test_a_fresh_saga_survives_the_round_trip() -> None:
    saga = Saga(saga_id=str(uuid.uuid4()), customer_id="c", currency="EUR", payment_token="t", lines=[Line("A", 1)])
    assert from_row(to_row(saga)) == saga


def test_the_row_has_exactly_the_table_columns_but_the_trace_id() -> None:
    assert set(to_row(full_saga())) == set(sagas.c.keys()) - {"trace_id"}


def test_every_field_of_the_saga_has_a_column() -> None:
    assert {f.name for f in dataclasses.fields(Saga)} <= set(sagas.c.keys())


def test_json_columns_hold_plain_json_in_a_stable_order() -> None:
    row = to_row(full_saga())
    assert json.loads(json.dumps(row["lines"])) == [
        {"sku": "SKU-1", "quantity": 2, "unit_price_minor": 1250},
        {"sku": "SKU-2", "quantity": 1, "unit_price_minor": 0},
    ]
    assert row["pending"] == {"refund_payment": 2, "release_inventory": 1}
    assert row["done"] == ["process_payment", "reserve_inventory"]
    assert isinstance(row["saga_id"], uuid.UUID)


def test_an_unknown_step_or_state_is_refused_not_guessed() -> None:
    row = to_row(full_saga())
    with pytest.raises(ValueError, match="teleport"):
        from_row({**row, "pending": {"teleport": 1}})
    with pytest.raises(ValueError, match="LIMBO"):
        from_row({**row, "state": "LIMBO"})
