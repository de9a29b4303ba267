"""What an SRE sees: a checkout of the installed platform is one trace in the backend; its metrics are in Prometheus."""

from __future__ import annotations

import time

import pytest
from deployed import DeployedPlatform
from saga_platform import Client, checkout_body
from trace_tree import Trace, TraceSearch

from checkout_stack.metrics import PrometheusQuery
from checkout_stack.traces import TraceQuery

pytestmark = pytest.mark.integration

TRACED = {"gateway-bff", "checkout-orchestrator", "inventory", "payment", "order"}
"""The services a paid checkout passes through (the cart is not involved)."""


def test_a_checkout_is_one_trace_across_every_service(platform: DeployedPlatform, client: Client) -> None:
    began = time.monotonic()
    saga_id = client.start(checkout_body({"PE2E-TRACE": 1}))
    final = client.wait(saga_id, timeout_s=60)
    assert final["status"] == "COMPLETED"
    trace_id = final["trace_id"]
    search = TraceSearch(TraceQuery(platform.target.host.traces_query_url))

    def complete(trace: Trace) -> bool:
        return set(trace.services()) >= TRACED and bool(trace.find("saga COMPLETED"))

    trace = search.wait_until(trace_id, complete, timeout_s=60)
    platform.record("checkout trace in the backend", f"{len(trace.spans)} spans", time.monotonic() - began)
    (root,) = trace.roots()
    assert (root.service, root.kind) == ("gateway-bff", "server"), trace.tree_text()
    # One checkout, one trace: every span tagged with this saga is in it.
    tagged = search.by_tag("checkout-orchestrator", "checkout.saga.id", saga_id)
    assert [t.trace_id for t in tagged] == [trace_id]
    (platform.run_dir / f"trace-{saga_id}.txt").write_text(trace.tree_text() + "\n")


def test_the_platforms_metrics_are_scraped(platform: DeployedPlatform) -> None:
    prometheus = PrometheusQuery(platform.target.host.prometheus_url)
    namespace = platform.namespace
    # Every process of every Deployment is a target that answers (2 gateways, 5 other services).
    up = prometheus.wait_for(
        f'sum by (job) (up{{namespace="{namespace}"}})',
        lambda result: len(result) == 6 and all(float(s["value"][1]) >= 1 for s in result),
        timeout_s=90,
    )
    assert {s["metric"]["job"]: float(s["value"][1]) for s in up}["gateway-bff"] == 2
    completed = prometheus.wait_for(
        f'sum(checkout_sagas_completed_total{{namespace="{namespace}"}})',
        lambda result: bool(result) and float(result[0]["value"][1]) >= 50,
        timeout_s=90,
    )
    failed = prometheus.query(f'sum by (reason) (checkout_sagas_failed_total{{namespace="{namespace}"}})')
    reasons = {s["metric"].get("reason") for s in failed if float(s["value"][1]) > 0}
    platform.record(
        "metrics in Prometheus",
        f"completed {float(completed[0]['value'][1]):.0f}, failed by {sorted(r for r in reasons if r)}",
        0.0,
    )
