"""One checkout is one trace, across every HTTP and Kafka hop, read back from the real trace backend.

The platform runs as processes with the standard OTEL_* variables pointing at the stack's Jaeger
(sampling ratio 1.0). Each test drives one checkout through the gateway, then asks the backend what
an SRE would: which traces carry this saga id (exactly one, for every service), and does the trace
tell the saga's story in causal order — the gateway's request, the publish of CheckoutInitiated, the
orchestrator's consume, its database writes, each command published and consumed by its participant,
each reply, the deadline the scanner fired, up to the saga's end — with every span's parent in it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Final

import pytest
from saga_platform import Client, SagaPlatform, checkout_body
from trace_tree import Span, Trace, TraceSearch

pytestmark = pytest.mark.integration

BFF: Final = "gateway-bff"
ORCHESTRATOR: Final = "checkout-orchestrator"
SAGA_SERVICES: Final = (BFF, ORCHESTRATOR, "inventory", "payment", "order")
SAGA_ID: Final = "checkout.saga.id"


def labels(spans: Sequence[Span]) -> list[tuple[str, str]]:
    return [(span.service, span.name) for span in spans]


def is_database(span: Span) -> bool:
    return span.tags.get("db.system.name") == "postgresql" and span.kind == "client"


def the_checkout_trace(
    platform: SagaPlatform,
    search: TraceSearch,
    saga_id: str,
    trace_id: str | None,
    services: Sequence[str],
    complete: Callable[[Trace], object],
) -> Trace:
    """The saga's trace once ``complete`` holds; exactly one trace carries its id, for every service."""
    assert trace_id, "the orchestrator recorded no trace id for the saga"
    trace = search.wait_until(trace_id, complete)
    for service in services:
        found = search.by_tag(service, SAGA_ID, saga_id)
        assert [t.trace_id for t in found] == [trace_id], f"{service}: traces tagged with saga {saga_id}"
    settled = search.settled(trace.trace_id)
    record(platform, saga_id, settled)
    return settled


def record(platform: SagaPlatform, saga_id: str, trace: Trace) -> None:
    """The text tree and the span count per service, next to the instance's logs (for people)."""
    counts = ", ".join(f"{service} {count}" for service, count in sorted(trace.services().items()))
    text = f"trace {trace.trace_id} of saga {saga_id}: {len(trace.spans)} spans ({counts})\n{trace.tree_text()}\n"
    (platform.run_dir / f"trace-{saga_id}.txt").write_text(text)
    print(text)


def assert_causal(trace: Trace, path: Sequence[Span]) -> None:
    """One root; every span's parent is in the trace; along ``path`` each span starts after its parent."""
    assert len(trace.roots()) == 1, [span.label for span in trace.roots()]
    assert all(span.parent_trace_id in (None, trace.trace_id) for span in trace.spans.values())
    for parent, child in itertools.pairwise(path):
        assert child.start_us >= parent.start_us, f"{child.label} starts before its parent {parent.label}"


def saga_hops(prefix: str) -> dict[str, list[tuple[str, str]]]:
    """The spans of each hop: a command's publish, its participant's handling and reply, the orchestrator's turn."""
    events, reserve, pay, order = (
        f"{prefix}.checkout-events",
        f"{prefix}.inventory-command",
        f"{prefix}.payment-command",
        f"{prefix}.order-command",
    )

    def turn(state: str) -> list[tuple[str, str]]:
        return [(ORCHESTRATOR, f"process {events}"), (ORCHESTRATOR, f"saga {state}")]

    return {
        "start": [
            (BFF, "POST /api/checkout/initiate"),
            (BFF, f"send {events}"),
            *turn("INVENTORY_RESERVATION_PENDING"),
        ],
        "reserve": [
            (ORCHESTRATOR, f"send {reserve}"),
            ("inventory", f"process {reserve}"),
            ("inventory", f"send {events}"),
        ],
        "pay": [(ORCHESTRATOR, f"send {pay}"), ("payment", f"process {pay}"), ("payment", f"send {events}")],
        "order": [(ORCHESTRATOR, f"send {order}"), ("order", f"process {order}"), ("order", f"send {events}")],
        "release": [
            (ORCHESTRATOR, f"send {reserve}"),
            ("inventory", f"process {reserve}"),
            ("inventory", f"send {events}"),
        ],
        **{
            state: turn(state)
            for state in ("PAYMENT_PENDING", "ORDER_CREATION_PENDING", "COMPLETED", "COMPENSATING", "FAILED")
        },
    }


def test_one_checkout_is_one_trace_from_the_gateway_to_the_completed_saga(
    traced_platform: SagaPlatform, traced_client: Client, trace_search: TraceSearch
) -> None:
    saga_id = traced_client.start(checkout_body({"TRACE-HAPPY": 2}))
    final = traced_client.wait(saga_id)
    assert final["status"] == "COMPLETED", final

    trace = the_checkout_trace(
        traced_platform, trace_search, saga_id, final["trace_id"], SAGA_SERVICES, lambda t: t.find("saga COMPLETED")
    )

    (completed,) = trace.find("saga COMPLETED", ORCHESTRATOR)
    path = trace.ancestry(completed)
    hop = saga_hops(traced_platform.prefix)
    assert labels(path) == [
        *hop["start"],
        *hop["reserve"],
        *hop["PAYMENT_PENDING"],
        *hop["pay"],
        *hop["ORDER_CREATION_PENDING"],
        *hop["order"],
        *hop["COMPLETED"],
    ]
    assert_causal(trace, path)
    assert set(trace.services()) >= set(SAGA_SERVICES)
    assert path[0].kind == "server"
    assert path[0].tags.get(SAGA_ID) == saga_id

    for span in path:
        if span.kind in ("producer", "consumer"):
            assert span.tags.get(SAGA_ID) == saga_id, span.label
            assert span.tags.get("messaging.system") == "kafka", span.label
        if span.kind == "consumer":
            assert span.tags.get("messaging.operation.type") == "process", span.label
            # Every consumed message's inbox row and effects are written inside its span.
            assert any(is_database(child) for child in trace.children[span.span_id]), span.label
        if span.name.startswith("saga "):
            assert span.tags.get("checkout.saga.state") == span.name.removeprefix("saga "), span.label
            assert span.tags.get(SAGA_ID) == saga_id
            assert any(is_database(child) for child in trace.children[span.span_id]), span.label
    steps = {span.service: span.tags.get("checkout.saga.step") for span in path if span.kind == "consumer"}
    assert {key: steps[key] for key in ("inventory", "payment", "order")} == {
        "inventory": "reserve_inventory",
        "payment": "process_payment",
        "order": "create_order",
    }
    # The gateway's own writes (checkout row, outbox row) are children of its request span.
    assert any(is_database(child) for child in trace.children[path[0].span_id])


def test_a_declined_payment_and_its_compensation_stay_in_the_checkout_trace(
    traced_platform: SagaPlatform, traced_client: Client, trace_search: TraceSearch
) -> None:
    saga_id = traced_client.start(checkout_body({"TRACE-DECLINE": 1}, card="tok_chargeDeclined"))
    final = traced_client.wait(saga_id)
    assert (final["status"], final["failure_code"]) == ("FAILED", "FAILURE_CODE_PAYMENT_DECLINED"), final

    trace = the_checkout_trace(
        traced_platform,
        trace_search,
        saga_id,
        final["trace_id"],
        (BFF, ORCHESTRATOR, "inventory", "payment"),
        lambda t: t.find("saga FAILED"),
    )

    (failed,) = trace.find("saga FAILED", ORCHESTRATOR)
    path = trace.ancestry(failed)
    hop = saga_hops(traced_platform.prefix)
    assert labels(path) == [
        *hop["start"],
        *hop["reserve"],
        *hop["PAYMENT_PENDING"],
        *hop["pay"],
        *hop["COMPENSATING"],
        *hop["release"],
        *hop["FAILED"],
    ]
    assert_causal(trace, path)
    release = next(
        span
        for span in path
        if span.name.startswith("send ")
        and span.service == ORCHESTRATOR
        and span.tags.get("cloudevents.event_type") == "checkout.v1.ReleaseInventory"
    )
    released = trace.children[release.span_id]
    assert [(s.service, s.tags.get("checkout.saga.step")) for s in released] == [("inventory", "release_inventory")]
    assert trace.find("saga COMPENSATING", ORCHESTRATOR)[0].tags.get("checkout.saga.step") == "release_inventory"
    assert "order" not in trace.services()


def test_deadline_retries_and_compensation_stay_in_the_checkout_trace(
    traced_platform: SagaPlatform, traced_client: Client, trace_search: TraceSearch
) -> None:
    # tok_timeout: the payment provider never answers, so the orchestrator's deadlines act (2 s, 2 attempts):
    # ProcessPayment is sent again, then the saga gives up, refunds (voids) and releases.
    saga_id = traced_client.start(checkout_body({"TRACE-TIMEOUT": 1}, card="tok_timeout"))
    final = traced_client.wait(saga_id, timeout_s=60)
    assert (final["status"], final["failure_code"]) == ("FAILED", "FAILURE_CODE_DEADLINE_EXCEEDED"), final

    trace = the_checkout_trace(
        traced_platform,
        trace_search,
        saga_id,
        final["trace_id"],
        (BFF, ORCHESTRATOR, "inventory", "payment"),
        lambda t: t.find("saga FAILED"),
    )

    deadlines = trace.find("deadline PAYMENT_PENDING", ORCHESTRATOR)
    assert len(deadlines) == 2, trace.tree_text()
    assert [d.tags.get("checkout.saga.step") for d in deadlines] == ["process_payment", "process_payment"]
    assert [d.tags.get("checkout.saga.attempt") for d in deadlines] == [1, 2]
    # Each fired deadline continues the trace where the saga's last transition left it.
    first_retry, give_up = deadlines
    before = trace.parent(first_retry)
    assert before is not None
    assert before.name == "saga PAYMENT_PENDING"
    assert trace.parent(before) is not None
    assert trace.parent(before).name == f"process {traced_platform.prefix}.checkout-events"
    retried = trace.children[first_retry.span_id]
    assert labels(retried) == [(ORCHESTRATOR, "saga PAYMENT_PENDING")]
    assert trace.parent(give_up) == retried[0]  # the second deadline continues from the retry
    prefix = traced_platform.prefix
    assert [
        (s.name, s.tags.get("cloudevents.event_type"))
        for s in trace.children[retried[0].span_id]
        if s.kind == "producer"
    ] == [(f"send {prefix}.payment-command", "checkout.v1.ProcessPayment")]
    (compensating,) = trace.children[give_up.span_id]
    assert compensating.name == "saga COMPENSATING"
    sent = sorted(
        s.tags.get("cloudevents.event_type") for s in trace.children[compensating.span_id] if s.kind == "producer"
    )
    assert sent == ["checkout.v1.RefundPayment", "checkout.v1.ReleaseInventory"]

    (failed,) = trace.find("saga FAILED", ORCHESTRATOR)
    path = trace.ancestry(failed)
    assert give_up in path
    assert first_retry in path
    assert path[0].service == BFF
    assert_causal(trace, path)
    steps = sorted(s.tags.get("checkout.saga.step") for s in trace.find(f"process {prefix}.payment-command", "payment"))
    assert steps == ["process_payment", "process_payment", "refund_payment"]
