"""Payload encoding: protobuf binary by default, the protobuf JSON mapping accepted and selectable.

Message types are the contracts' messages, named by their full protobuf name
(``checkout.v1.ReserveInventory``), which is also the CloudEvents ``type``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Final

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from checkout.v1 import commands_pb2, events_pb2

PROTOBUF: Final = "application/protobuf"
"""Content type of protobuf binary payloads (the default)."""
JSON: Final = "application/json"
"""Content type of payloads in the protobuf JSON mapping."""
_ALIASES: Final = {"application/x-protobuf": PROTOBUF, "application/vnd.google.protobuf": PROTOBUF}
CONTENT_TYPES: Final = (PROTOBUF, JSON)


class PoisonMessageError(ValueError):
    """A message that can never be processed: it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        """A short machine-readable cause, e.g. ``unknown-type`` (the ``dlq_reason`` header)."""
        self.detail = detail
        """Human-readable detail (the ``dlq_detail`` header)."""


def _messages(*modules: ModuleType) -> dict[str, type[Message]]:
    registry: dict[str, type[Message]] = {}
    for module in modules:
        for name, descriptor in module.DESCRIPTOR.message_types_by_name.items():
            registry[descriptor.full_name] = getattr(module, name)
    return registry


MESSAGE_TYPES: Final = _messages(commands_pb2, events_pb2)
"""Every message the saga exchanges, by CloudEvents type (the protobuf full name)."""


def type_name(message: Message) -> str:
    """The CloudEvents type of a message."""
    return message.DESCRIPTOR.full_name


def normalize_content_type(content_type: str) -> str:
    """Map aliases and parameters (``; charset=utf-8``) onto one of :data:`CONTENT_TYPES`."""
    base = content_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def encode(message: Message, content_type: str = PROTOBUF) -> bytes:
    """Serialize a message in the given content type."""
    kind = normalize_content_type(content_type)
    if kind == PROTOBUF:
        return message.SerializeToString(deterministic=True)
    if kind == JSON:
        return json_format.MessageToJson(message, indent=None).encode()
    raise ValueError(f"unsupported content type {content_type!r}; use one of {', '.join(CONTENT_TYPES)}")


def decode(ce_type: str, content_type: str, payload: bytes) -> Message:
    """Parse a payload; raise :class:`PoisonMessageError` if it can never be parsed."""
    message_class = MESSAGE_TYPES.get(ce_type)
    if message_class is None:
        raise PoisonMessageError("unknown-type", f"no contract defines ce_type {ce_type!r}")
    kind = normalize_content_type(content_type)
    message = message_class()
    try:
        if kind == PROTOBUF:
            message.ParseFromString(payload)
        elif kind == JSON:
            json_format.Parse(payload.decode("utf-8"), message, ignore_unknown_fields=True)
        else:
            raise PoisonMessageError("unsupported-content-type", f"content-type {content_type!r} is not supported")
    except (DecodeError, json_format.ParseError, UnicodeDecodeError, RecursionError) as error:
        raise PoisonMessageError("undecodable", f"{ce_type} payload is not valid {kind}: {error}") from error
    return message
