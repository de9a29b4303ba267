"""An open-loop load generator: arrivals on a fixed schedule, whatever the system's answers do.

A closed loop (send, wait, send) slows down with the system and hides its queueing (coordinated
omission). Here arrival ``i`` is due at ``start + i / rate``; each is launched as its own task at its
due time, so a slow answer never delays the next arrival. The generator records how late it launched
each arrival: a step whose lateness grows is a generator that cannot keep up, and its numbers are
flagged rather than trusted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class Arrival:
    """One checkout started by the generator."""

    index: int
    due: float
    """``time.time()`` it was scheduled for."""
    sent: float = 0.0
    """``time.time()`` the request left (or the record was produced)."""
    saga_id: str | None = None
    error: str | None = None


@dataclass
class StepResult:
    """What one rate step produced."""

    rate: float
    duration_s: float
    arrivals: list[Arrival] = field(default_factory=list)

    @property
    def accepted(self) -> list[Arrival]:
        """Arrivals the system accepted (a saga id)."""
        return [a for a in self.arrivals if a.saga_id is not None]

    @property
    def errors(self) -> list[Arrival]:
        """Arrivals refused or failed at the entry point."""
        return [a for a in self.arrivals if a.saga_id is None]

    @property
    def max_lateness_s(self) -> float:
        """Worst delay between an arrival's due time and its launch."""
        return max((a.sent - a.due for a in self.arrivals), default=0.0)


Start = Callable[[int], Awaitable[str]]
"""Start checkout ``index``; return its saga id, raise on refusal."""


async def open_loop(start: Start, *, rate: float, duration_s: float, first_index: int = 0) -> StepResult:
    """Launch ``rate * duration_s`` arrivals at fixed intervals; wait for every entry-point answer."""
    result = StepResult(rate, duration_s)
    count = max(1, round(rate * duration_s))
    began = time.time() + 0.05
    tasks: list[asyncio.Task[None]] = []

    async def one(arrival: Arrival) -> None:
        arrival.sent = time.time()
        try:
            arrival.saga_id = await start(arrival.index)
        except Exception as exc:  # recorded per arrival: an error is a result, not a crash
            arrival.error = f"{type(exc).__name__}: {exc}"[:300]

    for offset in range(count):
        arrival = Arrival(first_index + offset, began + offset / rate)
        result.arrivals.append(arrival)
        delay = arrival.due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(arrival)))
    await asyncio.gather(*tasks)
    return result
