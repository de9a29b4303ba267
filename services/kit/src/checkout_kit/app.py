"""The application factory: a service declares what it runs, the kit builds and runs it.

A service describes itself once in a :class:`ServiceSpec` (its routers, its migrations, whether
it talks to Kafka, its background components) and gets its FastAPI app from :func:`create_app`.
Nothing is connected when the app is created; the lifespan does it, in this order:

1. create the engine and check the schema is at the migrations' head — a service never serves on
   a stale schema, it refuses to start and says which revision it found and which it needs;
2. start the Kafka producer (when the service produces or consumes);
3. build the :class:`Runtime` (settings, engine, sessions, publisher, metrics registry) and
   start each background component built from it, in declaration order;
4. serve, with ``/readyz`` checking the database, Kafka and components that report health.

Shutdown runs the other way: ``/readyz`` turns 503 (draining), components stop in reverse order
(each finishing its in-flight work), then the producer flushes and closes and the engine's
pool is disposed. Stopping is bounded by ``shutdown_grace_s`` overall; a component that does not
stop in time is logged and left behind so the rest still closes cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from checkout_kit import db, failpoints, tracing
from checkout_kit.body_limit import BodyLimitMiddleware
from checkout_kit.health import Check, Readiness, health_router
from checkout_kit.messaging.producer import Publisher, start_producer, stop_producer
from checkout_kit.metrics import HttpMetrics, MetricsMiddleware, service_registry
from checkout_kit.migrations import SchemaRevision, require_head
from checkout_kit.settings import ServiceSettings
from checkout_kit.telemetry import trace_exemplar
from checkout_kit.topics import Topics

logger = logging.getLogger(__name__)


class Component(Protocol):
    """A background part of a service (consumer, outbox relay, deadline scanner)."""

    async def start(self) -> None:
        """Begin work; return once running (raise if it cannot start)."""

    async def stop(self, grace_s: float | None = None) -> None:
        """Finish in-flight work (commit, hand back partitions) and stop.

        After ``grace_s`` seconds (None: no limit) abandon the work in flight — it must be safe
        to redo, as everything at-least-once is — and close what is open.
        """


@runtime_checkable
class ReportsReadiness(Protocol):
    """A component whose health ``/readyz`` includes (e.g. a consumer whose loop must be alive)."""

    async def check_ready(self) -> None:
        """Return if healthy; raise with the reason if not."""


class Runtime:
    """What a running service shares: settings and the clients built at startup.

    Handed to every component factory and, through :mod:`checkout_kit.deps`, to request handlers.
    Asking for the database or Kafka of a service that declared none is a programming error and
    raises at once with a message saying so.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        registry: CollectorRegistry,
        engine: AsyncEngine | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self.settings = settings
        """The service's settings (its own subclass of :class:`ServiceSettings`)."""
        self.registry = registry
        """The app's metrics registry: components register their instruments here."""
        self.topics = Topics(settings.kafka.topic_prefix)
        """The platform's topic names."""
        self._engine = engine
        self._sessions = db.session_factory(engine) if engine is not None else None
        self._publisher = publisher
        self.failpoint = failpoints.from_settings(settings.failpoints, forbidden=settings.failpoints_forbidden)
        """Where the fault-injection suite SIGKILLs the process (``FAILPOINTS``); None in production."""

    @property
    def has_database(self) -> bool:
        """The service declared a schema."""
        return self._engine is not None

    @property
    def engine(self) -> AsyncEngine:
        """The service's engine (search_path on its schema)."""
        if self._engine is None:
            raise RuntimeError(f"{self.settings.service_name} declared no database (ServiceSpec.migrations)")
        return self._engine

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        """Session factory on :attr:`engine`."""
        if self._sessions is None:
            raise RuntimeError(f"{self.settings.service_name} declared no database (ServiceSpec.migrations)")
        return self._sessions

    @property
    def publisher(self) -> Publisher:
        """The started Kafka publisher."""
        if self._publisher is None:
            raise RuntimeError(f"{self.settings.service_name} declared no Kafka use (ServiceSpec.kafka)")
        return self._publisher


ComponentFactory = Callable[[Runtime], Component]
"""Builds a component from the runtime, in the lifespan (never at import)."""


@dataclass(frozen=True)
class ServiceSpec:
    """What a service runs. Static: it holds declarations, never connections."""

    title: str
    """Service name shown in the OpenAPI document."""
    routers: Sequence[APIRouter] = ()
    """The service's API."""
    migrations: Path | None = None
    """The service's Alembic directory (with ``env.py``); set iff the service has a schema.

    The database is then part of readiness and the schema must be at head to start."""
    kafka: bool = False
    """The service produces or consumes: a publisher is started and readiness checks Kafka."""
    components: Mapping[str, ComponentFactory] = field(default_factory=dict)
    """Background components by name, started in this order and stopped in reverse."""
    version: str = "0.1.0"
    """API version shown in the OpenAPI document."""


def create_app(spec: ServiceSpec, settings: ServiceSettings, *, registry: CollectorRegistry | None = None) -> FastAPI:
    """Build the service's app; every connection is opened later, in its lifespan.

    ``registry`` defaults to a fresh registry per app carrying the process, platform and GC
    collectors; pass one to share or inspect it in tests.
    """
    if registry is None:
        registry = service_registry()
    app = FastAPI(title=spec.title, version=spec.version, lifespan=_lifespan(spec, settings, registry))
    app.state.registry = registry
    app.include_router(health_router(registry))
    for router in spec.routers:
        app.include_router(router)
    answer_503_when_database_unreachable(app)
    # Added last = outermost: metrics see every answer, the 413s included.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.http.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=HttpMetrics(registry, exemplar=trace_exemplar))
    tracing.instrument_app(app)  # outermost: the metrics middleware runs inside the request's span
    return app


DATABASE_UNAVAILABLE_RETRY_AFTER_S: Final = 2
"""What a 503 for an unreachable database tells the client to wait."""


def database_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached (not that a statement was wrong).

    A refused or reset connection (``ConnectionError``: the pool opening a connection raises it
    unwrapped), a connection SQLAlchemy invalidated as dead, or asyncpg's own connection errors
    (the server shutting down, starting up, gone mid-query).
    """
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig if error.orig is not None else error
        cause = error.__cause__
        if cause is not None and database_unreachable(cause):
            return True
    if isinstance(error, ConnectionError):
        return True
    return type(error).__name__ in _UNREACHABLE


_UNREACHABLE: Final = frozenset(
    {
        "ConnectionDoesNotExistError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "ConnectionFailureError",
        "TooManyConnectionsError",
    }
)
"""asyncpg's exception classes (by name: SQLAlchemy wraps them) that mean "no usable connection"."""


def answer_503_when_database_unreachable(app: FastAPI) -> None:
    """Turn "no usable database connection" into 503 + Retry-After (was a 500 with a traceback)."""
    app.add_exception_handler(DBAPIError, _database_unavailable)
    app.add_exception_handler(ConnectionError, _database_unavailable)


async def _database_unavailable(request: Request, error: Exception) -> Response:
    """503 with Retry-After while the database cannot be reached; anything else stays a 500."""
    if not database_unreachable(error):
        raise error
    logger.warning("%s %s: the database is unreachable: %s", request.method, request.url.path, error)
    return JSONResponse(
        status_code=503,
        content={"detail": "the database is unreachable; retry shortly"},
        headers={"Retry-After": str(DATABASE_UNAVAILABLE_RETRY_AFTER_S)},
    )


class _ShutdownBudget:
    """One deadline for stopping everything, started when shutdown begins."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._deadline: float | None = None

    def begin(self) -> None:
        self._deadline = asyncio.get_running_loop().time() + self.grace_s

    def remaining(self) -> float:
        if self._deadline is None:
            self.begin()
        assert self._deadline is not None
        return max(0.0, self._deadline - asyncio.get_running_loop().time())


_CLOSE_MARGIN_S = 2.0
"""Time a part gets past its grace to close its connections after abandoning its work."""


async def _stop_within(name: str, stop: Callable[[float], Awaitable[object]], budget: _ShutdownBudget) -> None:
    """Stop one part within what is left of the budget; log instead of raising so the rest still stops.

    The part is told its grace and is expected to keep it; the timeout here is the backstop for
    one that does not.
    """
    grace_s = budget.remaining()
    try:
        async with asyncio.timeout(grace_s + _CLOSE_MARGIN_S):
            await stop(grace_s)
    except TimeoutError:
        logger.error("%s did not stop within the shutdown grace period (%gs); leaving it", name, budget.grace_s)
    except Exception:
        logger.exception("%s failed while stopping", name)
    else:
        logger.info("%s stopped", name)


class StartupError(RuntimeError):
    """The service cannot start; the message says what is missing."""


async def _schema_at_head(engine: AsyncEngine, migrations: Path, settings: ServiceSettings) -> SchemaRevision:
    """Refuse to start on a stale schema, or when the database cannot tell."""
    try:
        return await require_head(engine, migrations, settings.database.db_schema)
    except (OSError, DBAPIError) as error:
        where = engine.url.render_as_string(hide_password=True)
        raise StartupError(
            f"cannot check that schema {settings.database.db_schema!r} is at its migrations' head: "
            f"PostgreSQL at {where} did not answer ({type(error).__name__}: {error})"
        ) from error


def _ignore_grace(close: Callable[[], Awaitable[object]]) -> Callable[[float], Awaitable[object]]:
    def stop(_grace_s: float) -> Awaitable[object]:
        return close()

    return stop


def _database_check(engine: AsyncEngine) -> Check:
    async def database() -> None:
        await db.ping(engine)

    return database


def _kafka_check(producer: AIOKafkaProducer) -> Check:
    async def kafka() -> None:
        await producer.client.fetch_all_metadata()

    return kafka


def _lifespan(
    spec: ServiceSpec, settings: ServiceSettings, registry: CollectorRegistry
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        budget = _ShutdownBudget(settings.shutdown_grace_s)
        checks: dict[str, Check] = {}
        async with AsyncExitStack() as stack:
            engine: AsyncEngine | None = None
            if spec.migrations is not None:
                engine = db.create_engine(settings.database, application_name=settings.service_name)
                tracing.instrument_engine(engine)
                stack.push_async_callback(_stop_within, "database engine", _ignore_grace(engine.dispose), budget)
                revision = await _schema_at_head(engine, spec.migrations, settings)
                logger.info("schema %s at head %s", settings.database.db_schema, ", ".join(revision.head))
                checks["database"] = _database_check(engine)
            publisher: Publisher | None = None
            if spec.kafka:
                producer = await start_producer(settings.kafka, settings.service_name)
                stack.push_async_callback(
                    _stop_within, "kafka producer", _ignore_grace(lambda: stop_producer(producer)), budget
                )
                publisher = Publisher(producer)
                checks["kafka"] = _kafka_check(producer)

            runtime = Runtime(settings, registry, engine=engine, publisher=publisher)
            app.state.runtime = runtime
            for name, build in spec.components.items():
                component = build(runtime)
                await component.start()
                stack.push_async_callback(_stop_within, name, component.stop, budget)
                if isinstance(component, ReportsReadiness):
                    checks[name] = component.check_ready
                logger.info("%s started", name)

            readiness = Readiness(checks)
            app.state.readiness = readiness
            logger.info("%s ready", settings.service_name)
            try:
                yield
            finally:
                readiness.draining = True
                budget.begin()
                logger.info("%s shutting down", settings.service_name)

    return lifespan
