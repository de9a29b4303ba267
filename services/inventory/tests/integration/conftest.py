"""Fixtures for the inventory against the real Kafka and PostgreSQL: fresh topics, schema and group per test.

The fixtures themselves are the participants' shared ones (``participant_fixtures``); this file
says which service they run.
"""

from __future__ import annotations

import pytest
from participant_fixtures import *  # noqa: F403 - kafka, command_topic, publisher, replies, schema, client …
from participant_fixtures import Participant

from checkout_inventory.config import InventoryDatabaseSettings, InventorySettings
from checkout_inventory.main import MIGRATIONS, create_app
from checkout_inventory.storage.tables import metadata
from checkout_kit.topics import Topics


def _command_topic(topics: Topics) -> str:
    return topics.inventory_command


@pytest.fixture(scope="session")
def participant() -> Participant:
    """The inventory, as the shared fixtures run it."""
    return Participant(
        "inventory", InventorySettings, InventoryDatabaseSettings, MIGRATIONS, metadata, create_app, _command_topic
    )
