"""Checks every saga participant's integration tests run, written once against its ``participant`` fixture.

A participant's ``test_migrations.py`` imports them, so they are collected (and reported) there,
with the fixtures of that service's conftest.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from participant_fixtures import Participant

from checkout_kit.testing import model_drift_of, run_module, schema_revision, service_env


async def test_the_migrated_schema_matches_the_models(participant: Participant, postgres_dsn: str, schema: str) -> None:
    database = participant.database_settings(postgres_dsn, schema)
    assert await model_drift_of(database, participant.metadata) == []


async def test_the_command_line_migrates_a_new_schema(
    participant: Participant, postgres_dsn: str, new_schema: Callable[[], str]
) -> None:
    database = participant.database_settings(postgres_dsn, new_schema())
    env = service_env(os.environ, DATABASE__URL=postgres_dsn, DATABASE__SCHEMA=database.db_schema)

    migrate = await run_module(participant.package, "migrate", env=env)

    assert migrate.returncode == 0, migrate.stderr
    assert "migrated: revision 0001" in migrate.stdout
    assert (await schema_revision(database, participant.migrations)).at_head
