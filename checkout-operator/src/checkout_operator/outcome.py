"""What one reconciler reports after a pass: the basis of one status condition, its detail and Events.

Reconcilers never raise for a backend problem (unreachable Kafka, refused credentials): they return an
:class:`Outcome` that is not ready, with a reason and a message naming the cause, so the handler can
write the condition, emit the Event and retry with backoff. Exceptions are for bugs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event to emit on the platform object."""

    type: Literal["Normal", "Warning"]
    reason: str
    """CamelCase, e.g. ``TopicConfigReverted``."""
    message: str


@dataclass(frozen=True)
class Outcome:
    """The result of one reconciler's pass."""

    ready: bool
    reason: str
    """CamelCase reason of the condition, e.g. ``TopicsReady`` / ``KafkaUnreachable``."""
    message: str
    """One human sentence: what is true, or what failed, why, and what happens next."""
    detail: list[dict[str, Any]] = field(default_factory=list)
    """Per-topic or per-service entries for the status (camelCase keys, JSON-serialisable)."""
    notices: list[Notice] = field(default_factory=list)
    """Events to emit: drift repaired, creations, refusals."""
    retry: bool = False
    """True when the cause may go away by itself (unreachable backend): retry soon with backoff."""
    requeue_s: float | None = None
    """Not an error but not done yet (a rollout in progress): look again after this many seconds."""
