"""The deadline scanner: fires overdue step deadlines, so every saga ends even when nobody answers.

Every ``scan_interval_s`` it claims the most overdue saga in flight (``deadline_at <= now``,
``FOR UPDATE SKIP LOCKED``, one at a time), applies :func:`rules.on_deadline` — re-send the
step, or give up on it and compensate, or close an unconfirmed compensation — and commits the
saga, its timeline and the commands in ONE transaction per saga, then claims the next, up to
``batch_size`` per scan. One transaction per saga keeps a failure local: a saga that cannot be
handled (unreadable row, a bug) is logged and set aside for ``QUARANTINE_S``, the others still
fire — the most overdue saga failing must not block every deadline behind it.

Each fired deadline is a ``deadline <STATE>`` span continuing the trace context stored with the
saga (:mod:`checkout_orchestrator.handlers.spans`): the re-sent command or the compensation is
part of the checkout's trace, not a trace of the scanner's own.

Several replicas may scan at once: a claimed saga is locked, the others skip it. A reply being
applied at the same moment is caught by the version check (whichever commits second retries).
Deadlines are compared with this process's clock, the same that set them.
"""

from __future__ import annotations

import logging
import time
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from checkout_kit.background import BackgroundLoop
from checkout_kit.backoff import Backoff, wait_or_stop
from checkout_kit.messaging.consumer import is_outage
from checkout_orchestrator.config import DeadlineScannerSettings
from checkout_orchestrator.domain import rules
from checkout_orchestrator.handlers.events import Clock, utc_now
from checkout_orchestrator.handlers.outcomes import OutcomeWriter
from checkout_orchestrator.handlers.spans import deadline_span, transition_span
from checkout_orchestrator.storage import sagas
from checkout_orchestrator.storage.sagas import UnreadableSagaError

log = logging.getLogger(__name__)

QUARANTINE_S: Final = 30.0
"""How long a saga whose deadline could not be handled is passed over (it is logged each time)."""


class DeadlineScanner(BackgroundLoop):
    """Fires overdue deadlines in the background; started and stopped by the app's lifespan."""

    in_flight_work = "the saga in flight"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        writer: OutcomeWriter,
        policy: rules.Policy,
        settings: DeadlineScannerSettings | None = None,
        *,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__("the deadline scanner", "deadline-scanner")
        self.sessions = sessions
        self.writer = writer
        self.policy = policy
        self.settings = settings or DeadlineScannerSettings()
        self.clock = clock
        self.backoff = Backoff(initial_s=0.2, max_s=30.0)
        self._quarantine: dict[str, float] = {}
        """Sagas set aside after a failure → when (monotonic) they are tried again."""

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                fired = await self.scan()
            except Exception as error:
                failures += 1
                delay = self.backoff.delay(failures)
                log.warning(
                    "deadline scan failed (%d in a row: %s: %s); retrying in %.1fs",
                    failures,
                    type(error).__name__,
                    error,
                    delay,
                    exc_info=not is_outage(error),
                )
                await wait_or_stop(self._stopping, delay)
                continue
            failures = 0
            if fired >= self.settings.batch_size:
                continue  # more may be overdue: no pause
            await wait_or_stop(self._stopping, self.settings.scan_interval_s)

    async def scan(self) -> int:
        """Fire overdue deadlines, one transaction per saga, up to ``batch_size``; return how many fired.

        Raises when the database cannot be used at all (the loop backs off); a failure on one
        saga only sets that saga aside.
        """
        now_s = time.monotonic()
        self._quarantine = {saga_id: until for saga_id, until in self._quarantine.items() if until > now_s}
        skip = set(self._quarantine)
        fired = 0
        while fired < self.settings.batch_size and not self._stopping.is_set():
            claimed: str | None = None
            try:
                async with self.sessions() as session, session.begin():
                    now = self.clock()
                    saga = await sagas.claim_overdue(session, now, skip=skip)
                    if saga is None:
                        return fired
                    claimed = saga.saga_id
                    with deadline_span(saga):  # in the checkout's trace, from the context stored with the saga
                        outcome = rules.on_deadline(saga, now, self.policy)
                        if not outcome.changed:  # not overdue by the rules' reckoning: do not claim it again now
                            skip.add(saga.saga_id)
                            continue
                        with transition_span(outcome):
                            await self.writer.store_change(session, outcome, now)
            except UnreadableSagaError as error:
                self._set_aside(error.saga_id, skip)
                log.error("deadline scan: %s; passed over for %.0fs (it needs a look)", error, QUARANTINE_S)
                continue
            except Exception as error:
                if claimed is None or is_outage(error):
                    raise
                self._set_aside(claimed, skip)
                log.exception("deadline of saga %s could not be handled; passed over for %.0fs", claimed, QUARANTINE_S)
                continue
            fired += 1
            log.info(
                "saga %s: deadline fired in %s → %s (%s)",
                outcome.saga.saga_id,
                saga.state,
                outcome.saga.state,
                "; ".join(entry.event for entry in outcome.timeline),
            )
        return fired

    def _set_aside(self, saga_id: str, skip: set[str]) -> None:
        skip.add(saga_id)
        self._quarantine[saga_id] = time.monotonic() + QUARANTINE_S
