"""Session fixtures handing tests the real local stack.

The stack is started on first use if it is not running (set ``CHECKOUT_STACK_AUTOSTART=0`` to
fail instead), and left running afterwards so the next run reuses it; ``checkout-stack test``
(what ``make test`` calls) stops whatever it started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkout_stack.components.prometheus import Prometheus
from checkout_stack.metrics import PrometheusQuery
from checkout_stack.stack import Stack
from checkout_stack.traces import TraceQuery


def _require(stack: Stack, *names: str) -> Stack:
    """Make sure the named components are healthy, starting them unless autostart is off."""
    unhealthy = [c.name for c in stack.select(names) if not c.healthy()]
    if unhealthy:
        if os.environ.get("CHECKOUT_STACK_AUTOSTART", "1") == "0":
            pytest.fail(f"the local stack is not healthy ({', '.join(unhealthy)}): run `make up`")
        stack.up(unhealthy)
    return stack


@pytest.fixture(scope="session")
def local_stack() -> Stack:
    """The stack's components; each fixture below starts only what it needs."""
    return Stack()


@pytest.fixture(scope="session")
def stack_env(local_stack: Stack) -> dict[str, str]:
    """What `make env` prints, as a dict, with every component healthy."""
    return _require(local_stack).env()


@pytest.fixture(scope="session")
def postgres_dsn(local_stack: Stack) -> str:
    """Superuser DSN of the PostgreSQL server."""
    return _require(local_stack, "postgres").postgres.env()["DATABASE_URL"]


@pytest.fixture(scope="session")
def kafka_bootstrap_servers(local_stack: Stack) -> str:
    """Kafka bootstrap servers (host:port)."""
    return _require(local_stack, "kafka").kafka.env()["KAFKA_BOOTSTRAP_SERVERS"]


@pytest.fixture(scope="session")
def kubernetes_stack(local_stack: Stack) -> Stack:
    """The stack with the control plane healthy."""
    return _require(local_stack, "kubernetes")


@pytest.fixture(scope="session")
def kubeconfig(kubernetes_stack: Stack) -> Path:
    """Path of the cluster-admin kubeconfig."""
    return kubernetes_stack.kubernetes.kubeconfig


@pytest.fixture(scope="session")
def kubectl(kubernetes_stack: Stack) -> Path:
    """Path of the kubectl binary built at the control plane's version."""
    return kubernetes_stack.kubernetes.tool("kubectl")


@pytest.fixture(scope="session")
def helm(kubernetes_stack: Stack) -> Path:
    """Path of the helm binary."""
    return kubernetes_stack.kubernetes.tool("helm")


@pytest.fixture(scope="session")
def kube_api(kubeconfig: Path) -> Iterator[object]:
    """A ``kubernetes.client.ApiClient`` for the local API server (cluster-admin)."""
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def otlp_endpoint(local_stack: Stack) -> str:
    """Base URL of the OTLP/HTTP receiver (append /v1/traces for spans)."""
    return _require(local_stack, "jaeger").jaeger.env()["OTEL_EXPORTER_OTLP_ENDPOINT"]


@pytest.fixture(scope="session")
def traces_query_url(local_stack: Stack) -> str:
    """Base URL of the trace backend's query API."""
    return _require(local_stack, "jaeger").jaeger.env()["TRACES_QUERY_URL"]


@pytest.fixture(scope="session")
def prometheus_url(local_stack: Stack) -> str:
    """Base URL of Prometheus."""
    return _require(local_stack, "prometheus").prometheus.env()["PROMETHEUS_URL"]


@pytest.fixture(scope="session")
def prometheus(local_stack: Stack) -> Prometheus:
    """The Prometheus component (``add_targets`` registers scrape targets)."""
    return _require(local_stack, "prometheus").prometheus


@pytest.fixture(scope="session")
def toxiproxy_url(local_stack: Stack) -> str:
    """Base URL of the toxiproxy API."""
    return _require(local_stack, "toxiproxy").toxiproxy.env()["TOXIPROXY_URL"]


@pytest.fixture(scope="session")
def trace_query(traces_query_url: str) -> TraceQuery:
    """Polling client of the trace backend's query API."""
    return TraceQuery(traces_query_url)


@pytest.fixture(scope="session")
def prometheus_query(prometheus_url: str) -> PrometheusQuery:
    """Polling client of Prometheus' query API."""
    return PrometheusQuery(prometheus_url)


@pytest.fixture(scope="session")
def buf(local_stack: Stack) -> Path:
    """Path of the buf binary (lint and breaking-change checks of proto/)."""
    return _require(local_stack, "buf").buf.binary
