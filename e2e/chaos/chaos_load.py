"""A steady, open-loop checkout load through the gateway, in a thread of its own, for the fault matrix.

Every tick starts one checkout, whatever earlier ones are doing (open loop: a fault that slows the
platform does not slow the offered load). A checkout's initiate carries an Idempotency-Key and is
retried on transport errors and 5xx for up to ``retry_for_s`` — what a real client does while a
gateway restarts — so "accepted" means the gateway said 202, once, for that key. An initiate that is
never accepted is counted as refused: the platform said no, nothing was lost.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

RETRYABLE: Final = frozenset({500, 502, 503, 504})


@dataclass
class Accepted:
    """A checkout the gateway accepted."""

    saga_id: str
    offered_at: float
    """Wall clock (epoch s) of the first attempt."""
    accepted_at: float
    """Wall clock of the 202."""


@dataclass
class LoadReport:
    """What the load offered and what became of it at the gateway."""

    accepted: list[Accepted] = field(default_factory=list)
    refused: int = 0
    """Initiates never accepted (gateway down or saying no past the retry window)."""
    retried: int = 0
    """Initiate attempts retried (transport error or 5xx)."""
    errors: list[str] = field(default_factory=list)
    """First few refusals, for the row's detail."""

    @property
    def saga_ids(self) -> list[str]:
        """Every accepted saga id."""
        return [a.saga_id for a in self.accepted]


class SteadyLoad:
    """``rate`` checkouts a second through ``bff_url`` until :meth:`stop`; ``bodies`` cycled in order."""

    def __init__(
        self, bff_url: str, rate: float, bodies: Sequence[Mapping[str, Any]], *, retry_for_s: float = 30.0
    ) -> None:
        self.bff_url = bff_url
        self.rate = rate
        self.bodies = bodies
        self.retry_for_s = retry_for_s
        self.report = LoadReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="chaos-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadReport:
        """Stop offering; wait for the initiates in flight (bounded by their retry window)."""
        self._stop.set()
        self._thread.join(timeout=self.retry_for_s + 30)
        if self._thread.is_alive():
            raise AssertionError(f"the load thread did not stop within {self.retry_for_s + 30:.0f} s")
        return self.report

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=64, keepalive_expiry=2.0)
        async with httpx.AsyncClient(base_url=self.bff_url, timeout=10, limits=limits) as http:
            tasks: set[asyncio.Task[None]] = set()
            began = time.monotonic()
            for tick, body in enumerate(itertools.cycle(self.bodies)):
                if self._stop.is_set():
                    break
                task = asyncio.create_task(self._initiate(http, body))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                # Open loop: the next start is due at a fixed time, however long this one takes.
                await asyncio.sleep(max(0.0, began + (tick + 1) / self.rate - time.monotonic()))
            await asyncio.gather(*tasks)

    async def _initiate(self, http: httpx.AsyncClient, body: Mapping[str, Any]) -> None:
        key = f"chaos-{uuid.uuid4()}"
        offered = time.time()
        give_up = time.monotonic() + self.retry_for_s
        last = ""
        while True:
            try:
                response = await http.post("/api/checkout/initiate", json=body, headers={"Idempotency-Key": key})
                if response.status_code == 202:
                    self.report.accepted.append(Accepted(response.json()["saga_id"], offered, time.time()))
                    return
                last = f"{response.status_code} {response.text[:200]}"
                if response.status_code not in RETRYABLE:
                    break
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() > give_up:
                break
            self.report.retried += 1
            await asyncio.sleep(0.5)
        self.report.refused += 1
        if len(self.report.errors) < 5:
            self.report.errors.append(last)
