"""The checkout request's bounds, and what makes two requests the same one."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from checkout_gateway.api.models import CheckoutRequest, OrchestratorSaga
from checkout_gateway.initiation import fingerprint
from checkout_gateway.status import public_status

BASE = {"customer_id": "cust_1", "currency": "EUR", "payment_token": "tok_visa"}


def request(**fields: object) -> CheckoutRequest:
    return CheckoutRequest.model_validate({**BASE, "items": [{"sku": "A", "quantity": 1}], **fields})


@pytest.mark.parametrize("token", ["tok_visa", "tok_chargeDeclined", "tok_timeout"])
def test_the_simulator_tokens_are_accepted(token: str) -> None:
    assert request(payment_token=token).payment_token == token


@pytest.mark.parametrize("token", ["visa", "tok_", "tok_with space", "tok_" + "x" * 97, "pm_card"])
def test_other_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValidationError, match="payment_token"):
        request(payment_token=token)


@pytest.mark.parametrize(("count", "valid"), [(1, True), (100, True), (101, False)])
def test_at_most_100_lines(count: int, valid: bool) -> None:
    items = [{"sku": f"S{n}", "quantity": 1} for n in range(count)]
    if valid:
        assert len(request(items=items).items or []) == count
    else:
        with pytest.raises(ValidationError, match="at most 100 items"):
            request(items=items)


def test_a_cart_request_needs_no_items_or_currency() -> None:
    cart_id = uuid.uuid4()
    parsed = CheckoutRequest.model_validate({"customer_id": "c", "cart_id": str(cart_id), "payment_token": "tok_visa"})
    assert parsed.cart_id == cart_id
    assert parsed.items is None
    assert parsed.currency is None


def test_the_fingerprint_ignores_line_order_but_nothing_else() -> None:
    one = request(items=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}])
    same = request(items=[{"sku": "B", "quantity": 2}, {"sku": "A", "quantity": 1}])
    more = request(items=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 3}])
    other_token = request(items=[{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}], payment_token="tok_x")

    assert fingerprint(one.normalised()) == fingerprint(same.normalised())
    assert len({fingerprint(r.normalised()) for r in (one, more, other_token)}) == 3


@pytest.mark.parametrize(
    ("state", "status"),
    [("STARTED", "PENDING"), ("COMPENSATING", "PENDING"), ("COMPLETED", "COMPLETED"), ("FAILED", "FAILED")],
)
def test_public_status(state: str, status: str) -> None:
    assert public_status(state) == status


def test_structured_step_details_are_shown_as_text() -> None:
    saga = OrchestratorSaga.model_validate(
        {
            "saga_id": str(uuid.uuid4()),
            "state": "FAILED",
            "steps": [{"at": "2026-01-01T00:00:00Z", "state": "FAILED", "event": "X", "detail": {"skus": ["A"]}}],
            "unknown_field": 1,
        }
    )
    assert saga.steps[0].detail == '{"skus": ["A"]}'
