"""Failpoints: named places where a test can make a component crash, to prove what survives.

A component takes ``failpoint: Failpoint | None = None`` and, when one is given, awaits it with
the name of the place it has reached. The failpoint may return (go on), wait, or raise
:class:`FailpointCrash` — then the component stops on the spot as a killed process would:
nothing after that point runs, its open database transaction rolls back, no offset is committed.
Nothing enables a failpoint but that explicit constructor argument, so production never has one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

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
