"""After every scenario: the saga's invariants over every saga the run started (before the deletion drops them)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from deployed import DEADLINE_BUDGET_S, DeployedPlatform

from checkout_invariants import Report, check

pytestmark = pytest.mark.integration


async def _settled(platform: DeployedPlatform, started: list[str]) -> Report:
    """Check once every saga is terminal (a scenario that failed half-way gets its deadline budget)."""
    give_up = time.monotonic() + min(DEADLINE_BUDGET_S, 180)
    while True:
        report = await check(
            platform.dsn,
            stock_before=platform.stock_before,
            deadline_budget=dt.timedelta(seconds=DEADLINE_BUDGET_S),
            schemas=platform.schemas(),
            saga_ids=started,
        )
        if set(report.sagas) <= {"COMPLETED", "FAILED"} or time.monotonic() > give_up:
            return report
        await asyncio.sleep(1.0)


def test_every_invariant_holds_over_the_whole_run(platform: DeployedPlatform) -> None:
    started = sorted(set(platform.started))
    if not started:
        pytest.skip("no saga ran in this session: run this file together with the scenarios")
    report = asyncio.run(_settled(platform, started))
    platform.timings["invariants"] = report.summary()
    assert report.ok, report.summary()
    assert sum(report.sagas.values()) == len(started), report.summary()
    assert set(report.sagas) <= {"COMPLETED", "FAILED"}, report.summary()
    platform.record("invariant check", report.summary(), 0.0)
