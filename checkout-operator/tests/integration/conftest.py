"""Fixtures for the operator's tests against the real API server, Kafka and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import ADMIN_SECRET, CRD, Kube, OperatorFactory, Postgres, kafka_topics, unique, wait_for


@pytest.fixture(scope="session")
def kube(kubectl: Path, kubeconfig: Path) -> Kube:
    return Kube(kubectl, kubeconfig)


@pytest.fixture(scope="session")
def platform_crd(kube: Kube) -> None:
    """The CheckoutPlatform CRD from crds/ (server-side apply: the file is the source of truth)."""
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kube.run("wait", "--for=condition=Established", "--timeout=60s", "crd/checkoutplatforms.checkout.platform.io")


@pytest.fixture(scope="session")
def pg(postgres_dsn: str) -> Postgres:
    return Postgres(postgres_dsn)


@pytest.fixture(scope="session")
def platform_database(pg: Postgres) -> Iterator[str]:
    """A database of its own for the platforms under test; its roles are dropped with it."""
    name = unique("cop_")
    pg.query(f'CREATE DATABASE "{name}"')
    yield name
    pg.query(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for row in pg.query("SELECT rolname FROM pg_roles WHERE rolname LIKE $1", f"{name}\\_%"):
        pg.query(f'DROP ROLE IF EXISTS "{row["rolname"]}"')


@pytest.fixture
def namespace(kube: Kube, platform_crd: None, pg: Postgres) -> Iterator[str]:
    """A fresh namespace holding the PostgreSQL admin Secret."""
    name = unique("cop-test-")
    kube.run("create", "namespace", name)
    kube.run(
        "-n",
        name,
        "create",
        "secret",
        "generic",
        ADMIN_SECRET,
        f"--from-literal=username={pg.user}",
        f"--from-literal=password={pg.password}",
    )
    yield name
    # Objects the operator did not get to finalize would keep the namespace terminating forever.
    out = kube.run("-n", name, "get", "checkoutplatforms", "-o", "json", check=False)
    if out.returncode == 0:
        for item in json.loads(out.stdout)["items"]:
            kube.run(
                "-n",
                name,
                "patch",
                "checkoutplatform",
                item["metadata"]["name"],
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":[]}}',
                check=False,
            )
    kube.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operators(namespace: str, kubeconfig: Path, helm: Path, kube: Kube) -> Iterator[OperatorFactory]:
    """Operator processes watching the test namespace; at teardown the platforms are deleted first."""
    factory = OperatorFactory(namespace, kubeconfig, helm)
    yield factory
    if any(op.process is not None and op.process.poll() is None for op in factory.started):
        kube.run("-n", namespace, "delete", "checkoutplatforms", "--all", "--wait=false", check=False)
        with contextlib.suppress(AssertionError):  # the namespace fixture strips the finalizers
            wait_for(
                "the platforms to be finalized",
                lambda: (
                    json.loads(kube.run("-n", namespace, "get", "checkoutplatforms", "-o", "json").stdout)["items"]
                    == []
                ),
                timeout=60,
            )
    factory.stop_all()


@pytest.fixture
def topics_of(kafka_bootstrap_servers: str):  # type: ignore[no-untyped-def]
    return lambda prefix: kafka_topics(kafka_bootstrap_servers, prefix)
