"""After every scenario (conftest runs this file last): the saga's invariants over all sagas of the run."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
from saga_platform import DEADLINE_BUDGET_S, SagaPlatform

from checkout_invariants import Report, check

pytestmark = pytest.mark.integration


async def _settled_report(platform: SagaPlatform, started: list[str]) -> Report:
    """Check once every saga of the run is terminal, or once the deadline budget has passed.

    A scenario that failed half-way can leave sagas in flight; they are given their budget to
    finish rather than reported as stuck before their time.
    """
    budget = dt.timedelta(seconds=DEADLINE_BUDGET_S)
    give_up = time.monotonic() + min(DEADLINE_BUDGET_S, 180)
    while True:
        report = await check(platform.dsn, stock_before=platform.stock_before, deadline_budget=budget, saga_ids=started)
        if set(report.sagas) <= {"COMPLETED", "FAILED"} or time.monotonic() > give_up:
            return report
        await asyncio.sleep(1.0)


def test_every_invariant_holds_over_the_whole_run(platform: SagaPlatform) -> None:
    started = sorted(set(platform.started))
    if not started:
        pytest.skip("no saga ran in this session: run this file together with the scenarios")
    report = asyncio.run(_settled_report(platform, started))
    assert report.ok, report.summary()
    known = sum(report.sagas.values())
    assert known == len(started), f"the orchestrator knows {known} of the {len(started)} accepted sagas"
    assert set(report.sagas) <= {"COMPLETED", "FAILED"}, report.summary()
    platform.timings["invariants"] = report.summary()
