"""The whole platform, a running operator, real traffic, and the stack's Prometheus scraping them all.

One session: the six services as an isolated instance (the saga suite's launcher, which registers them with the
stack's Prometheus as ``job=<service>``, labelled ``platform=<instance>``; every trace sampled and exported to the
stack's Jaeger, so latency histograms carry trace-id exemplars), a CheckoutPlatform reconciled by a real
operator process (registered here as ``job=checkout-operator`` with the same label), and the traffic every panel
and alert needs to have something to show: completed, declined, out-of-stock and timed-out checkouts, 4xx and 5xx
answers, poison messages, a platform that cannot become ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from operator_harness import (
    ADMIN_SECRET,
    CRD,
    Kube,
    OperatorFactory,
    OperatorProcess,
    Postgres,
    is_ready,
    platform_manifest,
    unique,
    wait_for,
)
from saga_platform import (
    Client,
    DirectoryScoped,
    SagaPlatform,
    checkout_body,
    launched,
    publish_raw,
    seed_stock,
)

from checkout_stack.components.prometheus import Prometheus
from checkout_stack.metrics import PrometheusQuery
from checkout_stack.stack import Stack

STOCK = {"OBS-HAPPY": (100, 1_000), "OBS-DECLINE": (20, 2_000), "OBS-TIMEOUT": (20, 500), "OBS-SCARCE": (1, 700)}
SCOPE = DirectoryScoped(Path(__file__).parent)
"""The platform and operator of this directory, stopped after its last test."""
"""SKU → (units, unit price in cents) of this suite."""
OPERATOR_JOB = "checkout-operator"


@dataclass
class Observed:
    """What the tests observe: the instance, its operator, and the label that tells their series apart."""

    platform: SagaPlatform
    operator: OperatorProcess
    platform_namespace: str
    platform_name: str

    @property
    def label(self) -> tuple[str, str]:
        """The target label every series of this session carries (set by the launcher and here)."""
        return ("platform", self.platform.name)

    def metrics_urls(self) -> dict[str, str]:
        """``/metrics`` of every process scraped: the six services and the operator."""
        urls = {s: f"{self.platform.url(s)}/metrics" for s in SERVICES}
        urls[OPERATOR_JOB] = f"http://127.0.0.1:{self.operator.metrics_port}/metrics"
        return urls


SERVICES = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")


def otel_env(otlp_endpoint: str) -> dict[str, str]:
    """Every trace sampled and exported to the stack's Jaeger: the exemplars' trace ids must resolve there."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def drive_checkouts(platform: SagaPlatform, prometheus_query: PrometheusQuery) -> list[dict[str, object]]:
    """One of each ending, twice, a scrape apart, so rates have two points: completed, declined, out of
    stock (a business outcome) and a payment that never answers (deadline exceeded: the platform's fault)."""
    client = Client(platform)
    finals = []
    try:
        for batch in range(2):
            if batch:
                # The first batch's endings must be in a sample before the second batch changes them,
                # or a counter series born during the run shows no increase to rate().
                prometheus_query.wait_for(
                    f'checkout_sagas_failed_total{{platform="{platform.name}", reason="deadline_exceeded"}}',
                    timeout_s=120,
                )
            saga_ids = [
                client.start(checkout_body({"OBS-HAPPY": 1})),
                client.start(checkout_body({"OBS-HAPPY": 2})),
                client.start(checkout_body({"OBS-DECLINE": 1}, card="tok_chargeDeclined")),
                client.start(checkout_body({"OBS-TIMEOUT": 1}, card="tok_timeout")),
                client.start(checkout_body({"OBS-SCARCE": 5})),
            ]
            finals += [client.wait(saga_id, timeout_s=60) for saga_id in saga_ids]
        # 4xx: a checkout nobody started.
        assert client.status(str(uuid.uuid4())).status_code == 404
    finally:
        client.close()
    return finals


def answer_a_5xx(platform: SagaPlatform) -> None:
    """The gateway answers 503 while the cart service is down (it proxies /api/carts); cart is then restarted."""
    platform.kill_service("cart")
    try:
        response = httpx.get(f"{platform.bff_url}/api/carts/{uuid.uuid4()}", timeout=15)
        assert response.status_code == 503, response.text
    finally:
        platform.restart_services()


def poison(platform: SagaPlatform, bootstrap_servers: str, prometheus_query: PrometheusQuery) -> None:
    """Undecodable records on the orchestrator's topic, twice a scrape apart (so the DLQ counter grows)."""
    record = (b"obs-poison", b"\x00 not a checkout event", [])
    selector = f'checkout_dead_letters_total{{platform="{platform.name}"}}'
    asyncio.run(publish_raw(bootstrap_servers, platform.topic("checkout-events"), [record]))
    first = prometheus_query.wait_for(selector, timeout_s=120)
    seen = sum(float(sample["value"][1]) for sample in first)
    asyncio.run(publish_raw(bootstrap_servers, platform.topic("checkout-events"), [record]))
    prometheus_query.wait_for(
        f"sum({selector})", lambda result: bool(result) and float(result[0]["value"][1]) > seen, timeout_s=120
    )


@contextlib.contextmanager
def operator_with_platforms(
    kube: Kube, kubeconfig: Path, helm: Path, pg: Postgres, kafka: str, prometheus: Prometheus, instance: str
) -> Iterator[tuple[OperatorProcess, str, str]]:
    """A real operator watching a fresh namespace with one ready platform and one that cannot get ready."""
    namespace = unique("obs-")
    database = unique("obs_")
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube.run("wait", "--for=condition=Established", "--timeout=60s", "crd/checkoutplatforms.checkout.platform.io")
    kube.run("create", "namespace", namespace)
    pg.query(f'CREATE DATABASE "{database}"')
    factory = OperatorFactory(namespace, kubeconfig, helm)
    try:
        kube.run(
            "-n",
            namespace,
            "create",
            "secret",
            "generic",
            ADMIN_SECRET,
            f"--from-literal=username={pg.user}",
            f"--from-literal=password={pg.password}",
        )
        operator = factory.start()
        prometheus.add_targets(
            OPERATOR_JOB, [f"127.0.0.1:{operator.metrics_port}"], {"platform": instance}, name=f"{instance}.operator"
        )
        ready = platform_manifest("shop", unique("obs"), kafka, pg, database, ADMIN_SECRET)
        broken = platform_manifest("broken", unique("obs"), kafka, pg, database, "no-such-secret")
        for manifest in (ready, broken):
            manifest["spec"]["deletionPolicy"] = "Delete"
            result = kube.apply(manifest, namespace)
            assert result.returncode == 0, result.stderr
        wait_for("platform shop to be Ready", lambda: is_ready(kube.get("checkoutplatform", "shop", namespace)), 180)
        yield operator, namespace, "shop"
    finally:
        prometheus.remove_targets(f"{instance}.operator")
        kube.run("-n", namespace, "delete", "checkoutplatforms", "--all", "--wait=false", check=False)
        with contextlib.suppress(AssertionError):
            wait_for(
                "the platforms to be finalized",
                lambda: (
                    json.loads(kube.run("-n", namespace, "get", "checkoutplatforms", "-o", "json").stdout)["items"]
                    == []
                ),
                timeout=90,
            )
        factory.stop_all()
        out = kube.run("-n", namespace, "get", "checkoutplatforms", "-o", "json", check=False)
        if out.returncode == 0:
            for item in json.loads(out.stdout)["items"]:  # not finalized in time: let it go
                kube.run(
                    "-n",
                    namespace,
                    "patch",
                    "checkoutplatform",
                    item["metadata"]["name"],
                    "--type=merge",
                    "-p",
                    '{"metadata":{"finalizers":[]}}',
                    check=False,
                )
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)
        pg.query(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for row in pg.query("SELECT rolname FROM pg_roles WHERE rolname LIKE $1", f"{database}\\_%"):
            pg.query(f'DROP ROLE IF EXISTS "{row["rolname"]}"')


@pytest.fixture(scope="session")
def observed(
    local_stack: Stack,
    postgres_dsn: str,
    kafka_bootstrap_servers: str,
    kubectl: Path,
    kubeconfig: Path,
    helm: Path,
    prometheus: Prometheus,
    prometheus_query: PrometheusQuery,
    otlp_endpoint: str,
) -> Iterator[Observed]:
    """The running platform and operator, after the traffic, with Prometheus holding their series."""
    try:
        platform = SCOPE.enter(
            launched(local_stack, postgres_dsn, kafka_bootstrap_servers, otel=otel_env(otlp_endpoint))
        )
        seed_stock(platform, STOCK)
        kube = Kube(kubectl, kubeconfig)
        pg = Postgres(postgres_dsn)
        operator, namespace, name = SCOPE.enter(
            operator_with_platforms(kube, kubeconfig, helm, pg, kafka_bootstrap_servers, prometheus, platform.name)
        )
        answer_a_5xx(platform)
        finals = drive_checkouts(platform, prometheus_query)
        assert {str(f["status"]) for f in finals} == {"COMPLETED", "FAILED"}, finals
        poison(platform, kafka_bootstrap_servers, prometheus_query)
    except BaseException:
        SCOPE.close()
        raise
    yield Observed(platform, operator, namespace, name)
    SCOPE.close()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the platform and the operator once this directory's last test has run."""
    SCOPE.after(item, nextitem)
