"""The PostgreSQL reconciler against the real local server.

The module works in a database of its own (created here, dropped at the end with every role whose
name starts with it — roles are server-wide); each test uses its own topic prefix, so its schema and
role names are its own too. Service roles are checked the way a service would notice: by logging in
with the password from its Secret and trying to read, write and create.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import pytest

from checkout_operator.reconcilers.database import (
    AdminCredentials,
    ServiceLogin,
    delete_database,
    ownership_mark,
    quote_identifier,
    quote_literal,
    reconcile_database,
    scram_verifier,
    scram_verifier_matches,
)
from checkout_operator.settings import PostgresClientSettings
from checkout_operator.spec import SERVICES, PlatformSpec, ServiceDatabase, service_database

pytestmark = pytest.mark.integration

CLIENT = PostgresClientSettings(timeout_s=10)


@dataclass(frozen=True)
class Server:
    """The local PostgreSQL server and this module's own database on it."""

    host: str
    port: int
    admin: AdminCredentials
    database: str

    def dsn(self, database: str | None = None) -> str:
        return (
            f"postgresql://{self.admin.username}:{self.admin.password}@{self.host}:{self.port}/"
            f"{database or self.database}"
        )


async def _create_database(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"CREATE DATABASE {quote_identifier(name)}")
    finally:
        await connection.close()


async def _drop_database_and_roles(dsn: str, name: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)} WITH (FORCE)")
        roles = await connection.fetch("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)", name)
        if roles:
            await connection.execute("DROP ROLE " + ", ".join(quote_identifier(row["rolname"]) for row in roles))
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def server(postgres_dsn: str) -> Iterator[Server]:
    """A fresh database for the module; it and every role named after it are dropped at the end."""
    url = urlsplit(postgres_dsn)
    assert url.hostname
    assert url.port
    assert url.username
    assert url.password
    name = f"opdb_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(postgres_dsn, name))
    try:
        yield Server(
            host=url.hostname,
            port=url.port,
            admin=AdminCredentials(unquote(url.username), unquote(url.password)),
            database=name,
        )
    finally:
        asyncio.run(_drop_database_and_roles(postgres_dsn, name))


@dataclass(frozen=True)
class Platform:
    """One CheckoutPlatform's view of the server: its spec, its owner string and its services' passwords."""

    server: Server
    spec: PlatformSpec
    owner: str
    passwords: dict[str, str] = field(repr=False)

    def names(self, service: str) -> ServiceDatabase:
        return service_database(self.owner.split("/")[1], self.spec, service)

    def logins(self, services: Sequence[str] | None = None) -> list[ServiceLogin]:
        return [ServiceLogin(self.names(service), self.passwords[service]) for service in services or SERVICES]

    async def reconcile(
        self,
        services: Sequence[str] | None = None,
        *,
        admin: AdminCredentials | None = None,
        client: PostgresClientSettings = CLIENT,
        **postgres: Any,
    ) -> Any:
        spec = self.spec.postgres.model_copy(update=postgres)
        return await reconcile_database(spec, admin or self.server.admin, self.logins(services), self.owner, client)

    async def delete(self, services: Sequence[str] | None = None, **postgres: Any) -> Any:
        spec = self.spec.postgres.model_copy(update=postgres)
        databases = [self.names(service) for service in services or SERVICES]
        return await delete_database(spec, self.server.admin, databases, self.owner, CLIENT)


def make_platform(server: Server, *, name: str = "shop", namespace: str = "team-a", database: str = "") -> Platform:
    spec = PlatformSpec.parse(
        {
            "kafka": {"bootstrapServers": ["127.0.0.1:9092"], "topicPrefix": f"t{uuid.uuid4().hex[:8]}"},
            "postgres": {
                "host": server.host,
                "port": server.port,
                "database": database or server.database,
                "adminSecretRef": {"name": "postgres-admin"},
            },
        }
    )
    passwords = {service: secrets.token_urlsafe(24) for service in SERVICES}
    return Platform(server=server, spec=spec, owner=f"{namespace}/{name}", passwords=passwords)


@pytest.fixture
def platform(server: Server) -> Platform:
    return make_platform(server)


@asynccontextmanager
async def connected(server: Server, database: str | None = None) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(server.dsn(database))
    try:
        yield connection
    finally:
        await connection.close()


@asynccontextmanager
async def logged_in(platform: Platform, service: str, password: str | None = None) -> AsyncIterator[Any]:
    """A connection as the service's role, with the password from its Secret (or the one given)."""
    names = platform.names(service)
    connection = await asyncpg.connect(
        host=platform.server.host,
        port=platform.server.port,
        user=names.role,
        password=password or platform.passwords[service],
        database=platform.server.database,
    )
    try:
        yield connection
    finally:
        await connection.close()


def entry(outcome: Any, service: str) -> dict[str, Any]:
    return next(item for item in outcome.detail if item["service"] == service)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- provisioning -----------------------------------------------------------------------------------


async def test_first_pass_creates_a_schema_and_a_locked_down_role_per_service(platform: Platform) -> None:
    outcome = await platform.reconcile()

    assert outcome.ready, outcome.message
    assert outcome.reason == "DatabaseReady"
    assert outcome.message == (
        f"6 schemas and roles ready in {platform.server.database}@{platform.server.host}:{platform.server.port}"
    )
    assert [item["service"] for item in outcome.detail] == list(SERVICES)
    assert {item["state"] for item in outcome.detail} == {"Created"}
    assert [notice.reason for notice in outcome.notices] == ["DatabaseProvisioned"] * 6
    async with connected(platform.server) as admin:
        for service in SERVICES:
            names = platform.names(service)
            schema = await admin.fetchrow(
                "SELECT pg_get_userbyid(nspowner) AS owner, obj_description(oid, 'pg_namespace') AS comment"
                " FROM pg_namespace WHERE nspname = $1",
                names.schema,
            )
            assert schema is not None, f"schema {names.schema} missing"
            assert schema["owner"] == names.role
            assert schema["comment"] == ownership_mark(platform.owner)
            role = await admin.fetchrow(
                "SELECT *, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1", names.role
            )
            assert role["rolcanlogin"]
            assert not any(
                role[flag]
                for flag in ("rolsuper", "rolcreatedb", "rolcreaterole", "rolinherit", "rolreplication", "rolbypassrls")
            )
            assert role["rolconfig"] == [f"search_path={names.schema}"]
            assert role["comment"] == ownership_mark(platform.owner)
        stored = await admin.fetchval(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1", platform.names("order").role
        )
    assert stored.startswith("SCRAM-SHA-256$4096:")
    assert scram_verifier_matches(stored, platform.passwords["order"])
    async with logged_in(platform, "order") as order:
        assert await order.fetchval("SELECT current_schema()") == platform.names("order").schema


async def test_second_pass_changes_nothing_and_says_nothing(platform: Platform) -> None:
    await platform.reconcile()
    roles = [platform.names(service).role for service in SERVICES]
    query = "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1) ORDER BY rolname"
    async with connected(platform.server) as admin:
        before = await admin.fetch(query, roles)

        outcome = await platform.reconcile()

        after = await admin.fetch(query, roles)
    assert outcome.ready, outcome.message
    assert outcome.notices == []
    assert {item["state"] for item in outcome.detail} == {"Ready"}
    assert not any("message" in item or "recreated" in item for item in outcome.detail)
    assert len(before) == 6
    assert before == after  # passwords that match are not rewritten


async def test_each_role_reaches_its_own_schema_only(platform: Platform) -> None:
    await platform.reconcile(["order", "payment"])
    order_schema, payment_schema = platform.names("order").schema, platform.names("payment").schema
    async with connected(platform.server) as admin:  # the admin's objects in a schema are its service's too
        await admin.execute(f"CREATE TABLE {quote_identifier(payment_schema)}.charges (id int)")

    # Schema names come from service_database() and are quoted: the f-strings below are not injection.
    orders, charges = f"{quote_identifier(order_schema)}.orders", f"{quote_identifier(payment_schema)}.charges"
    async with logged_in(platform, "order") as order:
        await order.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        await order.execute("INSERT INTO orders VALUES (1)")
        assert await order.fetchval(f"SELECT id FROM {orders}") == 1  # noqa: S608
        for statement in (
            f"SELECT * FROM {charges}",  # noqa: S608
            f"INSERT INTO {charges} VALUES (1)",  # noqa: S608
            f"CREATE TABLE {quote_identifier(payment_schema)}.sneaky (id int)",
            "CREATE TABLE public.sneaky (id int)",
            "CREATE SCHEMA sneaky",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await order.execute(statement)
    async with logged_in(platform, "payment") as payment:
        await payment.execute("INSERT INTO charges VALUES (7)")
        assert await payment.fetchval("SELECT id FROM charges") == 7
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await payment.execute(f"SELECT * FROM {orders}")  # noqa: S608


async def test_a_schema_dropped_by_hand_is_recreated_and_flagged(platform: Platform) -> None:
    await platform.reconcile(["order", "cart"])
    names = platform.names("order")
    async with logged_in(platform, "order") as order:
        await order.execute("CREATE TABLE orders (id int)")
    async with connected(platform.server) as admin:
        await admin.execute(f"DROP SCHEMA {quote_identifier(names.schema)} CASCADE")

    outcome = await platform.reconcile(["order", "cart"])

    assert outcome.ready, outcome.message
    message = (
        f"schema {names.schema} was missing and was recreated (empty: the order service's migrations repopulate"
        " it when it next starts)"
    )
    assert [(n.type, n.reason, n.message) for n in outcome.notices] == [("Warning", "SchemaRecreated", message)]
    assert entry(outcome, "order") == {
        "service": "order",
        "schema": names.schema,
        "role": names.role,
        "state": "Repaired",
        "message": message,
        "recreated": True,
    }
    assert entry(outcome, "cart")["state"] == "Ready"
    assert "recreated" not in entry(outcome, "cart")
    async with logged_in(platform, "order") as order:
        await order.execute("CREATE TABLE orders (id int)")  # usable again, by the service itself
    assert (await platform.reconcile(["order", "cart"])).notices == []


async def test_a_password_changed_by_hand_is_set_back(platform: Platform) -> None:
    await platform.reconcile(["inventory"])
    names = platform.names("inventory")
    async with connected(platform.server) as admin:
        await admin.execute(f"ALTER ROLE {quote_identifier(names.role)} PASSWORD 'changed-by-hand'")
    with pytest.raises(asyncpg.InvalidPasswordError):
        async with logged_in(platform, "inventory"):
            pass

    outcome = await platform.reconcile(["inventory"])

    assert outcome.ready, outcome.message
    assert entry(outcome, "inventory")["state"] == "Repaired"
    assert [notice.reason for notice in outcome.notices] == ["DatabaseDriftRepaired"]
    assert "password" in outcome.notices[0].message
    async with logged_in(platform, "inventory") as inventory:
        assert await inventory.fetchval("SELECT current_user") == names.role


async def test_attribute_and_grant_drift_is_repaired(platform: Platform) -> None:
    await platform.reconcile(["order", "payment"])
    order, payment = platform.names("order"), platform.names("payment")
    async with connected(platform.server) as admin:
        await admin.execute(f"ALTER ROLE {quote_identifier(order.role)} CREATEDB INHERIT VALID UNTIL '2001-01-01'")
        await admin.execute(f"ALTER ROLE {quote_identifier(order.role)} RESET search_path")
        await admin.execute(
            f"GRANT USAGE ON SCHEMA {quote_identifier(payment.schema)} TO {quote_identifier(order.role)}"
        )
        await admin.execute(
            f"GRANT CREATE ON DATABASE {quote_identifier(platform.server.database)} TO {quote_identifier(order.role)}"
        )
        await admin.execute(f"ALTER SCHEMA {quote_identifier(order.schema)} OWNER TO {quote_identifier(payment.role)}")

    outcome = await platform.reconcile(["order", "payment"])

    assert outcome.ready, outcome.message
    assert entry(outcome, "order")["state"] == "Repaired"
    assert entry(outcome, "payment")["state"] == "Ready"
    repaired = outcome.notices[0].message
    for words in ("NOCREATEDB", "NOINHERIT", "password expiry", "search_path", "revoked CREATE", payment.schema):
        assert words in repaired
    async with logged_in(platform, "order") as connection:
        assert await connection.fetchval("SELECT current_schema()") == order.schema
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(f"CREATE TABLE {quote_identifier(payment.schema)}.sneaky (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("CREATE SCHEMA sneaky")
    assert (await platform.reconcile(["order", "payment"])).notices == []


async def test_a_unicode_password_logs_in_as_clients_normalise_it(platform: Platform) -> None:
    password = "ﬁne\u00a0pässwörd ☃ 'quoted' \\ back"  # a ligature and a non-ASCII space: SASLprep maps both
    unicode_platform = Platform(
        platform.server, platform.spec, platform.owner, {**platform.passwords, "cart": password}
    )

    assert (await unicode_platform.reconcile(["cart"])).ready

    async with logged_in(unicode_platform, "cart") as cart:
        assert await cart.fetchval("SELECT 1") == 1


async def test_verifiers_agree_with_the_ones_postgresql_makes(server: Server) -> None:
    password = "ﬁne\u00a0pässwörd ☃"
    role = f"{server.database}_verifier_probe"
    async with connected(server) as admin:
        await admin.execute(f"CREATE ROLE {quote_identifier(role)} LOGIN PASSWORD {quote_literal(password)}")
        stored = await admin.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
        assert scram_verifier_matches(stored, password)
        assert not scram_verifier_matches(stored, password + "x")
        await admin.execute(f"ALTER ROLE {quote_identifier(role)} PASSWORD {quote_literal(scram_verifier(password))}")
    probe = await asyncpg.connect(
        host=server.host, port=server.port, user=role, password=password, database=server.database
    )
    await probe.close()


async def test_quoting_survives_the_server(server: Server) -> None:
    texts = ["plain", "it's", "back\\slash", "both \\' mixed", "ünïcødé ☃ 漢字", 'dou"ble', "$$dollar$$", "--"]
    async with connected(server) as admin:
        for text in texts:
            assert await admin.fetchval(f"SELECT {quote_literal(text)}") == text
        await admin.execute("SET standard_conforming_strings = off")
        for text in texts:
            assert await admin.fetchval(f"SELECT {quote_literal(text)}") == text
        await admin.execute("RESET standard_conforming_strings")
        for text in ["Mixed Case", 'with"quote', "back\\slash", "ünïcødé ☃", "select", "x; DROP TABLE y"]:
            await admin.execute(f"CREATE SCHEMA {quote_identifier(text)}")
            try:
                assert await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", text) == 1
            finally:
                await admin.execute(f"DROP SCHEMA {quote_identifier(text)}")


# --- ownership --------------------------------------------------------------------------------------


async def test_a_role_of_another_platform_is_left_alone(platform: Platform) -> None:
    names = platform.names("order")
    async with connected(platform.server) as admin:
        await admin.execute(f"CREATE ROLE {quote_identifier(names.role)} LOGIN CREATEDB PASSWORD 'theirs'")
        await admin.execute(
            f"COMMENT ON ROLE {quote_identifier(names.role)} IS {quote_literal(ownership_mark('team-b/shop'))}"
        )

    outcome = await platform.reconcile(["order", "payment"])

    assert not outcome.ready
    assert outcome.reason == "OwnershipConflict"
    assert not outcome.retry
    assert names.role in outcome.message
    assert "team-b/shop" in outcome.message
    assert entry(outcome, "order")["state"] == "Error"
    assert entry(outcome, "payment")["state"] == "Created"  # the others go on
    async with connected(platform.server) as admin:
        role = await admin.fetchrow(
            "SELECT rolcreatedb, shobj_description(oid, 'pg_authid') AS comment FROM pg_roles WHERE rolname = $1",
            names.role,
        )
        assert role["rolcreatedb"]
        assert role["comment"] == ownership_mark("team-b/shop")
        assert await admin.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", names.schema) == 0
    async with logged_in(platform, "order", password="theirs"):
        pass


async def test_an_unmarked_role_is_left_alone(platform: Platform) -> None:
    names = platform.names("cart")
    async with connected(platform.server) as admin:
        await admin.execute(f"CREATE ROLE {quote_identifier(names.role)} LOGIN PASSWORD 'a-dba-made-this'")

    outcome = await platform.reconcile(["cart"])

    assert outcome.reason == "OwnershipConflict"
    assert "not managed by checkout-operator" in outcome.message
    async with logged_in(platform, "cart", password="a-dba-made-this"):
        pass


async def test_an_unmarked_schema_is_adopted_only_when_empty(platform: Platform) -> None:
    empty, full = platform.names("order"), platform.names("payment")
    async with connected(platform.server) as admin:
        await admin.execute(f"CREATE SCHEMA {quote_identifier(empty.schema)}")
        await admin.execute(f"CREATE SCHEMA {quote_identifier(full.schema)}")
        await admin.execute(f"CREATE TABLE {quote_identifier(full.schema)}.precious (id int)")

    outcome = await platform.reconcile(["order", "payment"])

    assert outcome.reason == "OwnershipConflict"
    assert full.schema in outcome.message
    assert entry(outcome, "order")["state"] == "Created"
    assert entry(outcome, "payment")["state"] == "Error"
    async with connected(platform.server) as admin:
        owners = dict(
            await admin.fetch(
                "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = ANY($1)",
                [empty.schema, full.schema],
            )
        )
    assert owners == {empty.schema: empty.role, full.schema: platform.server.admin.username}


# --- failures ---------------------------------------------------------------------------------------


async def test_a_wrong_admin_password_is_reported(platform: Platform) -> None:
    wrong = AdminCredentials(platform.server.admin.username, "not-the-password")

    outcome = await platform.reconcile(["order"], admin=wrong)

    assert not outcome.ready
    assert outcome.reason == "AuthenticationFailed"
    assert outcome.retry
    assert repr(platform.server.admin.username) in outcome.message
    assert "postgres-admin" in outcome.message
    assert "not-the-password" not in outcome.message
    assert "not-the-password" not in repr(wrong)
    assert entry(outcome, "order")["state"] == "Error"


async def test_an_unreachable_server_is_reported(platform: Platform) -> None:
    port = free_port()

    outcome = await platform.reconcile(client=PostgresClientSettings(timeout_s=2), port=port)

    assert not outcome.ready
    assert outcome.reason == "PostgresUnreachable"
    assert outcome.retry
    assert f"{platform.server.host}:{port}" in outcome.message
    assert "retrying" in outcome.message
    assert {item["state"] for item in outcome.detail} == {"Error"}
    assert len(outcome.detail) == len(SERVICES)


async def test_a_missing_database_is_reported(platform: Platform) -> None:
    outcome = await platform.reconcile(["order"], database=f"{platform.server.database}_nowhere")

    assert outcome.reason == "DatabaseMissing"
    assert outcome.retry
    assert f"{platform.server.database}_nowhere" in outcome.message


async def test_an_admin_that_cannot_create_roles_is_refused_before_anything_changes(platform: Platform) -> None:
    weak = AdminCredentials(f"{platform.server.database}_weak_admin", secrets.token_urlsafe(16))
    async with connected(platform.server) as admin:
        await admin.execute(
            f"CREATE ROLE {quote_identifier(weak.username)} LOGIN PASSWORD {quote_literal(weak.password)}"
        )

    outcome = await platform.reconcile(["order"], admin=weak)

    assert outcome.reason == "InsufficientPrivilege"
    assert outcome.retry
    assert "CREATEROLE" in outcome.message
    async with connected(platform.server) as admin:
        assert (
            await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", platform.names("order").role) == 0
        )


async def test_a_createrole_admin_without_superuser_provisions(platform: Platform) -> None:
    """As on managed PostgreSQL, where the admin is no superuser but may create roles and schemas."""
    managed = AdminCredentials(f"{platform.server.database}_managed_admin", secrets.token_urlsafe(16))
    async with connected(platform.server) as admin:
        who = quote_identifier(managed.username)
        await admin.execute(f"CREATE ROLE {who} LOGIN CREATEROLE PASSWORD {quote_literal(managed.password)}")
        await admin.execute(f"GRANT CREATE ON DATABASE {quote_identifier(platform.server.database)} TO {who}")

    first = await platform.reconcile(["order", "payment"], admin=managed)
    second = await platform.reconcile(["order", "payment"], admin=managed)

    assert first.ready, first.message
    assert {item["state"] for item in first.detail} == {"Created"}
    assert second.ready, second.message
    assert second.notices == []
    async with logged_in(platform, "order") as order:
        await order.execute("CREATE TABLE orders (id int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await order.execute(f"CREATE TABLE {quote_identifier(platform.names('payment').schema)}.x (id int)")
    deleted = await delete_database(
        platform.spec.postgres,
        managed,
        [platform.names("order"), platform.names("payment")],
        platform.owner,
        CLIENT,
    )
    assert deleted.ready, deleted.message


# --- deletion ---------------------------------------------------------------------------------------


async def test_delete_drops_what_the_platform_owns_and_nothing_else(platform: Platform) -> None:
    await platform.reconcile(["order", "payment"])
    theirs = platform.names("cart")
    async with connected(platform.server) as admin:
        await admin.execute(f"CREATE ROLE {quote_identifier(theirs.role)} LOGIN")
        await admin.execute(
            f"COMMENT ON ROLE {quote_identifier(theirs.role)} IS {quote_literal(ownership_mark('team-b/shop'))}"
        )
    session = await asyncpg.connect(
        host=platform.server.host,
        port=platform.server.port,
        user=platform.names("order").role,
        password=platform.passwords["order"],
        database=platform.server.database,
    )
    await session.execute("CREATE TABLE orders (id int)")

    outcome = await platform.delete(["order", "payment", "cart"])

    assert outcome.ready, outcome.message
    assert outcome.reason == "DatabaseDeleted"
    assert [item["state"] for item in outcome.detail] == ["Deleted", "Deleted", "Kept"]
    assert "team-b/shop" in entry(outcome, "cart")["message"]
    assert [notice.reason for notice in outcome.notices] == ["DatabaseObjectsKept"]
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
        await session.fetchval("SELECT 1")  # the role's session was ended
    session.terminate()
    async with connected(platform.server) as admin:
        names = [platform.names(service) for service in ("order", "payment")]
        roles = await admin.fetch(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", [n.role for n in names] + [theirs.role]
        )
        schemas = await admin.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)", [n.schema for n in names]
        )
    assert [row["rolname"] for row in roles] == [theirs.role]
    assert schemas == []

    again = await platform.delete(["order", "payment"])

    assert again.ready, again.message
    assert [item["state"] for item in again.detail] == ["Absent", "Absent"]


async def test_delete_after_the_database_is_gone_drops_the_roles(server: Server) -> None:
    database = f"{server.database}_gone"
    async with connected(server) as admin:
        await admin.execute(f"CREATE DATABASE {quote_identifier(database)}")
    platform = make_platform(server, database=database)
    assert (await platform.reconcile(["order"])).ready
    async with connected(server) as admin:
        await admin.execute(f"DROP DATABASE {quote_identifier(database)} WITH (FORCE)")

    outcome = await platform.delete(["order"])

    assert outcome.ready, outcome.message
    assert entry(outcome, "order")["state"] == "Deleted"
    async with connected(server) as admin:
        assert (
            await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", platform.names("order").role) == 0
        )


async def test_delete_against_an_unreachable_server_is_retried(platform: Platform) -> None:
    outcome = await platform.delete(["order"], port=free_port())

    assert not outcome.ready
    assert outcome.reason == "PostgresUnreachable"
    assert outcome.retry
