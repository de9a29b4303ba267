"""The service's PostgreSQL engine and sessions (SQLAlchemy 2 async over asyncpg).

Every connection is pinned to the service's own schema through ``search_path``, set as a
startup parameter rather than by a ``SET`` after connecting: it then holds for every
connection the pool ever opens, including ones re-established after a failover, and the same
table definitions (``outbox``, ``inbox``, the service's own) work in whichever schema the
operator provisioned. ``statement_timeout`` bounds any one statement so a lock wait cannot
hang a request or a consumer forever.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import MetaData, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from checkout_kit.settings import DatabaseSettings


def server_settings(settings: DatabaseSettings, application_name: str | None = None) -> dict[str, str]:
    """The PostgreSQL run-time parameters every connection starts with."""
    params = {
        "search_path": f'"{settings.db_schema}"',
        "statement_timeout": str(settings.statement_timeout_ms),
    }
    if application_name:
        params["application_name"] = application_name
    return params


def create_engine(settings: DatabaseSettings, application_name: str | None = None) -> AsyncEngine:
    """Create the service's engine (no connection is opened until first use).

    A pooled connection the server has closed (a restart, a failover, ``pg_terminate_backend``)
    is replaced before it is handed out (:func:`_replace_closed`), so a database restart does not
    fail the next request. ``application_name`` (the service name) shows up in
    ``pg_stat_activity``.
    """
    engine = create_async_engine(
        settings.sqlalchemy_url(),
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        connect_args={"server_settings": server_settings(settings, application_name)},
    )
    event.listen(engine.sync_engine.pool, "checkout", _replace_closed)
    return engine


def _replace_closed(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Refuse a pooled connection whose socket the server closed; the pool then opens a fresh one.

    asyncpg marks a connection closed as soon as the event loop sees the server's goodbye, so
    this costs no round trip. SQLAlchemy's ``pool_pre_ping`` did the same with three (``BEGIN``,
    ``;``, ``ROLLBACK``) on every checkout — about 40 a saga. A connection that dies without a
    goodbye still fails its statement; SQLAlchemy then invalidates the pool, and the caller's
    retry (the consumer's, the relay's) gets fresh connections.
    """
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on ``engine``.

    ``expire_on_commit=False`` keeps loaded objects readable after commit: a handler commits
    and then still reads what it wrote (to build a response or a log line) without an implicit
    lazy load, which async sessions cannot do.
    """
    return async_sessionmaker(engine, expire_on_commit=False)


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1`` on a pooled connection; raise if PostgreSQL cannot answer (readiness)."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Constraint and index names every service's MetaData uses, so migrations name them alike."""


def service_metadata() -> MetaData:
    """A MetaData with the platform's naming convention (tables carry no schema: search_path decides)."""
    return MetaData(naming_convention=NAMING_CONVENTION)
