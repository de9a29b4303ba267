"""Failpoints: named places where a test can make a component crash, to prove what survives.

A component takes ``failpoint: Failpoint | None = None`` and, when one is given, awaits it with
the name of the place it has reached. The failpoint may return (go on), wait, or raise
:class:`FailpointCrash` — then the component stops on the spot as a killed process would:
nothing after that point runs, its open database transaction rolls back, no offset is committed.
In tests in-process, a failpoint is that explicit constructor argument. For a whole process (the
fault-injection suite SIGKILLs services exactly at these places), ``FAILPOINTS`` arms them from the
environment — see :func:`from_settings` — and a production build refuses it: the images set
``FAILPOINTS_FORBIDDEN=true``, and a service that finds both refuses to start.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

log = logging.getLogger(__name__)

Failpoint = Callable[[str], Awaitable[None]]
"""Awaited with a failpoint name; raise :class:`FailpointCrash` to crash the component there."""

OUTBOX_AFTER_PUBLISH: Final = "outbox.after-publish"
"""The relay has every delivery of a batch acknowledged but has not marked the rows published."""
CONSUMER_AFTER_DB_COMMIT: Final = "consumer.after-db-commit"
"""The consumer has committed a message's effects but not its Kafka offset."""


class FailpointCrash(Exception):  # noqa: N818 - it is a crash, not an error to handle
    """Raised by a failpoint: the component stops as if its process had died at that point."""


async def reach(failpoint: Failpoint | None, name: str) -> None:
    """Call the failpoint, if any, with ``name``."""
    if failpoint is not None:
        await failpoint(name)


KNOWN: Final = (OUTBOX_AFTER_PUBLISH, CONSUMER_AFTER_DB_COMMIT)
"""Every failpoint the kit reaches."""
_ENTRY: Final = re.compile(r"^(?P<name>[a-z][a-z0-9.-]*)=kill@(?P<hit>[1-9][0-9]{0,5})$")


class FailpointsForbiddenError(RuntimeError):
    """``FAILPOINTS`` set in a build that forbids them (the images)."""


def parse(spec: str) -> dict[str, int]:
    """``"consumer.after-db-commit=kill@3,outbox.after-publish=kill@1"`` → name → the hit that kills.

    Raises :class:`ValueError` naming the bad entry (unknown name, bad syntax).
    """
    armed: dict[str, int] = {}
    for raw in filter(None, (part.strip() for part in spec.split(","))):
        match = _ENTRY.match(raw)
        if match is None:
            raise ValueError(f"FAILPOINTS entry {raw!r}: expected <name>=kill@<n>, e.g. {KNOWN[0]}=kill@1")
        if match["name"] not in KNOWN:
            raise ValueError(f"FAILPOINTS entry {raw!r}: unknown failpoint; known: {', '.join(KNOWN)}")
        armed[match["name"]] = int(match["hit"])
    return armed


def process_killer(armed: Mapping[str, int]) -> Failpoint:
    """A failpoint that SIGKILLs this very process the ``n``-th time the named place is reached.

    SIGKILL, not an exception: nothing runs after the point — no ``finally``, no offset commit, no
    flush — exactly what a crash of the node or an OOM kill does.
    """
    hits: dict[str, int] = dict.fromkeys(armed, 0)

    async def failpoint(name: str) -> None:
        if name not in armed:
            return
        hits[name] += 1
        if hits[name] == armed[name]:
            log.warning("failpoint %s reached (hit %d): SIGKILL of pid %d", name, hits[name], os.getpid())
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)

    return failpoint


def from_settings(spec: str, *, forbidden: bool) -> Failpoint | None:
    """The process's failpoint from ``FAILPOINTS`` (None when unset); refuses when ``forbidden``."""
    armed = parse(spec)
    if not armed:
        return None
    if forbidden:
        raise FailpointsForbiddenError(
            "FAILPOINTS is set but this build forbids failpoints (FAILPOINTS_FORBIDDEN=true, set by the image): "
            "unset FAILPOINTS; failpoints are for the fault-injection suite on development builds"
        )
    log.warning("failpoints armed: %s", ", ".join(f"{n} kills at hit {k}" for n, k in armed.items()))
    return process_killer(armed)
