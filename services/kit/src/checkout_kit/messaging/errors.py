"""The exceptions a message handler raises to say "this message can never be processed"."""

from __future__ import annotations

from checkout_kit.messaging.codec import PoisonMessageError

__all__ = ["InvalidMessageError", "PoisonMessageError"]


class InvalidMessageError(PoisonMessageError):
    """Raised by a handler for a well-formed message whose content is invalid (e.g. no lines).

    Retrying cannot help, so the consumer rolls the handler's transaction back, sends the record
    to the dead-letter topic with ``reason`` as ``dlq_reason``, and moves on. Raise any other
    exception for a failure that a retry might fix.
    """
