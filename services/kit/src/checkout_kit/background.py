"""The lifecycle every background component shares: one loop task, started, stopped within a grace.

The outbox relay, the transactional consumer and the orchestrator's deadline scanner each run one
asyncio task that loops until it is told to stop. Their loops differ; how they start, stop and
report health does not, and it is easy to get subtly wrong, so it lives here once:

* :meth:`~BackgroundLoop.start` opens what the loop needs (:meth:`~BackgroundLoop._open`; if
  that raises, the component did not start) and launches the loop task;
* :meth:`~BackgroundLoop.stop` sets :attr:`~BackgroundLoop._stopping` (the loop checks it
  between units of work), nudges a loop idle in a wait the event does not reach
  (:meth:`~BackgroundLoop._interrupt`), waits up to ``grace_s`` for the unit in flight, then
  cancels it, and finally closes what :meth:`~BackgroundLoop._open` opened
  (:meth:`~BackgroundLoop._close`). Abandoning work is safe only because everything here is
  at-least-once: an abandoned transaction rolls back and the work is redone by the next owner;
* :meth:`~BackgroundLoop.wait`, :attr:`~BackgroundLoop.running` and
  :meth:`~BackgroundLoop.check_ready` (for ``/readyz``): a loop that ended while the service
  still runs — crashed at a test failpoint, or a bug — makes the service unready instead of
  silently doing nothing.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import ClassVar

from checkout_kit.failpoints import FailpointCrash

log = logging.getLogger(__name__)


class BackgroundLoop(ABC):
    """A component running one loop task (see the module docstring for the lifecycle).

    Subclasses implement :meth:`_run` — loop until ``self._stopping`` is set, let
    :class:`FailpointCrash` propagate — and override the hooks they need.
    """

    in_flight_work: ClassVar[str] = "the work in flight"
    """What :meth:`stop` waits for, as named in its log line ("the record in flight")."""

    def __init__(self, description: str, task_name: str) -> None:
        self.description = description
        """Names the component in errors and logs (``the outbox relay``, ``consumer orders``)."""
        self.task_name = task_name
        """The asyncio task's name (shows in task dumps)."""
        self.crash: FailpointCrash | None = None
        """Set when a failpoint crashed the loop (tests)."""
        self.failure: Exception | None = None
        """Set when an unexpected error ended the loop (a bug: loops handle their own failures)."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # hooks

    async def _open(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Open what the loop needs before it starts; raise if the component cannot start."""

    @abstractmethod
    async def _run(self) -> None:
        """The loop: do units of work until ``self._stopping`` is set."""

    def _interrupt(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Wake a loop waiting on something other than ``self._stopping`` (called by :meth:`stop`)."""

    async def _close(self) -> None:  # noqa: B027 - an optional hook, empty by default
        """Close what :meth:`_open` opened (called by :meth:`stop`, also when never started)."""

    # lifecycle

    async def start(self) -> None:
        """Open and launch the loop in the background; return once it runs."""
        if self._task is not None:
            raise RuntimeError(f"{self.description} is already started")
        await self._open()
        self._task = asyncio.create_task(self._main(), name=self.task_name)

    async def stop(self, grace_s: float | None = None) -> None:
        """Finish the unit in flight, then stop; after ``grace_s`` seconds (None: no limit), abandon it."""
        self._stopping.set()
        task = self._task
        if task is not None and not task.done():
            self._interrupt()
            try:
                done, _ = await asyncio.wait({task}, timeout=grace_s)
            except asyncio.CancelledError:  # the caller's own deadline: abandon the work in flight
                task.cancel()
                raise
            if not done:
                log.warning(
                    "%s: %s did not finish within %ss; abandoning it", self.description, self.in_flight_work, grace_s
                )
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await self._close()

    async def wait(self) -> None:
        """Return when the loop has ended (stopped, or crashed at a failpoint)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def check_ready(self) -> None:
        """Raise if the loop is not running (``/readyz``)."""
        if not self.running:
            why = ""
            if self.crash is not None:
                why = f" (crashed at a failpoint: {self.crash})"
            elif self.failure is not None:
                why = f" (ended on {type(self.failure).__name__}: {self.failure})"
            raise RuntimeError(f"{self.description} is not running{why}")

    @property
    def running(self) -> bool:
        """Whether the loop is alive."""
        return self._task is not None and not self._task.done()

    async def _main(self) -> None:
        try:
            await self._run()
        except FailpointCrash as crash:
            log.error("%s crashed at failpoint: %s", self.description, crash)
            self.crash = crash
        except Exception as error:
            # A bug escaped the loop's own error handling: say so loudly; check_ready() reports it.
            log.exception("%s stopped on an unexpected error", self.description)
            self.failure = error
