"""Least privilege of the service roles, as a matrix over every pair, against the real local server.

The database reconciler provisions a whole platform (six services) in a database of the module's own;
every service then logs in AS its generated role, with the password the reconciler was given for it
(the one its Secret holds), creates its own table the way its migrations would, and tries to reach
every other service's schema, schema ``public``, another database, the role catalogue and server-wide
DDL. Each attempt runs in a savepoint and must fail with PostgreSQL's ``insufficient_privilege``
(SQLSTATE 42501), nothing else. Results go to the reliability ledger (section ``privilege``): one line
per matrix and one per leak.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest
from chaos_ledger import record_check

from checkout_operator.reconcilers.database import (
    AdminCredentials,
    ServiceLogin,
    quote_identifier,
    reconcile_database,
)
from checkout_operator.settings import PostgresClientSettings
from checkout_operator.spec import SERVICES, PlatformSpec, ServiceDatabase, service_database

pytestmark = pytest.mark.integration

CLIENT: Final = PostgresClientSettings(timeout_s=10)
# Each service creates table ``probe`` in its own schema (as its migrations would) for the others to try;
# the admin creates ``admin_probe`` in schema ``public`` of the platform's and of another database.


@dataclass(frozen=True)
class Provisioned:
    """The server, the platform's database as the reconciler left it, and every service's login."""

    host: str
    port: int
    admin: AdminCredentials
    database: str
    other_database: str
    owner: str
    names: dict[str, ServiceDatabase]
    passwords: dict[str, str] = field(repr=False)

    def schema(self, service: str) -> str:
        return quote_identifier(self.names[service].schema)


async def _admin_execute(dsn: str, *statements: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def _provision(postgres_dsn: str, provisioned: Provisioned) -> None:
    """Reconcile the platform, then each service makes its own table and the admin one in ``public``."""
    base = postgres_dsn.rsplit("/", 1)[0]
    spec = PlatformSpec.parse(
        {
            "kafka": {"bootstrapServers": ["127.0.0.1:9092"], "topicPrefix": provisioned.database},
            "postgres": {
                "host": provisioned.host,
                "port": provisioned.port,
                "database": provisioned.database,
                "adminSecretRef": {"name": "postgres-admin"},
            },
        }
    )
    logins = [ServiceLogin(provisioned.names[service], provisioned.passwords[service]) for service in SERVICES]
    outcome = await reconcile_database(spec.postgres, provisioned.admin, logins, provisioned.owner, CLIENT)
    assert outcome.ready, outcome.message
    for service in SERVICES:
        async with logged_in(provisioned, service) as connection:
            await connection.execute("CREATE TABLE probe (id int PRIMARY KEY, note text)")
            await connection.execute("INSERT INTO probe VALUES (1, $1)", f"secret of {service}")
    for database in (provisioned.database, provisioned.other_database):
        await _admin_execute(
            f"{base}/{database}",
            "CREATE TABLE public.admin_probe (id int)",
            "INSERT INTO public.admin_probe VALUES (1)",
        )


async def _drop(postgres_dsn: str, databases: tuple[str, ...], role_prefix: str) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        for database in databases:
            await connection.execute(f"DROP DATABASE IF EXISTS {quote_identifier(database)} WITH (FORCE)")
        roles = await connection.fetch("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", role_prefix)
        for row in roles:
            await connection.execute(f"DROP ROLE IF EXISTS {quote_identifier(row['rolname'])}")
    finally:
        await connection.close()


def _platform(postgres_dsn: str, name: str, other: str) -> Provisioned:
    url = urlsplit(postgres_dsn)
    assert url.hostname
    assert url.port
    assert url.username
    assert url.password
    spec = PlatformSpec.parse(
        {
            "kafka": {"bootstrapServers": ["127.0.0.1:9092"], "topicPrefix": name},
            "postgres": {"host": url.hostname, "port": url.port, "database": name, "adminSecretRef": {"name": "a"}},
        }
    )
    return Provisioned(
        host=url.hostname,
        port=url.port,
        admin=AdminCredentials(unquote(url.username), unquote(url.password)),
        database=name,
        other_database=other,
        owner="team-priv/shop",
        names={service: service_database("shop", spec, service) for service in SERVICES},
        passwords={service: secrets.token_urlsafe(24) for service in SERVICES},
    )


@pytest.fixture(scope="module")
def provisioned(postgres_dsn: str) -> Iterator[Provisioned]:
    """A platform's six schemas and roles in a fresh database (plus another database next to it)."""
    name = f"privdb_{uuid.uuid4().hex[:10]}"
    other = f"{name}_other"
    provisioned = _platform(postgres_dsn, name, other)
    asyncio.run(_admin_execute(postgres_dsn, f"CREATE DATABASE {quote_identifier(name)}"))
    asyncio.run(_admin_execute(postgres_dsn, f"CREATE DATABASE {quote_identifier(other)}"))
    try:
        asyncio.run(_provision(postgres_dsn, provisioned))
        yield provisioned
    finally:
        # Roles are server-wide and named after the database: only this module's go.
        asyncio.run(_drop(postgres_dsn, (name, other), f"{name}_"))


@asynccontextmanager
async def logged_in(provisioned: Provisioned, service: str, database: str | None = None) -> AsyncIterator[Any]:
    """A connection AS the service's role, with its generated password."""
    connection = await asyncpg.connect(
        host=provisioned.host,
        port=provisioned.port,
        user=provisioned.names[service].role,
        password=provisioned.passwords[service],
        database=database or provisioned.database,
    )
    try:
        yield connection
    finally:
        await connection.close()


@dataclass
class Matrix:
    """Attempts that must be refused, and what happened to each."""

    name: str
    denied: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    async def expect_denied(self, connection: Any, check: str, statement: str) -> None:
        """Run ``statement`` in a savepoint; only ``insufficient_privilege`` counts as refused."""
        try:
            async with connection.transaction():
                await connection.execute(statement)
        except asyncpg.InsufficientPrivilegeError as error:
            self.denied.append(f"{check} ({error.sqlstate})")
            return
        except asyncpg.PostgresError as error:
            self.leaks.append(f"{check}: failed for another reason ({error.sqlstate}: {error})")
            record_check("privilege", check, f"not refused for lack of privilege: {error}", passed=False)
            return
        self.leaks.append(f"{check}: allowed")
        record_check("privilege", check, "allowed", passed=False, detail=statement)

    def record(self) -> None:
        outcome = f"{len(self.denied)} of {len(self.denied) + len(self.leaks)} attempts denied (permission denied)"
        record_check("privilege", self.name, outcome, passed=not self.leaks, detail="; ".join(self.leaks))


OTHER_SCHEMA_STATEMENTS: Final = {
    "SELECT": "SELECT * FROM {schema}.{table}",
    "INSERT": "INSERT INTO {schema}.{table} VALUES (2, 'intruder')",
    "UPDATE": "UPDATE {schema}.{table} SET note = 'intruder'",
    "DELETE": "DELETE FROM {schema}.{table}",
    "TRUNCATE": "TRUNCATE {schema}.{table}",
    "CREATE": "CREATE TABLE {schema}.intruder (id int)",
}
"""What a service tries in another service's schema (``{schema}`` quoted, ``{table}`` the other's table)."""


async def test_each_role_uses_its_own_schema(provisioned: Provisioned) -> None:
    for service in SERVICES:
        async with logged_in(provisioned, service) as connection:
            assert await connection.fetchval("SELECT current_schema()") == provisioned.names[service].schema
            async with connection.transaction():
                await connection.execute("CREATE TABLE own_check (id int)")
                await connection.execute("INSERT INTO own_check VALUES (1)")
                await connection.execute("UPDATE own_check SET id = 2")
                assert await connection.fetchval("SELECT id FROM own_check") == 2
                await connection.execute("DELETE FROM own_check")
                await connection.execute("DROP TABLE own_check")
            assert await connection.fetchval("SELECT note FROM probe") == f"secret of {service}"
    record_check(
        "privilege",
        "each service role in its own schema: CREATE, INSERT, SELECT, UPDATE, DELETE, DROP",
        f"allowed for all {len(SERVICES)} roles",
        passed=True,
    )


async def test_no_role_reaches_another_services_schema(provisioned: Provisioned) -> None:
    matrix = Matrix(f"service roles x other services' schemas ({', '.join(OTHER_SCHEMA_STATEMENTS)}, SET ROLE)")
    for service in SERVICES:
        async with logged_in(provisioned, service) as connection:
            for other in SERVICES:
                if other == service:
                    continue
                for verb, template in OTHER_SCHEMA_STATEMENTS.items():
                    statement = template.format(schema=provisioned.schema(other), table="probe")
                    await matrix.expect_denied(connection, f"role {service}: {verb} in schema of {other}", statement)
                await matrix.expect_denied(
                    connection,
                    f"role {service}: SET ROLE to {other}'s role",
                    f"SET ROLE {quote_identifier(provisioned.names[other].role)}",
                )
    matrix.record()
    assert matrix.leaks == []
    assert len(matrix.denied) == len(SERVICES) * (len(SERVICES) - 1) * (len(OTHER_SCHEMA_STATEMENTS) + 1)


async def test_no_role_writes_or_reads_schema_public(provisioned: Provisioned) -> None:
    matrix = Matrix("service roles x schema public (CREATE, SELECT, INSERT, UPDATE, DELETE)")
    for service in SERVICES:
        async with logged_in(provisioned, service) as connection:
            for verb, template in OTHER_SCHEMA_STATEMENTS.items():
                if verb == "TRUNCATE":
                    continue
                statement = template.format(schema="public", table="admin_probe").replace("(2, 'intruder')", "(2)")
                statement = statement.replace("SET note = 'intruder'", "SET id = 3")
                await matrix.expect_denied(connection, f"role {service}: {verb} in schema public", statement)
    matrix.record()
    assert matrix.leaks == []


async def test_no_role_creates_roles_or_databases_or_reads_the_role_catalogue(provisioned: Provisioned) -> None:
    matrix = Matrix(
        "service roles x server-wide (CREATE DATABASE, CREATE ROLE, SELECT pg_authid, ALTER ROLE own CREATEROLE,"
        " CREATE SCHEMA)"
    )
    for service in SERVICES:
        async with logged_in(provisioned, service) as connection:
            # CREATE DATABASE cannot run in a transaction block: it is tried bare (refused before doing anything).
            try:
                await connection.execute(f"CREATE DATABASE {quote_identifier(provisioned.database + '_intruder')}")
            except asyncpg.InsufficientPrivilegeError:
                matrix.denied.append(f"role {service}: CREATE DATABASE")
            else:
                matrix.leaks.append(f"role {service}: CREATE DATABASE: allowed")
                record_check("privilege", f"role {service}: CREATE DATABASE", "allowed", passed=False)
            await matrix.expect_denied(
                connection,
                f"role {service}: CREATE ROLE",
                f"CREATE ROLE {quote_identifier(provisioned.database + '_intruder')} LOGIN",
            )
            await matrix.expect_denied(
                connection, f"role {service}: SELECT pg_authid", "SELECT rolname, rolpassword FROM pg_catalog.pg_authid"
            )
            await matrix.expect_denied(
                connection,
                f"role {service}: ALTER ROLE own role CREATEROLE",
                f"ALTER ROLE {quote_identifier(provisioned.names[service].role)} CREATEROLE",
            )
            await matrix.expect_denied(connection, f"role {service}: CREATE SCHEMA", "CREATE SCHEMA intruder_schema")
    matrix.record()
    assert matrix.leaks == []
    assert len(matrix.denied) == len(SERVICES) * 5


async def test_no_role_reads_or_writes_another_database(provisioned: Provisioned) -> None:
    """CONNECT to other databases comes from ``PUBLIC``'s default (a server-wide decision the operator
    does not take); once connected, a service role can still neither read nor create anything there."""
    matrix = Matrix("service roles x another database (CREATE in public, SELECT, INSERT, CREATE SCHEMA)")
    for service in SERVICES:
        async with logged_in(provisioned, service, database=provisioned.other_database) as connection:
            await matrix.expect_denied(
                connection,
                f"role {service}: CREATE in public of another database",
                "CREATE TABLE public.intruder (id int)",
            )
            await matrix.expect_denied(
                connection, f"role {service}: SELECT in another database", "SELECT * FROM public.admin_probe"
            )
            await matrix.expect_denied(
                connection,
                f"role {service}: INSERT in another database",
                "INSERT INTO public.admin_probe VALUES (2)",
            )
            await matrix.expect_denied(
                connection, f"role {service}: CREATE SCHEMA in another database", "CREATE SCHEMA intruder_schema"
            )
    matrix.record()
    assert matrix.leaks == []


async def test_a_database_whose_public_schema_is_open_is_closed_by_the_reconciler(postgres_dsn: str) -> None:
    """Before PostgreSQL 15 (and in databases restored from one) ``PUBLIC`` may CREATE in schema public:
    every service role could then leave objects there for the others. The reconciler revokes it."""
    name = f"privpub_{uuid.uuid4().hex[:10]}"
    platform = _platform(postgres_dsn, name, name)
    base = postgres_dsn.rsplit("/", 1)[0]
    await _admin_execute(postgres_dsn, f"CREATE DATABASE {quote_identifier(name)}")
    try:
        await _admin_execute(f"{base}/{name}", "GRANT CREATE ON SCHEMA public TO PUBLIC")
        spec = PlatformSpec.parse(
            {
                "kafka": {"bootstrapServers": ["127.0.0.1:9092"], "topicPrefix": name},
                "postgres": {
                    "host": platform.host,
                    "port": platform.port,
                    "database": name,
                    "adminSecretRef": {"name": "a"},
                },
            }
        )
        logins = [ServiceLogin(platform.names[service], platform.passwords[service]) for service in SERVICES]

        outcome = await reconcile_database(spec.postgres, platform.admin, logins, platform.owner, CLIENT)

        assert outcome.ready, outcome.message
        assert "PUBLIC may CREATE" not in outcome.message
        assert [notice.reason for notice in outcome.notices if notice.type == "Warning"] == ["PublicSchemaHardened"]
        matrix = Matrix("service roles x schema public opened to PUBLIC before the reconciler ran (CREATE)")
        for service in SERVICES:
            async with logged_in(platform, service) as connection:
                await matrix.expect_denied(
                    connection,
                    f"role {service}: CREATE in an opened schema public",
                    "CREATE TABLE public.intruder (id int)",
                )
        matrix.record()
        assert matrix.leaks == []
    finally:
        await _drop(postgres_dsn, (name,), f"{name}_")
