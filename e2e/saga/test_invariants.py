"""After every scenario (conftest runs this file last): the saga's invariants over all sagas of the run."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from saga_platform import DEADLINE_BUDGET_S, SagaPlatform

from checkout_invariants import check

pytestmark = pytest.mark.integration


def test_every_invariant_holds_over_the_whole_run(platform: SagaPlatform) -> None:
    started = sorted(set(platform.started))
    if not started:
        pytest.skip("no saga ran in this session: run this file together with the scenarios")
    report = asyncio.run(
        check(
            platform.dsn,
            stock_before=platform.stock_before,
            deadline_budget=dt.timedelta(seconds=DEADLINE_BUDGET_S),
            saga_ids=started,
        )
    )
    assert report.ok, report.summary()
    known = sum(report.sagas.values())
    assert known == len(started), f"the orchestrator knows {known} of the {len(started)} accepted sagas"
    assert set(report.sagas) <= {"COMPLETED", "FAILED"}, report.summary()
    platform.timings["invariants"] = report.summary()
