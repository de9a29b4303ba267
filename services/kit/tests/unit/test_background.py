"""The shared lifecycle of background loops: start once, stop within a grace, report health."""

from __future__ import annotations

import asyncio

import pytest

from checkout_kit.background import BackgroundLoop
from checkout_kit.failpoints import FailpointCrash


class Loop(BackgroundLoop):
    """Runs units of work of ``unit_s`` seconds until stopped; records the hooks it saw."""

    def __init__(self, unit_s: float = 0.01, *, fail_with: Exception | None = None) -> None:
        super().__init__("the test loop", "test-loop")
        self.unit_s = unit_s
        self.fail_with = fail_with
        self.units_done = 0
        self.events: list[str] = []
        self.in_unit = asyncio.Event()

    async def _open(self) -> None:
        self.events.append("open")

    def _interrupt(self) -> None:
        self.events.append("interrupt")

    async def _close(self) -> None:
        self.events.append("close")

    async def _run(self) -> None:
        while not self._stopping.is_set():
            if self.fail_with is not None:
                raise self.fail_with
            self.in_unit.set()
            await asyncio.sleep(self.unit_s)
            self.units_done += 1


async def test_stop_lets_the_unit_in_flight_finish_and_closes() -> None:
    loop = Loop(unit_s=0.2)
    await loop.start()
    await loop.check_ready()
    await asyncio.wait_for(loop.in_unit.wait(), 5)
    await asyncio.wait_for(loop.stop(grace_s=5), 5)
    assert loop.units_done == 1
    assert loop.events == ["open", "interrupt", "close"]
    assert not loop.running
    with pytest.raises(RuntimeError, match="the test loop is not running"):
        await loop.check_ready()


async def test_stop_abandons_the_unit_after_the_grace() -> None:
    loop = Loop(unit_s=60)
    await loop.start()
    await asyncio.wait_for(loop.in_unit.wait(), 5)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(loop.stop(grace_s=0.1), 5)
    assert asyncio.get_running_loop().time() - started < 5
    assert loop.units_done == 0
    assert loop.events[-1] == "close"


async def test_a_second_start_is_refused() -> None:
    loop = Loop()
    await loop.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            await loop.start()
    finally:
        await loop.stop(grace_s=5)


async def test_stopping_a_loop_never_started_still_closes() -> None:
    loop = Loop()
    await loop.stop(grace_s=1)
    assert loop.events == ["close"]


@pytest.mark.parametrize(
    ("error", "reported"),
    [(FailpointCrash("x.y"), "crashed at a failpoint: x.y"), (ValueError("a bug"), "ended on ValueError: a bug")],
)
async def test_a_loop_that_ended_on_its_own_is_not_ready_and_says_why(error: Exception, reported: str) -> None:
    loop = Loop(fail_with=error)
    await loop.start()
    await asyncio.wait_for(loop.wait(), 5)
    assert not loop.running
    with pytest.raises(RuntimeError, match=reported):
        await loop.check_ready()
    await loop.stop(grace_s=1)
