"""Exponential backoff with jitter, shared by everything in the kit that retries.

Jitter ("full jitter" over the upper half of the delay) keeps a fleet of replicas that failed
together from retrying together, so a recovering database or broker is not hit in lockstep.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``."""

    initial_s: float = 0.2
    """Delay before the second attempt."""
    max_s: float = 30.0
    """Upper bound of any delay."""

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures (``failures >= 1``)."""
        exponent = min(max(failures - 1, 0), 32)
        ceiling = min(self.max_s, self.initial_s * 2**exponent)
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds`` unless ``stop`` is set first; return True if it was."""
    if stop.is_set():
        return True
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
