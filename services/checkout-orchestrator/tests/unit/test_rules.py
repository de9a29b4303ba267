"""The saga's rules, input by input: every path to a terminal state, retries, late replies."""

from __future__ import annotations

import copy
import datetime as dt
import uuid

from checkout.v1 import commands_pb2, events_pb2, types_pb2
from checkout_orchestrator.domain import rules
from checkout_orchestrator.domain.state import Saga, SagaState, Step

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = rules.Policy(step_timeout=dt.timedelta(seconds=5), max_attempts=3, max_compensation_attempts=4)
FC = types_pb2.FailureCode


def initiated(**overrides: object) -> events_pb2.CheckoutInitiated:
    fields: dict[str, object] = {
        "saga_id": str(uuid.uuid4()),
        "customer_id": "cust_1",
        "currency": "EUR",
        "payment_token": "tok_visa",
        "items": [types_pb2.LineItem(sku="SKU-1", quantity=2)],
    }
    fields.update(overrides)
    return events_pb2.CheckoutInitiated(**fields)  # type: ignore[arg-type]


def started() -> Saga:
    outcome = rules.start(initiated(), T0, POLICY)
    assert outcome.saga.state is SagaState.INVENTORY_RESERVATION_PENDING
    return outcome.saga


def reserved(saga: Saga) -> events_pb2.InventoryReserved:
    return events_pb2.InventoryReserved(
        saga_id=saga.saga_id,
        reservation_id="res-1",
        items=[
            types_pb2.LineItem(sku="SKU-1", quantity=2, unit_price=types_pb2.Money(amount_minor=1250, currency="EUR"))
        ],
        total=types_pb2.Money(amount_minor=2500, currency="EUR"),
    )


def apply(saga: Saga, event: object, at: dt.datetime = T0) -> rules.Outcome:
    return rules.on_event(saga, event, at, POLICY)  # type: ignore[arg-type]


def to_payment_pending() -> Saga:
    saga = started()
    return apply(saga, reserved(saga)).saga


def to_order_pending() -> Saga:
    saga = to_payment_pending()
    return apply(saga, events_pb2.PaymentProcessed(saga_id=saga.saga_id, payment_id="pay-1")).saga


def test_start_sends_reserve_inventory_with_a_deadline() -> None:
    outcome = rules.start(initiated(), T0, POLICY)
    [command] = outcome.commands
    assert isinstance(command, commands_pb2.ReserveInventory)
    assert [(i.sku, i.quantity) for i in command.items] == [("SKU-1", 2)]
    assert outcome.saga.deadline_at == T0 + POLICY.step_timeout
    assert [e.state for e in outcome.timeline][:1] == [SagaState.STARTED]


def test_empty_checkout_fails_at_once_without_commands() -> None:
    outcome = rules.start(initiated(items=[]), T0, POLICY)
    assert outcome.saga.state is SagaState.FAILED
    assert outcome.saga.failure_code == "FAILURE_CODE_INVALID_REQUEST"
    assert outcome.commands == []


def test_happy_path_reaches_completed_with_one_charge_of_the_priced_total() -> None:
    saga = started()
    outcome = apply(saga, reserved(saga))
    [payment] = outcome.commands
    assert isinstance(payment, commands_pb2.ProcessPayment)
    assert (payment.amount.amount_minor, payment.amount.currency) == (2500, "EUR")
    saga = outcome.saga
    outcome = apply(saga, events_pb2.PaymentProcessed(saga_id=saga.saga_id, payment_id="pay-1"))
    [order] = outcome.commands
    assert isinstance(order, commands_pb2.CreateOrder)
    assert order.payment_id == "pay-1"
    assert order.items[0].unit_price.amount_minor == 1250
    outcome = apply(outcome.saga, events_pb2.OrderCreated(saga_id=saga.saga_id, order_id="ord-1"))
    assert outcome.saga.state is SagaState.COMPLETED
    assert outcome.saga.order_id == "ord-1"
    assert outcome.saga.deadline_at is None
    assert outcome.commands == []


def test_out_of_stock_fails_without_any_charge() -> None:
    saga = started()
    outcome = apply(
        saga,
        events_pb2.InventoryReservationFailed(
            saga_id=saga.saga_id, reason=FC.FAILURE_CODE_OUT_OF_STOCK, message="SKU-1: 1 left", skus=["SKU-1"]
        ),
    )
    assert outcome.saga.state is SagaState.FAILED
    assert outcome.saga.failure_code == "FAILURE_CODE_OUT_OF_STOCK"
    assert outcome.commands == []


def test_declined_payment_releases_the_reservation_then_fails() -> None:
    saga = to_payment_pending()
    outcome = apply(saga, events_pb2.PaymentFailed(saga_id=saga.saga_id, reason=FC.FAILURE_CODE_PAYMENT_DECLINED))
    [release] = outcome.commands
    assert isinstance(release, commands_pb2.ReleaseInventory)
    assert release.reservation_id == "res-1"
    assert outcome.saga.state is SagaState.COMPENSATING
    outcome = apply(outcome.saga, events_pb2.InventoryReleased(saga_id=saga.saga_id, reservation_id="res-1"))
    assert outcome.saga.state is SagaState.FAILED
    assert outcome.saga.failure_code == "FAILURE_CODE_PAYMENT_DECLINED"


def test_order_failure_refunds_and_releases_and_fails_when_both_confirmed() -> None:
    saga = to_order_pending()
    outcome = apply(saga, events_pb2.OrderCreationFailed(saga_id=saga.saga_id, reason=FC.FAILURE_CODE_ORDER_REJECTED))
    assert {type(c) for c in outcome.commands} == {commands_pb2.RefundPayment, commands_pb2.ReleaseInventory}
    refund = next(c for c in outcome.commands if isinstance(c, commands_pb2.RefundPayment))
    assert (refund.payment_id, refund.amount.amount_minor) == ("pay-1", 2500)
    saga = apply(outcome.saga, events_pb2.PaymentRefunded(saga_id=saga.saga_id, payment_id="pay-1")).saga
    assert saga.state is SagaState.COMPENSATING
    saga = apply(saga, events_pb2.InventoryReleased(saga_id=saga.saga_id)).saga
    assert saga.state is SagaState.FAILED


def test_hung_payment_is_retried_then_compensated() -> None:
    saga = to_payment_pending()
    at = T0
    for attempt in (2, 3):
        assert rules.on_deadline(saga, at + dt.timedelta(seconds=4), POLICY).changed is False
        at += POLICY.step_timeout
        outcome = rules.on_deadline(saga, at, POLICY)
        [resent] = outcome.commands
        assert isinstance(resent, commands_pb2.ProcessPayment)
        saga = outcome.saga
        assert saga.pending[Step.PROCESS_PAYMENT] == attempt
    at += POLICY.step_timeout
    outcome = rules.on_deadline(saga, at, POLICY)
    assert outcome.saga.state is SagaState.COMPENSATING
    assert outcome.saga.failure_code == "FAILURE_CODE_DEADLINE_EXCEEDED"
    assert {type(c) for c in outcome.commands} == {commands_pb2.RefundPayment, commands_pb2.ReleaseInventory}
    saga = apply(outcome.saga, events_pb2.PaymentRefunded(saga_id=saga.saga_id))
    saga = apply(saga.saga, events_pb2.InventoryReleased(saga_id=saga.saga.saga_id))
    assert saga.saga.state is SagaState.FAILED


def test_a_charge_reported_after_giving_up_is_refunded() -> None:
    saga = to_payment_pending()
    saga.pending[Step.PROCESS_PAYMENT] = POLICY.max_attempts
    saga = rules.on_deadline(saga, T0 + POLICY.step_timeout, POLICY).saga
    saga = apply(saga, events_pb2.PaymentRefunded(saga_id=saga.saga_id)).saga
    saga = apply(saga, events_pb2.InventoryReleased(saga_id=saga.saga_id)).saga
    assert saga.state is SagaState.FAILED
    outcome = apply(saga, events_pb2.PaymentProcessed(saga_id=saga.saga_id, payment_id="pay-late"))
    [refund] = outcome.commands
    assert isinstance(refund, commands_pb2.RefundPayment)
    assert refund.payment_id == "pay-late"
    assert outcome.saga.state is SagaState.COMPENSATING
    assert apply(outcome.saga, events_pb2.PaymentRefunded(saga_id=saga.saga_id)).saga.state is SagaState.FAILED


def test_duplicate_and_out_of_order_replies_change_nothing() -> None:
    saga = to_order_pending()
    for stale in (
        reserved(saga),
        events_pb2.PaymentProcessed(saga_id=saga.saga_id, payment_id="pay-1"),
        events_pb2.InventoryReservationFailed(saga_id=saga.saga_id),
        events_pb2.PaymentRefunded(saga_id=saga.saga_id),
    ):
        outcome = apply(saga, stale)
        assert not outcome.changed
        assert outcome.saga == saga


def test_unconfirmed_compensation_is_bounded_and_the_saga_still_ends() -> None:
    saga = to_payment_pending()
    saga = apply(saga, events_pb2.PaymentFailed(saga_id=saga.saga_id)).saga
    at = T0
    for _ in range(POLICY.max_compensation_attempts):
        at += POLICY.compensation_timeout
        saga = rules.on_deadline(saga, at, POLICY).saga
    assert saga.state is SagaState.FAILED
    assert "release_inventory unconfirmed" in (saga.failure_message or "")


def test_rules_do_not_mutate_their_input() -> None:
    saga = started()
    before = copy.deepcopy(saga)
    apply(saga, reserved(saga))
    assert saga == before


def test_stock_priced_in_another_currency_is_released_not_charged() -> None:
    saga = started()
    event = reserved(saga)
    event.total.currency = "USD"
    outcome = apply(saga, event)
    [release] = outcome.commands
    assert isinstance(release, commands_pb2.ReleaseInventory)
    assert outcome.saga.state is SagaState.COMPENSATING
    assert outcome.saga.failure_code == "FAILURE_CODE_INVALID_REQUEST"
    assert "USD" in (outcome.saga.failure_message or "")


def test_create_order_is_retried_past_max_attempts_and_never_compensated_on_time() -> None:
    saga = to_order_pending()
    at = T0
    for attempt in range(2, POLICY.max_attempts + 4):
        at += POLICY.step_timeout
        outcome = rules.on_deadline(saga, at, POLICY)
        [resent] = outcome.commands
        assert isinstance(resent, commands_pb2.CreateOrder)
        saga = outcome.saga
        assert saga.state is SagaState.ORDER_CREATION_PENDING
        assert saga.pending[Step.CREATE_ORDER] == attempt
    outcome = apply(saga, events_pb2.OrderCreated(saga_id=saga.saga_id, order_id="ord-late"))
    assert outcome.saga.state is SagaState.COMPLETED
