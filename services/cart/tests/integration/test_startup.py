"""The cart never serves on a stale schema; migrations are per schema, safe to repeat, and drift-checked."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import textwrap
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Column, MetaData, String

from checkout_cart.main import MIGRATIONS, SPEC, create_app
from checkout_cart.storage.tables import metadata
from checkout_kit.app import StartupError
from checkout_kit.app import create_app as create_service_app
from checkout_kit.db import create_engine
from checkout_kit.migrations import MigrationError, StaleSchemaError, current_and_head, model_drift, upgrade_to_head

pytestmark = pytest.mark.integration


@pytest.fixture
def migrations_with_a_second_revision(tmp_path: Path) -> Path:
    """The cart's migrations plus a revision 0002 the database has not seen."""
    directory = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, directory, ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "versions" / "0002_add_note.py").write_text(
        textwrap.dedent(
            '''
            """add a note to carts"""
            import sqlalchemy as sa
            from alembic import op

            revision = "0002"
            down_revision = "0001"
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                op.add_column("carts", sa.Column("note", sa.String(200), nullable=True))


            def downgrade() -> None:
                op.drop_column("carts", "note")
            '''
        )
    )
    return directory


async def test_refuses_to_start_on_a_schema_never_migrated(settings_for, new_schema, serving) -> None:
    app = create_app(settings_for(new_schema("empty")))

    with pytest.raises(StaleSchemaError) as caught:
        async with serving(app):
            pytest.fail("served on an unmigrated schema")

    assert "no revision (never migrated)" in str(caught.value)
    assert "needs head 0001" in str(caught.value)


async def test_refuses_to_start_when_the_schema_is_behind_head(
    settings_for, migrated_schema: str, migrations_with_a_second_revision: Path, serving
) -> None:
    spec = dataclasses.replace(SPEC, migrations=migrations_with_a_second_revision)
    app = create_service_app(spec, settings_for(migrated_schema))

    with pytest.raises(StaleSchemaError) as caught:
        async with serving(app):
            pytest.fail("served on a stale schema")

    message = str(caught.value)
    assert f"{migrated_schema!r} is at revision 0001" in message
    assert "needs head 0002" in message


async def test_refuses_to_start_on_a_schema_newer_than_the_code(
    settings_for, new_schema, migrations_with_a_second_revision: Path, serving
) -> None:
    settings = settings_for(new_schema("newer"))
    await upgrade_to_head(settings.database, migrations_with_a_second_revision)

    with pytest.raises(StaleSchemaError, match="is at revision 0002 but this code needs head 0001"):
        async with serving(create_app(settings)):
            pytest.fail("served on a schema it does not know")


async def test_refuses_to_start_when_the_database_is_unreachable(
    settings_for, migrated_schema: str, serving, unused_tcp_port: int
) -> None:
    url = f"postgresql://cart:hunter2-secret@127.0.0.1:{unused_tcp_port}/checkout"
    with pytest.raises(StartupError) as caught:
        async with asyncio.timeout(30), serving(create_app(settings_for(migrated_schema, url=url))):
            pytest.fail("served without a database")

    message = str(caught.value)
    assert f"127.0.0.1:{unused_tcp_port}" in message
    assert "hunter2-secret" not in message


async def test_upgrade_creates_the_schema_and_is_safe_to_repeat_concurrently(settings_for, new_schema) -> None:
    database = settings_for(new_schema("concurrent")).database

    results = await asyncio.gather(*(upgrade_to_head(database, MIGRATIONS) for _ in range(3)))
    again = await upgrade_to_head(database, MIGRATIONS)

    assert all(r.at_head and r.current == ("0001",) for r in [*results, again])
    engine = create_engine(database)
    try:
        revision = await current_and_head(engine, MIGRATIONS, database.db_schema)
    finally:
        await engine.dispose()
    assert revision.current == revision.head == ("0001",)


async def test_models_match_the_migrations(settings_for, migrated_schema: str) -> None:
    engine = create_engine(settings_for(migrated_schema).database)
    try:
        assert await model_drift(engine, metadata, migrated_schema) == []

        drifted = MetaData()
        for table in metadata.tables.values():
            table.to_metadata(drifted)
        drifted.tables["carts"].append_column(Column("coupon", String(20)))
        diffs = await model_drift(engine, drifted, migrated_schema)
    finally:
        await engine.dispose()

    assert [(d[0], d[2], d[3].name) for d in diffs] == [("add_column", "carts", "coupon")]


async def test_a_role_that_may_not_create_the_schema_is_told_so(settings_for, new_schema, postgres_dsn: str) -> None:
    role = f"cart_it_role_{uuid.uuid4().hex[:8]}"
    schema = new_schema("role")
    admin = await asyncpg.connect(postgres_dsn)
    await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'role-pw'")
    try:
        host_and_db = postgres_dsn.rsplit("@", 1)[1]
        database = settings_for(schema, url=f"postgresql://{role}:role-pw@{host_and_db}").database

        with pytest.raises(MigrationError, match=f"role '{role}' may not create it"):
            await upgrade_to_head(database, MIGRATIONS)

        await admin.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{role}"')
        revision = await upgrade_to_head(database, MIGRATIONS)
        assert revision.at_head
        owner = await admin.fetchval(
            "SELECT tableowner FROM pg_tables WHERE schemaname = $1 AND tablename = 'carts'", schema
        )
        assert owner == role
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()
