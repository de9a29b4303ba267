"""Wall times as a client sees them: measured and recorded (timings.json, session summary), never asserted."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter

import pytest
from saga_platform import Client, SagaPlatform, checkout_body, run_concurrently

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("default_deadlines")]


def test_one_checkout_end_to_end(platform: SagaPlatform, client: Client) -> None:
    runs = []
    for index in range(5):
        began = time.monotonic()
        saga_id = client.start(checkout_body({"E2E-SINGLE": 1}, customer=f"cust_single_{index}"))
        final = client.wait(saga_id, timeout_s=30)
        runs.append(time.monotonic() - began)
        assert final["status"] == "COMPLETED", final
    median = statistics.median(runs)
    platform.timings["single_checkout"] = {
        "what": "POST /api/checkout/initiate → GET /api/checkout/{id} says COMPLETED (polled every 50 ms)",
        "runs_s": [round(r, 4) for r in runs],
        "median_s": round(median, 4),
        "min_s": round(min(runs), 4),
        "max_s": round(max(runs), 4),
    }
    platform.record("one checkout end to end (median of 5)", "COMPLETED", median)


def test_a_hundred_concurrent_checkouts(platform: SagaPlatform) -> None:
    bodies = [checkout_body({"E2E-BULK": 1}, customer=f"cust_bulk_{i}") for i in range(100)]
    finals, elapsed = asyncio.run(run_concurrently(platform, bodies, timeout_s=240))
    outcomes = Counter(str(f["status"]) for f in finals)
    failures = Counter(str(f["failure_code"]) for f in finals if f["status"] == "FAILED")
    platform.timings["concurrent_100"] = {
        "what": "100 initiates at once → every GET /api/checkout/{id} terminal",
        "deadlines": platform.deadlines or "the orchestrator's defaults",
        "seconds": round(elapsed, 3),
        "outcomes": dict(outcomes),
        "failures": dict(failures),
    }
    platform.record("100 concurrent checkouts", ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items())), elapsed)
    assert outcomes == {"COMPLETED": 100}, f"enough stock for all: {dict(outcomes)} {dict(failures)}"
