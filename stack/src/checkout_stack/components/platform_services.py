"""The platform's six services as local processes against the stack (`make services`).

Not part of the infrastructure a plain `make up` starts: `checkout-stack services up` (or
`checkout-stack up services`) does, in this order:

1. makes sure what the services need (PostgreSQL, Kafka) is up, starting it if not;
2. creates the five topics under the prefix (``checkout`` by default) with the admin client
   if they are missing — the broker does not auto-create topics;
3. finds which service packages are runnable (``python -m <package>``) in the workspace's
   interpreter: services still being written are reported as missing and skipped;
4. migrates each one's schema (``python -m <package> migrate`` with the superuser DSN; each
   service keeps its own default schema);
5. starts each as a managed process — its own session, log in ``<run_dir>/logs/<name>.log``,
   pid file — with the stack's addresses in its environment, and waits for its ``/readyz``.

Stopping sends SIGTERM to each service's process group (uvicorn drains in-flight requests, the
lifespan stops consumers and relays within their grace) and SIGKILLs what is left after
``stop_timeout_s``. `make down` stops the services before the infrastructure.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, TypeVar

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from checkout_stack.components.base import Component, Status, http_ok, port_open
from checkout_stack.console import info, step
from checkout_stack.processes import OWNER_VARIABLE, ManagedProcess, ProcessError, tail, wait_until
from checkout_stack.settings import HOST, REPO_ROOT, StackSettings

T = TypeVar("T")

TOPIC_NAMES: Final = ("checkout-events", "inventory-command", "payment-command", "order-command", "dlq")
"""The platform's topics under ``<prefix>.`` (as ``checkout_kit.topics.Topics`` names them)."""
ADMIN_TIMEOUT_S: Final = 30.0
"""Upper bound of the topic set-up."""
MIGRATE_TIMEOUT_S: Final = 180.0
"""Upper bound of one service's migrations."""


@dataclass(frozen=True)
class ServiceDefinition:
    """One service: how it is named, run and reached."""

    name: str
    """Process and status name (``gateway-bff``)."""
    package: str
    """Python package run with ``python -m`` (``checkout_gateway``)."""
    url_variable: str
    """What `make env` exports its base URL as."""
    port_setting: str
    """The :class:`~checkout_stack.settings.ServicesSettings` field holding its port."""


SERVICES: Final = (
    ServiceDefinition("gateway-bff", "checkout_gateway", "BFF_URL", "gateway_port"),
    ServiceDefinition("checkout-orchestrator", "checkout_orchestrator", "ORCHESTRATOR_URL", "orchestrator_port"),
    ServiceDefinition("inventory", "checkout_inventory", "INVENTORY_URL", "inventory_port"),
    ServiceDefinition("payment", "checkout_payment", "PAYMENT_URL", "payment_port"),
    ServiceDefinition("order", "checkout_order", "ORDER_URL", "order_port"),
    ServiceDefinition("cart", "checkout_cart", "CART_URL", "cart_port"),
)
"""Every service, in start order (all start at once; the order only sets the order of the rows)."""

_PROBE: Final = """\
import importlib.util, json, pathlib, sys
found = {}
for package in sys.argv[1:]:
    try:
        runnable = importlib.util.find_spec(package + ".__main__") is not None
    except ImportError:
        runnable = False
    migrations = False
    if runnable:
        locations = importlib.util.find_spec(package).submodule_search_locations or []
        migrations = any((pathlib.Path(p) / "migrations" / "env.py").exists() for p in locations)
    found[package] = {"runnable": runnable, "migrations": migrations}
print(json.dumps(found))
"""
"""Run in the services' interpreter: which packages ``python -m`` can run, and which have migrations."""


@dataclass(frozen=True)
class Availability:
    """What the probe found for one package."""

    runnable: bool
    migrations: bool


class ServicesError(RuntimeError):
    """The services could not be prepared or started; the message says which and why."""


def probe_packages(python: str, packages: Sequence[str]) -> dict[str, Availability]:
    """Which of ``packages`` ``python -m`` can run in ``python``'s environment (one subprocess)."""
    result = subprocess.run(
        [python, "-c", _PROBE, *packages], capture_output=True, text=True, check=False, timeout=60, cwd=REPO_ROOT
    )
    if result.returncode != 0:
        raise ServicesError(f"cannot inspect the service packages with {python}:\n{result.stderr.strip()}")
    found = json.loads(result.stdout)
    return {package: Availability(**found[package]) for package in packages}


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion, also when the caller is inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


class PlatformServices(Component):
    """gateway-bff, checkout-orchestrator, inventory, payment, order and cart, run from the workspace."""

    name = "services"
    version = "workspace"

    def __init__(self, settings: StackSettings, needs: Sequence[Component] = (), python: str | None = None) -> None:
        """``needs``: the components the services talk to (PostgreSQL, then Kafka), started first if down.

        Their ``env()`` supplies ``DATABASE_URL`` and ``KAFKA_BOOTSTRAP_SERVERS``. ``python`` is
        the interpreter of the workspace (default: the one running the stack).
        """
        super().__init__(settings)
        self.needs = tuple(needs)
        self.python = python or sys.executable

    # --- what runs where ----------------------------------------------------------------------

    @property
    def enabled(self) -> list[ServiceDefinition]:
        """The services this stack is configured to run."""
        return [service for service in SERVICES if service.name in self.settings.services.enabled]

    def port(self, service: ServiceDefinition) -> int:
        """The service's HTTP port."""
        port: int = getattr(self.settings.services, service.port_setting)
        return port

    def url(self, service: ServiceDefinition) -> str:
        """The service's base URL."""
        return f"http://{HOST}:{self.port(service)}"

    def by_name(self, name: str) -> ServiceDefinition:
        """The service called ``name``."""
        for service in SERVICES:
            if service.name == name:
                return service
        raise KeyError(name)

    @cached_property
    def availability(self) -> dict[str, Availability]:
        """Per package: runnable with ``python -m``, and whether it has migrations."""
        return probe_packages(self.python, [service.package for service in SERVICES])

    def runnable(self) -> list[ServiceDefinition]:
        """Enabled services whose package can run."""
        return [service for service in self.enabled if self.availability[service.package].runnable]

    def missing(self) -> list[ServiceDefinition]:
        """Enabled services whose package cannot run yet."""
        return [service for service in self.enabled if not self.availability[service.package].runnable]

    def process(self, service: ServiceDefinition, *, configured: bool = False) -> ManagedProcess:
        """The service's process (building it starts nothing; stop and status find it by pid file).

        ``configured``: with the environment it starts with (reads the stack's addresses and secret).
        """
        return ManagedProcess(
            name=service.name,
            argv=[self.python, "-m", service.package],
            run_dir=self.settings.run_dir,
            env=self.service_env(service) if configured else {},
            cwd=REPO_ROOT,
            stop_timeout_s=self.settings.services.stop_timeout_s,
        )

    def _need_env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for component in self.needs:
            values.update(component.env())
        return values

    def database_url(self) -> str:
        """The DSN the services use: the superuser's, on the configured database if one is set."""
        dsn = self._need_env().get("DATABASE_URL")
        if not dsn:
            raise ServicesError("no PostgreSQL among the components the services need (nothing exports DATABASE_URL)")
        database = self.settings.services.database
        return dsn if database is None else f"{dsn.rsplit('/', 1)[0]}/{database}"

    def bootstrap_servers(self) -> str:
        """Kafka's bootstrap servers."""
        servers = self._need_env().get("KAFKA_BOOTSTRAP_SERVERS")
        if not servers:
            raise ServicesError("no Kafka among the components the services need (nothing exports it)")
        return servers

    def service_env(self, service: ServiceDefinition) -> dict[str, str]:
        """The environment a service runs with (on top of the caller's), its ``extra_env`` last."""
        services = self.settings.services
        return {
            "DATABASE__URL": self.database_url(),
            "KAFKA__BOOTSTRAP_SERVERS": self.bootstrap_servers(),
            "KAFKA__TOPIC_PREFIX": services.topic_prefix,
            "HTTP__HOST": HOST,
            "HTTP__PORT": str(self.port(service)),
            "UPSTREAMS__ORCHESTRATOR_URL": self.url(self.by_name("checkout-orchestrator")),
            "UPSTREAMS__CART_URL": self.url(self.by_name("cart")),
            "LOG_LEVEL": services.log_level,
            "PYTHONUNBUFFERED": "1",
            **services.extra_env.get(service.name, {}),
        }

    # --- Component ----------------------------------------------------------------------------

    def installed(self) -> bool:
        """The services come with the workspace (`uv sync`); there is nothing to install."""
        return True

    def install(self) -> None:
        """Nothing: the packages are workspace members, installed by `make bootstrap`."""

    def ready(self, service: ServiceDefinition) -> bool:
        """Whether the service's ``/readyz`` answers 200."""
        return http_ok(f"{self.url(service)}/readyz")

    def healthy(self) -> bool:
        """Every enabled service that can run is running and ready (and at least one can)."""
        runnable = self.runnable()
        return bool(runnable) and all(self.process(s).running() and self.ready(s) for s in runnable)

    def start(self) -> None:
        """Needs up, topics, migrations, then every runnable service, each waited on until ready."""
        self._start_needs()
        runnable = self.runnable()
        for service in self.missing():
            info(f"{service.name}: package {service.package} cannot run yet (no {service.package}.__main__); skipped")
        if not runnable:
            raise ServicesError(
                "none of the enabled services can run: "
                f"{', '.join(s.name for s in self.enabled) or '(none enabled)'}; run `make bootstrap`"
            )
        self._refuse_taken_ports(runnable)
        self._ensure_database()
        self._ensure_topics()
        self._migrate([s for s in runnable if self.availability[s.package].migrations])
        self._start_processes(runnable)

    def start_again(self, names: Sequence[str]) -> None:
        """Start these services' processes if they are down and wait until ready — nothing else.

        What a kubelet does for a crashed container: no topics, no migrations (they ran at
        :meth:`start`). The fault-injection suite restarts what it killed with it.
        """
        down = [self.by_name(name) for name in names if not self.process(self.by_name(name)).running()]
        if down:
            self._start_processes(down)

    def stop(self) -> None:
        """SIGTERM each enabled service (all six by default), SIGKILL what outlives its grace."""
        enabled = self.enabled
        with ThreadPoolExecutor(max_workers=len(enabled) or 1) as pool:
            list(pool.map(lambda service: self.process(service).stop(), reversed(enabled)))

    def status(self) -> Status:
        """One summary row."""
        rows = self.statuses()
        return Status(
            self.name,
            self.version,
            ", ".join(row.address for row in rows),
            any(row.running for row in rows),
            bool(rows) and all(row.healthy for row in rows if row.detail != "missing"),
        )

    def statuses(self) -> list[Status]:
        """One row per enabled service; a package that cannot run yet is shown as missing."""
        rows = []
        for service in self.enabled:
            available = self.availability[service.package].runnable
            running = self.process(service).running()
            rows.append(
                Status(
                    service.name,
                    f"{service.package}" if available else f"{service.package} (missing)",
                    self.url(service),
                    running,
                    running and self.ready(service),
                    "" if available else "missing",
                )
            )
        return rows

    def env(self) -> dict[str, str]:
        """``BFF_URL`` and each service's URL."""
        return {service.url_variable: self.url(service) for service in SERVICES}

    # --- steps of start -----------------------------------------------------------------------

    def _start_needs(self) -> None:
        for component in self.needs:
            if component.healthy():
                continue
            if not component.installed():
                with step(f"install {component.name} {component.version}"):
                    component.install()
            with step(f"start {component.name}"):
                component.start()

    def _refuse_taken_ports(self, services: Sequence[ServiceDefinition]) -> None:
        taken = [s for s in services if not self.process(s).running() and port_open(self.port(s))]
        if taken:
            raise ServicesError(
                "ports already taken by other processes: "
                + ", ".join(f"{s.name} {HOST}:{self.port(s)}" for s in taken)
                + "; stop them or choose other ports (CHECKOUT_STACK_SERVICES__<NAME>_PORT)"
            )

    def _ensure_database(self) -> None:
        database = self.settings.services.database
        if database is None:
            return
        superuser = self._need_env()["DATABASE_URL"]

        async def create() -> bool:
            connection = await asyncpg.connect(superuser, timeout=10)
            try:
                if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                    return False
                await connection.execute(f'CREATE DATABASE "{database}"')
                return True
            finally:
                await connection.close()

        if _run(create()):
            info(f"created database {database}")

    def purge(self) -> None:
        """Undo what ``start`` provisioned for this instance: its five topics and its own database.

        The services must be stopped. The shared default database is never dropped: only one
        configured in ``services.database`` (an isolated instance's) is.
        """
        database = self.settings.services.database
        prefix = self.settings.services.topic_prefix

        async def drop() -> None:
            if database is not None:
                connection = await asyncpg.connect(self._need_env()["DATABASE_URL"], timeout=10)
                try:
                    await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                finally:
                    await connection.close()
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers(), client_id="checkout-stack-services")
            await admin.start()
            try:
                existing = set(await admin.list_topics())
                topics = [name for name in (f"{prefix}.{topic}" for topic in TOPIC_NAMES) if name in existing]
                if topics:
                    await admin.delete_topics(topics)
            finally:
                await admin.close()

        _run(asyncio.wait_for(drop(), ADMIN_TIMEOUT_S))

    def _ensure_topics(self) -> None:
        prefix = self.settings.services.topic_prefix
        names = [f"{prefix}.{topic}" for topic in TOPIC_NAMES]
        partitions = self.settings.services.topic_partitions
        with step(f"topics {prefix}.* ({partitions} partitions)"):
            created = _run(asyncio.wait_for(self._create_topics(names, partitions), ADMIN_TIMEOUT_S))
            info(f"created {', '.join(created)}" if created else "all five exist")

    async def _create_topics(self, names: list[str], partitions: int) -> list[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers(), client_id="checkout-stack-services")
        await admin.start()
        try:
            missing = [name for name in names if name not in set(await admin.list_topics())]
            if missing:
                await admin.create_topics(
                    [NewTopic(name=name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
            while True:  # until the broker serves every topic's metadata
                described = await admin.describe_topics(names)
                if all(topic["error_code"] == 0 and topic["partitions"] for topic in described):
                    return missing
                await asyncio.sleep(0.1)
        finally:
            await admin.close()

    def _migrate_one(self, service: ServiceDefinition) -> str:
        log = self.settings.logs_dir / f"{service.name}-migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        argv = [self.python, "-m", service.package, "migrate"]
        env = {**os.environ, **self.service_env(service), OWNER_VARIABLE: str(self.settings.run_dir)}
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            result = subprocess.run(
                argv,
                env=env,
                cwd=REPO_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=MIGRATE_TIMEOUT_S,
                check=False,
            )
        if result.returncode != 0:
            raise ServicesError(f"{service.name}: migrate failed (exit {result.returncode}); {log}:\n{tail(log, 15)}")
        lines = tail(log, 1)
        return lines.strip()

    def _migrate(self, services: Sequence[ServiceDefinition]) -> None:
        if not services:
            return
        with step(f"migrate {', '.join(s.name for s in services)}"), ThreadPoolExecutor(len(services)) as pool:
            outcomes = {s.name: pool.submit(self._migrate_one, s) for s in services}
            failures = []
            for name, outcome in outcomes.items():
                try:
                    info(f"{name}: {outcome.result()}")
                except ServicesError as error:
                    failures.append(str(error))
            if failures:
                raise ServicesError("\n".join(failures))

    def _start_processes(self, services: Sequence[ServiceDefinition]) -> None:
        def start(service: ServiceDefinition) -> None:
            process = self.process(service, configured=True)
            process.start()
            try:
                wait_until(
                    lambda: self.ready(service),
                    what=f"{service.name} /readyz at {self.url(service)}",
                    timeout_s=self.settings.start_timeout_s,
                    process=process,
                )
            except ProcessError:
                process.stop()
                raise

        with step(f"start {', '.join(s.name for s in services)}"), ThreadPoolExecutor(len(services)) as pool:
            outcomes = {s.name: pool.submit(start, s) for s in services}
            failures = []
            for name, outcome in outcomes.items():
                try:
                    outcome.result()
                    info(f"{name}: ready at {self.url(self.by_name(name))}")
                except ProcessError as error:
                    failures.append(f"{name}: {error}")
            if failures:
                raise ServicesError(
                    "some services did not become ready (the others keep running; "
                    "`checkout-stack services down` stops them):\n" + "\n".join(failures)
                )
