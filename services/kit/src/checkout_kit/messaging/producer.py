"""The Kafka producer and the :class:`Publisher` every sender in the kit goes through.

The producer is built from :meth:`KafkaSettings.producer_params`: ``acks=all`` and idempotence
on, so a record acknowledged is on every in-sync replica, and the producer's own retries can
neither duplicate nor reorder records of a partition. Created in the app's lifespan (aiokafka
binds it to the running event loop), shared by the outbox relay, the dead-letter sender and
the gateway, which publishes ``CheckoutInitiated`` directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from checkout_kit.messaging.envelope import Envelope
from checkout_kit.settings import KafkaSettings

Delivery = asyncio.Future[RecordMetadata]
"""Resolves when the broker acknowledged the record (or fails with the reason it could not)."""


def create_producer(settings: KafkaSettings, service_name: str) -> AIOKafkaProducer:
    """An unstarted producer (call from inside the running event loop)."""
    return AIOKafkaProducer(**settings.producer_params(service_name))


async def start_producer(settings: KafkaSettings, service_name: str) -> AIOKafkaProducer:
    """Create and start a producer; raise if no broker answers within the request timeout."""
    producer = create_producer(settings, service_name)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


async def stop_producer(producer: AIOKafkaProducer) -> None:
    """Deliver what is buffered, then close the connections."""
    await producer.stop()


class Publisher:
    """Sends records and lets the caller await their acknowledgement.

    :meth:`send` only enqueues and returns the delivery future, so a caller with many records
    (the outbox relay) enqueues them all and then awaits them together — one round trip per
    batch instead of per record, with order per partition kept by the producer.
    :meth:`publish` is the one-record form that waits.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send_record(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> Delivery:
        """Enqueue a raw record; the returned future resolves on acknowledgement.

        A record with neither key nor value (a tombstone without key, which Kafka cannot take)
        is sent with an empty value.
        """
        if key is None and value is None:
            value = b""
        delivery: Delivery = await self.producer.send(topic, value=value, key=key, headers=list(headers))
        return delivery

    async def publish_record(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> RecordMetadata:
        """Send a raw record and wait until the broker acknowledged it."""
        return await (await self.send_record(topic, key=key, value=value, headers=headers))

    async def send(self, topic: str, envelope: Envelope) -> Delivery:
        """Enqueue an envelope (key = saga id, CloudEvents headers, encoded payload)."""
        return await self.send_record(topic, key=envelope.key(), value=envelope.value(), headers=envelope.headers())

    async def publish(self, topic: str, envelope: Envelope) -> RecordMetadata:
        """Send an envelope and wait until the broker acknowledged it."""
        return await (await self.send(topic, envelope))
