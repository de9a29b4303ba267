"""Fixtures for the order service against the real Kafka and PostgreSQL: fresh topics, schema and group per test.

The fixtures themselves are the participants' shared ones (``participant_fixtures``); this file
says which service they run.
"""

from __future__ import annotations

import pytest
from participant_fixtures import *  # noqa: F403 - kafka, command_topic, publisher, replies, schema, client …
from participant_fixtures import Participant

from checkout_kit.topics import Topics
from checkout_order.config import OrderDatabaseSettings, OrderSettings
from checkout_order.main import MIGRATIONS, create_app
from checkout_order.storage.tables import metadata


def _command_topic(topics: Topics) -> str:
    return topics.order_command


@pytest.fixture(scope="session")
def participant() -> Participant:
    """The order service, as the shared fixtures run it."""
    return Participant("order", OrderSettings, OrderDatabaseSettings, MIGRATIONS, metadata, create_app, _command_topic)
