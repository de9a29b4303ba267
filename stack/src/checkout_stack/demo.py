"""`make demo`: the two-command install told step by step, one real checkout and its trace; the platform stays up.

What a platform team does on a cluster (``helm upgrade --install`` of the operator chart, one ``kubectl
apply`` of a CheckoutPlatform), done on the local stack with the real helm and kubectl
(:mod:`checkout_stack.platform_install`), one progress line per step with its elapsed time:

1. the stack up and a round trip through every part of it (``make up``, ``checkout-stack smoke``);
2. the node agent (:mod:`checkout_stack.kubelet`) for the operator's namespace and the platform's — before
   the chart, because the operator that reconciles is a Pod too and nothing becomes Ready without it;
3. ``helm upgrade --install checkout-operator charts/checkout-operator -n checkout-system --create-namespace``
   watching ``checkout``, then the operator's process ready;
4. the database and the admin Secret the spec names, ``kubectl apply`` of the CheckoutPlatform built from
   ``examples/checkoutplatform.yaml`` with the stack's actual addresses (traces to the stack's Jaeger,
   sampling ratio 1.0, so the demo's checkout is always traced), ``Ready``, then every Deployment's processes;
5. one checkout through the gateway's Service, its saga timeline and its trace waterfall;
6. where to look next.

Every step is idempotent (``upgrade --install``, ``apply``, a running agent is reused), so another ``make
demo`` takes seconds and runs another checkout. HTTP only: the stack imports no service package. ``make
down`` stops the node agent (the operator and the services stop gracefully), then the stack.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shlex
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import asyncpg
import httpx
from rich.markup import escape

from checkout_stack.components.platform_services import SERVICES as LAUNCHER_SERVICES
from checkout_stack.console import console, step
from checkout_stack.console import info as console_info
from checkout_stack.platform_install import Cluster, InstallError, NodeAgentProcess, platform_manifest
from checkout_stack.settings import REPO_ROOT
from checkout_stack.smoke import run_smoke
from checkout_stack.trace_view import JaegerTraces, JaegerUnavailableError, TraceViewError, show_trace

if TYPE_CHECKING:
    from checkout_stack.stack import Stack


@dataclass(frozen=True)
class DemoSku:
    """A SKU the demo stocks and buys."""

    sku: str
    units: int
    """Available units it is stocked up to when fewer are left than the demo buys."""
    unit_price_minor: int
    quantity: int
    """How many the demo checkout buys."""


CURRENCY: Final = "EUR"
CUSTOMER: Final = "cust_demo"
PAYMENT_TOKEN: Final = "tok_visa"  # noqa: S105 - the simulated provider's test token, not a secret
DEMO_SKUS: Final = (
    DemoSku("DEMO-MUG", units=100, unit_price_minor=1_250, quantity=2),
    DemoSku("DEMO-TEE", units=100, unit_price_minor=2_400, quantity=1),
)
TERMINAL: Final = ("COMPLETED", "FAILED")
WAIT_S: Final = 120.0
"""Upper bound of the wait for the saga to end (its own deadlines end it well before)."""
POLL_S: Final = 0.1
CHECKOUT_SERVICES: Final = ("gateway-bff", "inventory", "order", "payment")
"""The services the demo calls over HTTP (through their Services)."""
TRACED_SERVICES: Final = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order")
"""The services a completed checkout's trace has spans of."""
EXPORT_SETTLE_S: Final = 5.5
"""The services' span export period (the OpenTelemetry batch processor's 5 s), and a little."""
TRACE_WAIT_S: Final = 20.0
"""Upper bound of the wait for the checkout's whole trace."""
OPERATOR_TIMEOUT_S: Final = 120.0
READY_TIMEOUT_S: Final = 240.0
PROCESSES_TIMEOUT_S: Final = 240.0
"""Upper bounds of the waits for the operator's process, Ready, and every Deployment's processes
(about 10 s, 10 s and 50 s on a 2-core machine: each service's Pods migrate, then start)."""


def info(message: str) -> None:
    """:func:`checkout_stack.console.info` of text as it is: kubectl's and the operator's words may hold ``[...]``."""
    console_info(escape(message))


class DemoError(RuntimeError):
    """The demo could not run; the message says what failed and what to do."""


@dataclass(frozen=True)
class DemoPlatform:
    """The names of what `make demo` installs (the integration test picks unique ones)."""

    name: str = "checkout"
    """The CheckoutPlatform; its Deployments and Services are ``<name>-<service>``."""
    namespace: str = "checkout"
    """Where the CheckoutPlatform and its workloads live (the chart's Role for the operator goes there)."""
    operator_namespace: str = "checkout-system"
    """Where the operator chart is installed."""
    release: str = "checkout-operator"
    """The helm release (its ClusterRole is named after it: one per cluster)."""
    database: str = "checkout"
    """The PostgreSQL database the spec names, created if missing."""
    topic_prefix: str = "checkout-demo"
    """Not the example's ``checkout``: `make services` creates its topics under that prefix (``dlq`` with 3
    partitions where the example asks for 1 — the operator refuses to shrink, so the platform would never be
    Ready) and names its consumer groups after it (``<prefix>.<service>``: two copies of a service in one
    group would split the partitions between two databases)."""
    admin_secret: str = "checkout-postgres-admin"  # noqa: S105 - the Secret's name
    agent_name: str = "kubelet"
    """The node agent's process name: pid file ``<run dir>/pids/<name>.pid``, log ``<run dir>/logs/<name>.log``."""
    state_dir: Path | None = None
    """The agent's state file, Pod logs and dirs; None: ``<run dir>/<agent_name>``."""
    prefer_service_ports: bool = True
    """Proxy each Service on its own port number when free (the gateway on 127.0.0.1:8100)."""

    def agent(self, run_dir: Path) -> NodeAgentProcess:
        """The node agent serving both namespaces."""
        return NodeAgentProcess(
            name=self.agent_name,
            namespaces=[self.operator_namespace, self.namespace],
            run_dir=run_dir,
            state_dir=self.state_dir or run_dir / self.agent_name,
            prefer_service_ports=self.prefer_service_ports,
        )

    def workload(self, service: str) -> str:
        """``<name>-<service>``: the Deployment and the Service of a service."""
        return f"{self.name}-{service}"


DEMO: Final = DemoPlatform()
"""What `make demo` installs."""


# --- the checkout --------------------------------------------------------------------------------


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor / 100:.2f} {currency}"


def _call(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise DemoError(f"{method} {url} failed: {error!r}") from error


def _expect(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise DemoError(
            f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text[:500]}"
        )
    return response.json()


def stock_skus(http: httpx.Client, inventory_url: str) -> None:
    """Make sure each demo SKU exists with enough units (tops it up with ``PUT /inventory/{sku}``)."""
    for item in DEMO_SKUS:
        url = f"{inventory_url}/inventory/{item.sku}"
        current = _call(http, "GET", url)
        if current.status_code == 200:
            stock = current.json()
            if stock["available"] >= item.quantity:
                info(
                    f"{item.sku}: {stock['available']} available, {stock['reserved']} held, "
                    f"{_money(stock['unit_price_minor'], stock['currency'])} each (already stocked)"
                )
                continue
        elif current.status_code != 404:
            _expect(current, 200)
        body = {"available": item.units, "unit_price_minor": item.unit_price_minor, "currency": CURRENCY}
        stock = _expect(_call(http, "PUT", url, json=body), 200)
        info(f"{item.sku}: stocked {stock['available']} units at {_money(stock['unit_price_minor'], CURRENCY)} each")


def start_checkout(http: httpx.Client, bff_url: str) -> str:
    """``POST /api/checkout/initiate`` (with an Idempotency-Key); return the saga id."""
    body = {
        "customer_id": CUSTOMER,
        "items": [{"sku": item.sku, "quantity": item.quantity} for item in DEMO_SKUS],
        "currency": CURRENCY,
        "payment_token": PAYMENT_TOKEN,
    }
    key = str(uuid.uuid4())
    accepted = _expect(
        _call(http, "POST", f"{bff_url}/api/checkout/initiate", json=body, headers={"Idempotency-Key": key}), 202
    )
    lines = ", ".join(f"{item.quantity} x {item.sku}" for item in DEMO_SKUS)
    info(f"POST {bff_url}/api/checkout/initiate ({lines}, {PAYMENT_TOKEN}) → 202, saga {accepted['saga_id']}")
    saga_id: str = accepted["saga_id"]
    return saga_id


def follow(http: httpx.Client, bff_url: str, saga_id: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """Poll ``GET /api/checkout/{saga_id}`` until the saga is COMPLETED or FAILED."""
    deadline = time.monotonic() + timeout_s
    url = f"{bff_url}/api/checkout/{saga_id}"
    while True:
        status: dict[str, Any] = _expect(_call(http, "GET", url), 200)
        if status["status"] in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise DemoError(f"saga {saga_id} still {status['state']} after {timeout_s:.0f}s")
        time.sleep(POLL_S)


def timeline_lines(steps: list[Mapping[str, Any]]) -> list[str]:
    """One line per timeline entry: wall-clock time, offset from the first entry, state, event, detail."""
    if not steps:
        return ["(no timeline entries)"]
    times = [dt.datetime.fromisoformat(str(s["at"]).replace("Z", "+00:00")) for s in steps]
    width = max(len(str(s["state"])) for s in steps)
    lines = []
    for at, entry in zip(times, steps, strict=True):
        offset = (at - times[0]).total_seconds()
        detail = f"  ({entry['detail']})" if entry.get("detail") else ""
        lines.append(
            f"{at.strftime('%H:%M:%S.%f')[:-3]}  +{offset:6.3f}s  {entry['state']:<{width}}  "
            f"{entry.get('event') or ''}{detail}"
        )
    return lines


def show_effects(http: httpx.Client, urls: Mapping[str, str], saga_id: str) -> None:
    """What the order and payment services hold for the saga."""
    for order in _expect(_call(http, "GET", f"{urls['order']}/orders", params={"saga_id": saga_id}), 200):
        lines = ", ".join(f"{line['quantity']} x {line['sku']}" for line in order["lines"])
        total = order["total"]
        info(f"order {order['id']}: {lines}, total {_money(total['amount_minor'], total['currency'])}")
    for payment in _expect(_call(http, "GET", f"{urls['payment']}/payments", params={"saga_id": saga_id}), 200):
        info(
            f"payment {payment['id']}: {payment['status']}, net "
            f"{_money(payment['net_amount_minor'], payment['currency'] or CURRENCY)}"
        )


def run_demo_checkout(urls: Mapping[str, str], http: httpx.Client | None = None, *, logs: str) -> str:
    """Stock, check out through the gateway, follow, print; return the saga id.

    ``urls``: base URL of each of :data:`CHECKOUT_SERVICES`; ``logs``: where a failure's reader looks.
    Raises :class:`DemoError` if a call fails or the checkout does not complete.
    """
    client = http or httpx.Client(timeout=10)
    try:
        with step("stock the demo SKUs through the inventory API"):
            stock_skus(client, urls["inventory"])
        with step(f"checkout through the gateway at {urls['gateway-bff']}"):
            saga_id = start_checkout(client, urls["gateway-bff"])
            began = time.monotonic()
            final = follow(client, urls["gateway-bff"], saga_id)
            info(f"{final['status']} in {time.monotonic() - began:.2f}s (as seen by the client)")
        with step(f"saga {saga_id}"):
            for line in timeline_lines(final["steps"]):
                info(line)
            if final["status"] != "COMPLETED":
                raise DemoError(
                    f"the demo checkout FAILED: {final.get('failure_code')}: {final.get('failure_reason')}; "
                    f"logs: {logs}"
                )
            info(f"order id: {final['order_id']}")
            show_effects(client, urls, saga_id)
    finally:
        if http is None:
            client.close()
    return saga_id


# --- the trace -----------------------------------------------------------------------------------


def wait_for_trace(
    query_url: str,
    saga_id: str,
    *,
    settle_s: float = EXPORT_SETTLE_S,
    timeout_s: float = TRACE_WAIT_S,
    poll_s: float = 1.0,
    http: httpx.Client | None = None,
) -> str:
    """The id of the saga's trace, once it is whole: every service's spans, one tree under the gateway's request.

    Call it when the saga has ended. Each service exports its spans in 5 s batches on its own schedule, so
    a trace read at once lacks some — whole subtrees (a consumer's spans whose producer's batch has not
    come: extra roots) or leaves (the last step's). So it reads nothing for ``settle_s`` (one batch period:
    by then every span that ended before the call was sent), then polls until the trace is one tree with
    spans of each of :data:`TRACED_SERVICES`. After ``timeout_s`` it returns what came (the waterfall
    shows the gaps).
    """
    jaeger = JaegerTraces(query_url, http=http)
    deadline = time.monotonic() + timeout_s
    time.sleep(settle_s)
    found: str | None = None
    try:
        while True:
            try:
                trace = jaeger.by_saga_id(saga_id)[0]
            except JaegerUnavailableError:
                raise
            except TraceViewError:
                trace = None  # not exported yet
            if trace is not None:
                found = trace.trace_id
                if len(trace.roots()) == 1 and {s.service for s in trace.spans} >= set(TRACED_SERVICES):
                    return trace.trace_id
            if time.monotonic() > deadline:
                if found is not None:
                    return found
                raise DemoError(
                    f"no trace of saga {saga_id} reached Jaeger at {query_url} in {timeout_s:.0f} s; the spec "
                    "sends traces there (samplingRatio 1.0): see the services' logs for export errors"
                )
            time.sleep(poll_s)
    finally:
        if http is None:
            jaeger.close()


# --- the install ---------------------------------------------------------------------------------


@contextmanager
def _stage(what: str, then: str) -> Iterator[None]:
    """``step(what)``; a failure exits saying what failed, why (the tool's own words), and what to do next."""
    try:
        with step(what):
            yield
    except (InstallError, DemoError, TraceViewError, asyncpg.PostgresError, OSError, httpx.HTTPError) as error:
        raise SystemExit(f"make demo: {what}: {error}\n  next: {then}") from error


def _show(cluster: Cluster, *args: str) -> None:
    """A kubectl command and its output, verbatim (never wrapped)."""
    console.print(f"  $ kubectl {shlex.join(args)}", highlight=False, markup=False)
    console.out(cluster.run(*args).stdout.rstrip(), highlight=False)


def cluster_of(stack: Stack) -> Cluster:
    """The stack's kubectl and helm on its kubeconfig."""
    kubernetes = stack.kubernetes
    return Cluster(kubernetes.tool("kubectl"), kubernetes.tool("helm"), kubernetes.kubeconfig)


def _make_way(stack: Stack) -> None:
    """Stop `make services`' processes if they run.

    `make services` (the stack's own launcher, a developer verb) and the platform run the same six
    services from the same workspace: the launcher's on 127.0.0.1:8100-8106, the platform's behind the
    Service proxies the node agent puts on each Service's own port when it is free — 8100-8106 too.
    With both up the platform's gateway would land on some free port while ``BFF_URL`` and every curl
    copied from the README still reach the launcher's copy. So the demo stops that copy, saying so (its
    topics, consumer groups and database differ from the platform's: nothing of it is deleted), and
    `checkout-stack services up` refuses while the platform's node agent runs.
    """
    running = [s.name for s in LAUNCHER_SERVICES if stack.services.process(s).running()]
    if not running:
        return
    with _stage(
        f"stop `make services`' processes ({', '.join(running)}): they hold the ports the platform's Services take",
        then="`uv run checkout-stack services down`, then `make demo` again",
    ):
        stack.services.stop()
        info("`make services` starts them again once the platform is stopped (`uv run checkout-stack demo down`)")


def start_agent(stack: Stack, platform: DemoPlatform) -> NodeAgentProcess:
    """The node agent for both namespaces: reused if it runs and serves them, (re)started otherwise."""
    agent = platform.agent(stack.settings.run_dir)
    namespaces = " and ".join(agent.namespaces)
    with _stage(
        f"node agent `{agent.name}`: runs the Pods of {namespaces} as local processes",
        then=f"its log: {agent.process.log_path}",
    ):
        pid = agent.process.pid()
        if pid is not None and sorted(agent.state().get("namespaces") or []) != sorted(agent.namespaces):
            info(f"pid {pid} serves {', '.join(agent.state().get('namespaces') or [])}: restarting it for {namespaces}")
            agent.stop()
            pid = None
        if pid is not None:
            info(f"already running (pid {pid}): reused")
        else:
            pid = agent.start()
            info(f"pid {pid}, log {_shown(agent.process.log_path)}")
        info(f"Pods' logs and working dirs: {_shown(agent.state_dir)}/pods/")
    return agent


async def ensure_database(superuser_dsn: str, database: str) -> bool:
    """Create ``database`` unless it exists; whether it was created."""
    connection = await asyncpg.connect(superuser_dsn, timeout=10)
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            return False
        await connection.execute(f'CREATE DATABASE "{database}"')
        return True
    finally:
        await connection.close()


def demo_manifest(platform: DemoPlatform, *, bootstrap_servers: str, dsn: str, otlp_endpoint: str) -> dict[str, Any]:
    """``examples/checkoutplatform.yaml`` on the stack's actual addresses, traces at sampling ratio 1.0.

    The stack's ports are settings (the example hard-codes the defaults); the services are the example's.
    """
    parts = urlsplit(dsn)
    return platform_manifest(
        platform.name,
        bootstrap_servers=bootstrap_servers.split(","),
        topic_prefix=platform.topic_prefix,
        postgres_host=parts.hostname or "127.0.0.1",
        postgres_port=parts.port or 5432,
        database=platform.database,
        admin_secret=platform.admin_secret,
        otlp_endpoint=otlp_endpoint,
        sampling_ratio=1.0,
        deletion_policy="Retain",
    )


def _refuse_same_release_elsewhere(cluster: Cluster, platform: DemoPlatform) -> None:
    """Fail early, and say why, if a release of the same name lives in another namespace.

    The chart names its cluster-wide objects (ClusterRole, ClusterRoleBinding) after the release, so helm
    refuses a second ``checkout-operator`` in another namespace with an "invalid ownership metadata" error.
    """
    releases = json.loads(cluster.helm_run("list", "--all-namespaces", "--all", "--output", "json") or "[]")
    others = [
        r["namespace"]
        for r in releases
        if r["name"] == platform.release and r["namespace"] != platform.operator_namespace
    ]
    if others:
        raise InstallError(
            f"helm release {platform.release} already exists in namespace {', '.join(others)}, and the chart names its "
            f"ClusterRole after the release: one {platform.release} per cluster. If it is an e2e run's "
            f"(e2e-*-system), wait for the run to end (it uninstalls); else `helm -n {others[0]} uninstall "
            f"{platform.release}`"
        )


def _helm_summary(output: str) -> str:
    """``release <name> in <namespace>: revision <n>, <status>`` from helm's report."""
    fields = dict(
        line.split(": ", 1) for line in output.splitlines() if ": " in line and line.split(": ", 1)[0].isupper()
    )
    get = fields.get
    return (
        f"release {get('NAME', '?')} in {get('NAMESPACE', '?')}: revision {get('REVISION', '?')}, {get('STATUS', '?')}"
    )


def _progress(began: float) -> Callable[[str], None]:
    """An ``on_change`` printing each new state with the seconds since ``began``."""

    def say(what: str) -> None:
        info(f"+{time.monotonic() - began:5.1f}s  {what}")

    return say


def install_platform(stack: Stack, platform: DemoPlatform = DEMO) -> NodeAgentProcess:
    """Steps 2 to 4 of the module docstring; return the running node agent."""
    cluster = cluster_of(stack)
    ns, system = platform.namespace, platform.operator_namespace
    try:
        _refuse_same_release_elsewhere(cluster, platform)
    except InstallError as error:
        raise SystemExit(f"make demo: cannot install the operator: {error}") from error
    if platform.prefer_service_ports:
        _make_way(stack)
    agent = start_agent(stack, platform)
    operator_pods = f"kubectl -n {system} describe pods; the operator's log: {agent.state_dir}/pods/{system}_*/"
    with _stage(
        f"helm upgrade --install {platform.release} charts/checkout-operator -n {system} --create-namespace",
        then=f"`helm -n {system} status {platform.release}`; {operator_pods}",
    ):
        cluster.ensure_namespace(ns)  # the chart's Role for the operator goes there
        info(_helm_summary(cluster.install_operator(platform.release, system, {"watchNamespaces": [ns]})))
        info(f"watchNamespaces: [{ns}] (a Role and a KopfPeering there, a small ClusterRole for CRD reads)")
    with _stage("the operator's process ready (the node agent runs the chart's Deployment)", then=operator_pods):
        agent.wait_workloads(cluster, system, timeout_s=OPERATOR_TIMEOUT_S, on_change=_progress(time.monotonic()))

    dsn = urlsplit(stack.postgres.env()["DATABASE_URL"])
    kafka = stack.kafka.env()["KAFKA_BOOTSTRAP_SERVERS"]
    otlp = stack.jaeger.env()["OTEL_EXPORTER_OTLP_ENDPOINT"]
    with _stage(
        f"database {platform.database} and Secret {ns}/{platform.admin_secret}",
        then=f"is PostgreSQL up? `make status`; its log: {stack.settings.logs_dir}/postgres.log",
    ):
        created = asyncio.run(ensure_database(dsn.geturl(), platform.database))
        info(f"database {platform.database} on {dsn.hostname}:{dsn.port}: {'created' if created else 'exists'}")
        cluster.admin_secret(ns, platform.admin_secret, dsn.username or "postgres", dsn.password or "")
        info(f"Secret {platform.admin_secret}: the superuser's credentials, read by the operator only")
    manifest = demo_manifest(platform, bootstrap_servers=kafka, dsn=dsn.geturl(), otlp_endpoint=otlp)
    with _stage(
        f"kubectl apply CheckoutPlatform {ns}/{platform.name} (examples/checkoutplatform.yaml, the stack's addresses)",
        then="`kubectl explain checkoutplatform.spec` says what each field takes",
    ):
        info(cluster.apply(manifest, ns))
        services = ", ".join(
            f"{name}" + (" (disabled)" if spec.get("enabled") is False else f" x{spec.get('replicas', 1)}")
            for name, spec in manifest["spec"]["services"].items()
        )
        info(
            f"Kafka {kafka} (topics {platform.topic_prefix}.*), "
            f"PostgreSQL {dsn.hostname}:{dsn.port}/{platform.database}"
        )
        info(f"traces to {otlp} (sampling 1.0); services: {services}")
    describe = f"kubectl -n {ns} describe checkoutplatform {platform.name}"
    with _stage(f"wait for {ns}/{platform.name} Ready", then=f"`{describe}` (conditions, Events); {operator_pods}"):
        cluster.wait_ready(ns, platform.name, timeout_s=READY_TIMEOUT_S, on_change=_progress(time.monotonic()))
    _show(cluster, "-n", ns, "get", "checkoutplatforms")
    with _stage(
        "wait for every Deployment's processes (the node agent runs them from the Pods)",
        then=f"`kubectl -n {ns} describe pods` (Events); Pod logs: {agent.state_dir}/pods/{ns}_*/",
    ):
        agent.wait_workloads(cluster, ns, timeout_s=PROCESSES_TIMEOUT_S, on_change=_progress(time.monotonic()))
    _show(cluster, "-n", ns, "get", "pods", "-o", "wide")
    return agent


def service_urls(
    cluster: Cluster, platform: DemoPlatform, agent: NodeAgentProcess, *, timeout_s: float = 30
) -> dict[str, str]:
    """Base URL of each of :data:`CHECKOUT_SERVICES` through the node agent's proxy of its Service."""
    urls = {}
    for service in CHECKOUT_SERVICES:
        name = platform.workload(service)
        obj = cluster.get("service", name, platform.namespace)
        if obj is None:
            raise DemoError(f"no Service {platform.namespace}/{name} (is {service} disabled in the CheckoutPlatform?)")
        ports = obj["spec"]["ports"]
        port = int(next((p for p in ports if p.get("name") == "http"), ports[0])["port"])
        deadline = time.monotonic() + timeout_s
        while (address := agent.service_address(platform.namespace, name, port)) is None:
            if time.monotonic() > deadline:
                raise DemoError(f"the node agent has no proxy for Service {platform.namespace}/{name}:{port}")
            time.sleep(0.2)
        urls[service] = f"http://{address}"
    return urls


def platform_env(stack: Stack, platform: DemoPlatform = DEMO) -> dict[str, str]:
    """What `make env` adds while the platform's node agent runs: each Service's URL, the namespaces.

    Read from the agent's state file (no API call): ``BFF_URL`` and the other ``<SERVICE>_URL`` the
    launcher also exports, for the Services the agent proxies.
    """
    agent = platform.agent(stack.settings.run_dir)
    if not agent.process.running():
        return {}
    values = {"CHECKOUT_NAMESPACE": platform.namespace, "CHECKOUT_OPERATOR_NAMESPACE": platform.operator_namespace}
    proxies: Mapping[str, Mapping[str, Any]] = agent.state().get("services") or {}
    for service in LAUNCHER_SERVICES:
        prefix = f"{platform.namespace}/{platform.workload(service.name)}:"
        for key, entry in sorted(proxies.items()):
            if key.startswith(prefix):
                values[service.url_variable] = f"http://{entry['address']}"
                break
    return values


def platform_running(stack: Stack, platform: DemoPlatform = DEMO) -> int | None:
    """The pid of the platform's node agent, or None."""
    return platform.agent(stack.settings.run_dir).process.pid()


def stop_platform(stack: Stack, platform: DemoPlatform = DEMO) -> bool:
    """Stop the node agent (it stops the operator and the services gracefully); whether it ran."""
    agent = platform.agent(stack.settings.run_dir)
    with step(f"stop node agent `{agent.name}` (SIGTERM: the operator and the services stop first)"):
        ran = agent.stop()
        info("it was running" if ran else "it was not running")
    if ran:
        info("the CheckoutPlatform, the operator release and their data stay; `make demo` runs them again")
    return ran


# --- the whole story -----------------------------------------------------------------------------


def _shown(path: Path) -> str:
    """A path relative to the repository when it is inside it (``.run/kubelet/...``)."""
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def where_to_look(stack: Stack, platform: DemoPlatform, urls: Mapping[str, str], saga_id: str, trace_id: str) -> None:
    """What to run and open next."""
    ns, name = platform.namespace, platform.name
    state_dir = platform.state_dir or stack.settings.run_dir / platform.agent_name
    console.print("[bold]where to look[/bold] (the platform keeps running):")
    for label, what in (
        ("in your shell", 'eval "$(make -s env)"   (kubectl, helm, KUBECONFIG, BFF_URL)'),
        ("the resource", f"kubectl -n {ns} describe checkoutplatform {name}"),
        ("its Pods", f"kubectl -n {ns} get pods   (the operator's: kubectl -n {platform.operator_namespace} get pods)"),
        ("the gateway (BFF)", f"curl {urls['gateway-bff']}/api/checkout/{saga_id}"),
        ("this trace in Jaeger", f"{stack.jaeger.query_url}/trace/{trace_id}"),
        ("Prometheus", f"{stack.prometheus.url}/targets   (every Pod's /metrics)"),
        ("the waterfall again", "make trace"),
        ("Pod logs", f"{_shown(state_dir)}/pods/<namespace>_<pod>_<uid>/<container>.log"),
        ("stop it all", "make down   (the node agent first: operator and services stop gracefully)"),
    ):
        info(f"{label + ':':<22}{what}")


def run_demo(stack: Stack, platform: DemoPlatform = DEMO) -> None:
    """`make demo` (after `make setup`): the stack, the install, a checkout, its trace, where to look."""
    began = time.monotonic()
    stack.up()
    run_smoke(stack)
    agent = install_platform(stack, platform)
    cluster = cluster_of(stack)
    logs = f"{agent.state_dir}/pods/{platform.namespace}_*/"
    with _stage("find the Services' local addresses", then=f"the node agent's log: {agent.process.log_path}"):
        urls = service_urls(cluster, platform, agent)
        info(", ".join(f"{service} {url}" for service, url in urls.items()))
    try:
        saga_id = run_demo_checkout(urls, logs=logs)
    except DemoError as error:
        raise SystemExit(f"make demo: the checkout: {error}\n  next: the services' logs in {logs}") from error
    with _stage(f"trace of saga {saga_id}", then=f"`make trace SAGA={saga_id}` once Jaeger has it"):
        trace_id = wait_for_trace(stack.jaeger.query_url, saga_id)
        show_trace(stack.jaeger.query_url, stack.settings.run_dir, console, trace_id=trace_id)
    where_to_look(stack, platform, urls, saga_id, trace_id)
    console.print(f"demo done in {time.monotonic() - began:.1f}s")
