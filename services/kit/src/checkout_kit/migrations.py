"""Alembic per service: every service migrates its own schema, and refuses to serve a stale one.

Each service keeps its revisions next to its code (``<package>/migrations/versions``) with a
two-line ``env.py`` calling :func:`run_migrations`; there is no ``alembic.ini``, the
configuration is built here from the service's settings. Conventions:

- Tables are declared without a schema; the engine's ``search_path`` is the service's schema
  (``DATABASE__SCHEMA``), so the same revisions build ``cart`` in production and ``cart_test_1f2e``
  in a test. The version table lives in that schema too, so services never share one.
- Autogenerate and the drift check look at the service's schema only (``include_schemas`` with a
  filter), never at another service's tables in the same database.
- Migrations run in one transaction under an advisory lock, so two replicas starting a
  ``migrate`` job at once apply each revision once.
- The schema is created when missing and the migrating role may; where the operator owns schema
  creation and the role may not, the error says so.

Alembic's command functions are synchronous; they run on the async engine's connection through
``run_sync``, so the same asyncpg driver and settings serve both the app and its migrations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from checkout_kit.db import create_engine
from checkout_kit.settings import DatabaseSettings

VERSION_TABLE: Final = "alembic_version"
"""Alembic's bookkeeping table, inside the service's schema."""
_SCHEMA_ATTRIBUTE: Final = "checkout_kit.schema"
_CONNECTION_ATTRIBUTE: Final = "connection"
_INSUFFICIENT_PRIVILEGE: Final = "42501"


class MigrationError(RuntimeError):
    """Migrations could not run; the message says why and what to do."""


class StaleSchemaError(RuntimeError):
    """The database schema is not at the revision this code was written for."""

    def __init__(self, schema: str, revision: SchemaRevision) -> None:
        super().__init__(
            f"database schema {schema!r} is at {revision.describe_current()} but this code needs head "
            f"{', '.join(revision.head) or '(none)'}; refusing to serve on a stale schema. "
            "Apply the migrations first: `python -m <service package> migrate`."
        )
        self.schema = schema
        self.revision = revision


@dataclass(frozen=True)
class SchemaRevision:
    """Where the database is and where the code's migrations end."""

    current: tuple[str, ...]
    """Revisions recorded in the schema's version table (empty: never migrated)."""
    head: tuple[str, ...]
    """Head revisions of the service's migration scripts."""

    @property
    def at_head(self) -> bool:
        """The schema is exactly what the code expects."""
        return set(self.current) == set(self.head)

    def describe_current(self) -> str:
        """Human-readable current revision."""
        return f"revision {', '.join(self.current)}" if self.current else "no revision (never migrated)"


def alembic_config(migrations_dir: Path, schema: str) -> Config:
    """An Alembic configuration built in code for one service's migrations and schema."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("path_separator", "os")
    config.attributes[_SCHEMA_ATTRIBUTE] = schema
    return config


def _context_options(schema: str) -> dict[str, Any]:
    """Options shared by migrations, autogenerate and the drift check: this schema, nothing else."""

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        if type_ == "schema":
            # The search_path's schema is reported as None; any other schema is not ours.
            return name is None or name == schema
        return not (type_ == "table" and name == VERSION_TABLE)

    return {
        "version_table": VERSION_TABLE,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": include_name,
        "compare_type": True,
    }


def run_migrations(metadata: MetaData) -> None:
    """The body of a service's ``env.py``: run Alembic on the connection this module handed over.

    ``env.py`` runs inside an Alembic command started by this module (upgrade, revision,
    check), which passes a connection already inside a transaction, holding the migration lock
    and with the search_path on the service's schema.
    """
    config = context.config
    connection = config.attributes.get(_CONNECTION_ATTRIBUTE)
    schema = config.attributes.get(_SCHEMA_ATTRIBUTE)
    if context.is_offline_mode() or not isinstance(connection, Connection) or not isinstance(schema, str):
        raise MigrationError(
            "migrations run through the service, not the alembic command line: `python -m <service package> migrate`"
        )
    context.configure(connection=connection, target_metadata=metadata, **_context_options(schema))
    with context.begin_transaction():
        context.run_migrations()


_LOCK: Final = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
"""Held until the end of the transaction: one migrator per schema at a time."""


def _lock_key(schema: str) -> str:
    return f"checkout-migrate:{schema}"


def _quoted(connection: Connection, schema: str) -> str:
    return connection.dialect.identifier_preparer.quote_identifier(schema)


async def ensure_schema(database: DatabaseSettings) -> None:
    """Create the service's schema if it is missing and the role may; explain if it may not."""
    schema = database.db_schema
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            # Under the migration lock: concurrent CREATE SCHEMA IF NOT EXISTS can still collide.
            await connection.execute(_LOCK, {"key": _lock_key(schema)})
            exists = await connection.scalar(
                text("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = :schema)"), {"schema": schema}
            )
            if exists:
                return
            quoted = await connection.run_sync(_quoted, schema)
            try:
                await connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
                await connection.commit()
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) != _INSUFFICIENT_PRIVILEGE:
                    raise
                user = await _current_user(engine)
                raise MigrationError(
                    f"schema {schema!r} does not exist and role {user!r} may not create it: create the schema "
                    f"owned by (or with CREATE granted to) {user!r} — the operator does this — then migrate again"
                ) from error
    finally:
        await engine.dispose()


async def _current_user(engine: AsyncEngine) -> str:
    async with engine.connect() as connection:
        return str(await connection.scalar(text("SELECT current_user")))


def _run_command(
    connection: Connection,
    config: Config,
    operation: Callable[[Config], object],
) -> None:
    """Run an Alembic command on ``connection`` (inside the caller's transaction)."""
    schema = config.attributes[_SCHEMA_ATTRIBUTE]
    # One migrator per schema at a time; released when the transaction ends.
    connection.execute(_LOCK, {"key": _lock_key(schema)})
    connection.execute(text(f"SET LOCAL search_path TO {_quoted(connection, schema)}"))
    config.attributes[_CONNECTION_ATTRIBUTE] = connection
    try:
        operation(config)
    finally:
        config.attributes.pop(_CONNECTION_ATTRIBUTE, None)


async def _with_migration_connection(
    database: DatabaseSettings, migrations_dir: Path, operation: Callable[[Config], object]
) -> None:
    config = alembic_config(migrations_dir, database.db_schema)
    # A fresh engine after ensure_schema: the dialect learns its default schema on first connect.
    engine = create_engine(database)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_command, config, operation)
    finally:
        await engine.dispose()


async def upgrade_to_head(database: DatabaseSettings, migrations_dir: Path, revision: str = "head") -> SchemaRevision:
    """Create the schema if needed and apply every pending revision; return where it ended."""
    await ensure_schema(database)
    await _with_migration_connection(database, migrations_dir, lambda config: command.upgrade(config, revision))
    engine = create_engine(database)
    try:
        return await current_and_head(engine, migrations_dir, database.db_schema)
    finally:
        await engine.dispose()


def script_heads(migrations_dir: Path) -> tuple[str, ...]:
    """Head revision(s) of a service's migration scripts (no database needed)."""
    script = ScriptDirectory.from_config(alembic_config(migrations_dir, "unused"))
    return tuple(sorted(script.get_heads()))


async def current_and_head(engine: AsyncEngine, migrations_dir: Path, schema: str) -> SchemaRevision:
    """The schema's recorded revision(s) and the scripts' head(s)."""

    def read_current(connection: Connection) -> tuple[str, ...]:
        migration = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
        )
        return tuple(sorted(migration.get_current_heads()))

    async with engine.connect() as connection:
        current = await connection.run_sync(read_current)
    return SchemaRevision(current=current, head=script_heads(migrations_dir))


async def require_head(engine: AsyncEngine, migrations_dir: Path, schema: str) -> SchemaRevision:
    """Return the revision if the schema is at head; raise :class:`StaleSchemaError` otherwise."""
    revision = await current_and_head(engine, migrations_dir, schema)
    if not revision.at_head:
        raise StaleSchemaError(schema, revision)
    return revision


async def model_drift(engine: AsyncEngine, metadata: MetaData, schema: str) -> list[Any]:
    """Differences between the models and the migrated schema (``alembic check``); empty when in step.

    Each item is an Alembic diff tuple such as ``("add_column", None, "carts", Column(...))``.
    """

    def compare(connection: Connection) -> list[Any]:
        migration = MigrationContext.configure(connection, opts=_context_options(schema))
        return list(compare_metadata(migration, metadata))

    async with engine.connect() as connection:
        return await connection.run_sync(compare)


async def new_revision(database: DatabaseSettings, migrations_dir: Path, message: str, *, autogenerate: bool) -> Path:
    """Write the next revision file (``0002_<slug>.py``), autogenerated against a migrated schema.

    Revisions are numbered: a readable history, and a merge conflict when two branches add one.
    """
    revision_id = _next_revision_id(script_heads(migrations_dir))
    written: list[Path] = []

    def revise(config: Config) -> None:
        scripts = command.revision(config, message=message, autogenerate=autogenerate, rev_id=revision_id)
        for script in scripts if isinstance(scripts, list) else [scripts]:
            if script is not None:
                written.append(Path(script.path))

    if autogenerate:
        await upgrade_to_head(database, migrations_dir)
        await _with_migration_connection(database, migrations_dir, revise)
    else:
        revise(alembic_config(migrations_dir, database.db_schema))
    return written[0]


def _next_revision_id(heads: Sequence[str]) -> str:
    if len(heads) > 1:
        raise MigrationError(f"the migrations have several heads ({', '.join(heads)}): merge them first")
    if not heads:
        return "0001"
    match = re.fullmatch(r"(\d+)", heads[0])
    if match is None:
        raise MigrationError(f"head {heads[0]!r} is not a numbered revision; pass an explicit id with alembic")
    return f"{int(match.group(1)) + 1:04d}"
