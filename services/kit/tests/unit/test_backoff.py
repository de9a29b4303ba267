"""Backoff: doubling, capped, jittered; a stop request cuts a wait short."""

from __future__ import annotations

import asyncio

from checkout_kit.backoff import Backoff, wait_or_stop


def test_delays_double_up_to_the_cap_with_jitter_below_each_step() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0)
    for failures, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (500, 4.0)]:
        for _ in range(50):
            assert ceiling / 2 <= backoff.delay(failures) <= ceiling


async def test_wait_returns_false_when_the_time_is_up() -> None:
    assert await wait_or_stop(asyncio.Event(), 0.01) is False


async def test_wait_returns_true_as_soon_as_stop_is_set() -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    # Returns long before the hour is up: the test's timeout would fail it otherwise.
    assert await wait_or_stop(stop, 3_600) is True


async def test_wait_returns_at_once_when_already_stopping() -> None:
    stop = asyncio.Event()
    stop.set()
    assert await wait_or_stop(stop, 3_600) is True
