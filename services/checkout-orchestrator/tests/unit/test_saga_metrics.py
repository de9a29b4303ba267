"""What each kind of saga change adds to the metrics: counted once, on the first time it happens."""

from __future__ import annotations

import datetime as dt
import uuid

from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest

from checkout.v1 import events_pb2, types_pb2
from checkout_orchestrator.domain import rules
from checkout_orchestrator.domain.state import Saga, SagaState, Step
from checkout_orchestrator.metrics import COMPLETED, FAILED, SagaMetrics, Transition, reason_label
from checkout_orchestrator.storage.sagas import from_row, to_row

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = rules.Policy(step_timeout=dt.timedelta(seconds=5), max_attempts=2, max_compensation_attempts=3)


def seconds(n: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=n)


def initiated(*, quantity: int = 1) -> events_pb2.CheckoutInitiated:
    saga_id = str(uuid.uuid4())
    return events_pb2.CheckoutInitiated(
        saga_id=saga_id,
        customer_id="cust_1",
        currency="EUR",
        payment_token="tok_visa",
        items=[types_pb2.LineItem(sku="SKU-1", quantity=quantity)],
    )


def reserved(saga: Saga) -> events_pb2.InventoryReserved:
    return events_pb2.InventoryReserved(
        saga_id=saga.saga_id, reservation_id="res-1", total=types_pb2.Money(amount_minor=100, currency="EUR")
    )


def step(saga: Saga, event: object, at: dt.datetime) -> tuple[Saga, Transition]:
    """Apply a reply as the handler does; return the saga after it and what the metrics record."""
    outcome = rules.on_event(saga, event, at, POLICY)  # type: ignore[arg-type]
    assert outcome.changed
    return outcome.saga, Transition.of(outcome, at, event)  # type: ignore[arg-type]


def test_a_start_counts_a_started_saga() -> None:
    outcome = rules.start(initiated(), T0, POLICY)
    transition = Transition.of(outcome, T0)
    assert transition == Transition(started=True)


def test_an_invalid_checkout_starts_and_fails_at_once() -> None:
    outcome = rules.start(initiated(quantity=0), T0, POLICY)
    transition = Transition.of(outcome, T0)
    assert transition.started
    assert (transition.outcome, transition.failure_reason, transition.duration_s) == (FAILED, "invalid_request", 0.0)
    assert transition.compensation_reason is None


def test_the_happy_path_times_each_step_and_the_saga() -> None:
    saga = rules.start(initiated(), T0, POLICY).saga
    saga, reserve = step(saga, reserved(saga), seconds(0.25))
    saga, pay = step(saga, events_pb2.PaymentProcessed(saga_id=saga.saga_id, payment_id="p"), seconds(0.75))
    saga, order = step(saga, events_pb2.OrderCreated(saga_id=saga.saga_id, order_id="o"), seconds(1.5))

    assert reserve == Transition(steps=((Step.RESERVE_INVENTORY, 0.25),))
    assert pay == Transition(steps=((Step.PROCESS_PAYMENT, 0.5),))
    assert order.steps == ((Step.CREATE_ORDER, 0.75),)
    assert (order.outcome, order.duration_s, order.failure_reason) == (COMPLETED, 1.5, None)


def test_a_step_re_sent_by_its_deadline_is_timed_from_its_first_command() -> None:
    saga = rules.start(initiated(), T0, POLICY).saga
    resent = rules.on_deadline(saga, seconds(5), POLICY)
    assert resent.saga.pending == {Step.RESERVE_INVENTORY: 2}
    assert Transition.of(resent, seconds(5)).empty  # a re-send is no transition
    _, reserve = step(resent.saga, reserved(saga), seconds(6))
    assert reserve.steps == ((Step.RESERVE_INVENTORY, 6.0),)


def test_a_declined_payment_compensates_then_fails_with_its_reason() -> None:
    saga = rules.start(initiated(), T0, POLICY).saga
    saga, _ = step(saga, reserved(saga), seconds(1))
    declined = events_pb2.PaymentFailed(saga_id=saga.saga_id, reason=types_pb2.FAILURE_CODE_PAYMENT_DECLINED)
    saga, compensating = step(saga, declined, seconds(2))
    saga, released = step(saga, events_pb2.InventoryReleased(saga_id=saga.saga_id), seconds(4))

    assert compensating.compensation_reason == "payment_declined"
    assert compensating.steps == ((Step.PROCESS_PAYMENT, 1.0),)
    assert compensating.outcome is None
    assert saga.state is SagaState.FAILED
    assert released.compensation_reason is None
    assert released.steps == ((Step.RELEASE_INVENTORY, 2.0),)
    assert (released.outcome, released.failure_reason, released.duration_s) == (FAILED, "payment_declined", 4.0)


def test_a_late_charge_reopening_a_failed_saga_is_not_counted_again() -> None:
    saga = rules.start(initiated(), T0, POLICY).saga
    saga, _ = step(saga, reserved(saga), seconds(1))
    gave_up = rules.on_deadline(rules.on_deadline(saga, seconds(6), POLICY).saga, seconds(11), POLICY)
    assert Transition.of(gave_up, seconds(11)).compensation_reason == "deadline_exceeded"
    saga = gave_up.saga
    for reply in (events_pb2.PaymentRefunded, events_pb2.InventoryReleased):
        saga, closed = step(saga, reply(saga_id=saga.saga_id), seconds(12))
    assert (saga.state, closed.outcome, closed.failure_reason) == (SagaState.FAILED, FAILED, "deadline_exceeded")
    assert saga.finished_at == seconds(12)

    saga, reopened = step(saga, events_pb2.PaymentProcessed(saga_id=saga.saga_id, payment_id="late"), seconds(20))
    assert saga.state is SagaState.COMPENSATING
    assert reopened.empty  # not a second compensation: the same saga undoing a late effect
    saga, reclosed = step(saga, events_pb2.PaymentRefunded(saga_id=saga.saga_id), seconds(21))
    assert saga.state is SagaState.FAILED
    assert reclosed.outcome is None  # not a second failure
    assert reclosed.steps == ((Step.REFUND_PAYMENT, 1.0),)
    assert saga.finished_at == seconds(12)


def test_a_reply_the_saga_no_longer_waits_for_times_no_step() -> None:
    saga = rules.start(initiated(), T0, POLICY).saga
    saga, _ = step(saga, reserved(saga), seconds(1))
    outcome = rules.on_event(saga, reserved(saga), seconds(2), POLICY)
    assert not outcome.changed  # a duplicate: the handler stores nothing


def test_the_deadline_budget_covers_every_attempt_of_every_step() -> None:
    policy = rules.Policy()
    assert policy.deadline_budget == dt.timedelta(seconds=3 * 3 * 10 + 2 * 30 * 10)


def test_reasons_are_short_lower_case_codes() -> None:
    assert reason_label("FAILURE_CODE_OUT_OF_STOCK") == "out_of_stock"
    assert reason_label(None) == "unspecified"
    assert reason_label("FAILURE_CODE_") == "unspecified"


def test_recording_counts_and_observes_with_the_exemplar() -> None:
    registry = CollectorRegistry()
    metrics = SagaMetrics.of(registry)
    assert SagaMetrics.of(registry) is metrics
    metrics.record(Transition(started=True))
    metrics.record(
        Transition(
            outcome=FAILED, failure_reason="payment_declined", duration_s=2.0, steps=((Step.PROCESS_PAYMENT, 1),)
        ),
        exemplar={"trace_id": "ab" * 16},
    )
    metrics.set_in_flight({SagaState.PAYMENT_PENDING: 3, SagaState.COMPENSATING: 0}, stuck=1)

    assert registry.get_sample_value("checkout_sagas_started_total") == 1
    assert registry.get_sample_value("checkout_sagas_failed_total", {"reason": "payment_declined"}) == 1
    assert registry.get_sample_value("checkout_sagas_completed_total") == 0
    assert registry.get_sample_value("checkout_saga_duration_seconds_count", {"outcome": "failed"}) == 1
    assert registry.get_sample_value("checkout_saga_step_duration_seconds_count", {"step": "process_payment"}) == 1
    assert registry.get_sample_value("checkout_sagas_in_flight", {"state": "PAYMENT_PENDING"}) == 3
    assert registry.get_sample_value("checkout_sagas_stuck") == 1
    exposition = generate_latest(registry).decode()
    assert 'checkout_saga_duration_seconds_bucket{le="2.5",outcome="failed"} 1.0 # {trace_id="' in exposition


def test_the_rows_keep_when_pending_steps_were_sent_and_when_the_saga_finished() -> None:
    saga = rules.start(initiated(), T0, POLICY).saga
    saga, _ = step(saga, reserved(saga), seconds(1))
    saga.finished_at = seconds(9)
    row = to_row(saga)
    assert row["step_sent_at"] == {"process_payment": seconds(1).isoformat()}  # reserve_inventory is done
    back = from_row({**row, "trace_id": None})
    assert back.step_sent_at == {Step.PROCESS_PAYMENT: seconds(1)}
    assert back.finished_at == seconds(9)
