"""Kafka messaging: the CloudEvents envelope, the protobuf/JSON codec, producer, consumer, dead letters.

The errors a handler may raise are re-exported here: ``from checkout_kit.messaging import
InvalidMessageError``.
"""

from checkout_kit.messaging.errors import InvalidMessageError, PoisonMessageError

__all__ = ["InvalidMessageError", "PoisonMessageError"]
