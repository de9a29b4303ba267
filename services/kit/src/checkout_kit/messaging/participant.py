"""What every saga participant (inventory, payment, order) does around its own rules.

A participant consumes its command topic, applies each command in the consumer's transaction
and enqueues one reply in the outbox, which the relay publishes. The parts they share live here:

- the checks every command gets before anything touches the database: its payload names the
  saga of its envelope (:func:`saga_id_of`), optional ids are UUIDs (:func:`optional_uuid`),
  customer ids and amounts are well-formed (:func:`customer_id_of`, :func:`money`), failure
  codes are known (:func:`known_reason`); a command failing one raises
  :class:`~checkout_kit.messaging.InvalidMessageError` (``invalid-payload``), which parks it in
  the dead-letter topic instead of retrying it forever;
- where the reply goes (:func:`reply_topic`): the command's ``reply_to``, else checkout-events;
- the background components of its :class:`~checkout_kit.app.ServiceSpec`
  (:func:`command_components`): the outbox relay and the command consumer.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from google.protobuf.message import Message
from opentelemetry import trace
from sqlalchemy.ext.asyncio import AsyncSession

from checkout.v1 import types_pb2
from checkout_kit.app import Component, ComponentFactory, Runtime
from checkout_kit.messaging.consumer import Handler, TransactionalConsumer
from checkout_kit.messaging.envelope import Envelope
from checkout_kit.messaging.errors import InvalidMessageError
from checkout_kit.metrics import MessagingMetrics
from checkout_kit.outbox import OutboxRelay
from checkout_kit.settings import KAFKA_NAME_PATTERN, ServiceSettings
from checkout_kit.telemetry import SAGA_STEP
from checkout_kit.topics import Topics

INVALID_PAYLOAD: Final = "invalid-payload"
"""``dlq_reason`` of a command whose content breaks a rule of its service."""
UNEXPECTED_TYPE: Final = "unexpected-type"
"""``dlq_reason`` of a well-formed message that is not one of the service's commands (e.g. an event)."""
INVALID_REPLY_TO: Final = "invalid-reply-to"
"""``dlq_reason`` of a command whose ``reply_to`` is not a topic name: no reply could ever leave."""

CUSTOMER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""A customer id as the gateway accepts it."""
CURRENCY_PATTERN: Final = r"^[A-Z]{3}$"
"""ISO 4217 alphabetic code, upper case."""
MAX_AMOUNT_MINOR: Final = 10**15
"""Upper bound of one amount in minor units (sanity, not policy)."""

_TOPIC = re.compile(KAFKA_NAME_PATTERN)
_CUSTOMER_ID = re.compile(CUSTOMER_ID_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def invalid(detail: str) -> InvalidMessageError:
    """The error for a command breaking a rule (``dlq_reason`` ``invalid-payload``)."""
    return InvalidMessageError(INVALID_PAYLOAD, detail)


def saga_id_of(payload_saga_id: str, envelope: Envelope) -> uuid.UUID:
    """The payload's saga id, which must be present and agree with the envelope's."""
    if not payload_saga_id:
        raise invalid("the command carries no saga_id")
    try:
        saga_id = uuid.UUID(payload_saga_id)
    except ValueError as error:
        raise invalid(f"saga_id {payload_saga_id!r} is not a UUID") from error
    if str(saga_id) != envelope.saga_id:
        raise invalid(f"payload saga_id {saga_id} differs from the envelope's {envelope.saga_id}")
    return saga_id


def optional_uuid(value: str, what: str) -> uuid.UUID | None:
    """An optional id field: empty is None, anything else must be a UUID."""
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as error:
        raise invalid(f"{what} {value!r} is not a UUID") from error


def customer_id_of(value: str) -> str:
    """The command's customer id, which must be one the gateway would accept."""
    if not _CUSTOMER_ID.fullmatch(value):
        raise invalid(f"customer_id {value!r} is not a customer id (pattern {CUSTOMER_ID_PATTERN})")
    return value


@dataclass(frozen=True)
class Money:
    """An amount in minor units of a currency."""

    amount_minor: int
    currency: str


def money(value: types_pb2.Money, what: str) -> Money:
    """A checked amount: a well-formed currency and a non-negative, bounded number of minor units."""
    if not _CURRENCY.fullmatch(value.currency):
        raise invalid(f"{what}.currency {value.currency!r} is not an ISO 4217 code (three upper-case letters)")
    if not 0 <= value.amount_minor <= MAX_AMOUNT_MINOR:
        raise invalid(f"{what}.amount_minor {value.amount_minor} is not between 0 and {MAX_AMOUNT_MINOR}")
    return Money(value.amount_minor, value.currency)


def known_reason(reason: int) -> types_pb2.FailureCode.ValueType:
    """The failure code, or UNSPECIFIED for a value this build does not know (a newer sender)."""
    if reason in types_pb2.FailureCode.values():
        return types_pb2.FailureCode.ValueType(reason)
    return types_pb2.FAILURE_CODE_UNSPECIFIED


def reason_name(reason: types_pb2.FailureCode.ValueType) -> str:
    """The code's name as stored (``FAILURE_CODE_OUT_OF_STOCK``)."""
    return types_pb2.FailureCode.Name(reason)


def reason_value(name: str | None, default: types_pb2.FailureCode.ValueType) -> types_pb2.FailureCode.ValueType:
    """A stored name back to its code; ``default`` when none (or one this build does not know) was stored."""
    if name and name in types_pb2.FailureCode.keys():  # noqa: SIM118 - an enum wrapper, not a dict
        return types_pb2.FailureCode.Value(name)
    return default


def reply_topic(envelope: Envelope, default: str) -> str:
    """Where the reply goes: the command's ``reply_to``, else ``default`` (the checkout-events topic).

    Raises :class:`InvalidMessageError` (``invalid-reply-to``) when ``reply_to`` is not a topic name.
    """
    if envelope.reply_to is None:
        return default
    if not _TOPIC.fullmatch(envelope.reply_to):
        raise InvalidMessageError(INVALID_REPLY_TO, f"reply_to {envelope.reply_to!r} is not a Kafka topic name")
    return envelope.reply_to


def saga_step(message: Message) -> str:
    """The saga step a command performs, as the orchestrator names it: ``ReserveInventory`` → ``reserve_inventory``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(message).__name__).lower()


def traced_step(handler: Handler) -> Handler:
    """``handler``, labelling the consumer's span with the step it performs (:data:`~checkout_kit.telemetry.SAGA_STEP`).

    The span already carries the saga id (:func:`~checkout_kit.telemetry.consume_span`); the saga's
    state is the orchestrator's to know, and its transition spans carry it.
    """

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        trace.get_current_span().set_attribute(SAGA_STEP, saga_step(envelope.message))
        await handler(envelope, session)

    return handle


def outbox_relay(runtime: Runtime) -> Component:
    """Publishes the replies the command handler enqueued."""
    settings = runtime.settings
    return OutboxRelay(
        runtime.sessions,
        runtime.publisher,
        settings.database,
        settings.outbox,
        application_name=f"{settings.service_name} outbox-relay",
        metrics=MessagingMetrics.of(runtime.registry),
        failpoint=runtime.failpoint,
    )


def command_components(
    settings_type: type[SettingsT],
    command_topic: Callable[[Topics], str],
    handler: Callable[[Runtime, SettingsT], Handler],
) -> dict[str, ComponentFactory]:
    """A participant's components: ``outbox-relay``, then ``command-consumer``.

    The consumer reads ``command_topic(runtime.topics)`` as the group named after the service and
    applies each command with ``handler(runtime, settings)``; the service must run with
    ``settings_type``. The relay starts first and stops last: replies the consumer commits while
    stopping still leave.
    """

    def command_consumer(runtime: Runtime) -> Component:
        settings = runtime.settings
        if not isinstance(settings, settings_type):
            raise TypeError(
                f"{settings.service_name} runs with {settings_type.__name__}, not {type(settings).__name__}"
            )
        return TransactionalConsumer(
            [command_topic(runtime.topics)],
            settings.group_id(),
            traced_step(handler(runtime, settings)),
            runtime.sessions,
            runtime.publisher,
            settings.kafka,
            settings.service_name,
            metrics=MessagingMetrics.of(runtime.registry),
            failpoint=runtime.failpoint,
        )

    return {"outbox-relay": outbox_relay, "command-consumer": command_consumer}
