"""What the operator does when a backend fails or an admin steps in: conditions, Events, recovery.

Kafka "stops" by disabling a toxiproxy proxy that is the platform's only bootstrap address: the port
closes, exactly what a stopped broker looks like to a client, without stopping the broker the rest of
the suite shares.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from operator_harness import (
    ADMIN_SECRET,
    Kube,
    OperatorFactory,
    Postgres,
    condition,
    free_port,
    is_ready,
    platform_manifest,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration


def get(kube: Kube, namespace: str) -> dict[str, Any] | None:
    return kube.get("checkoutplatform", "shop", namespace)


def wait_condition(
    kube: Kube, namespace: str, type_: str, status: str, reason: str | None = None, timeout: float = 90
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        cond = condition(get(kube, namespace), type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return cond
        return None

    return wait_for(f"{type_}={status} ({reason or 'any reason'})", probe, timeout)


def wait_ready(kube: Kube, namespace: str) -> dict[str, Any]:
    return wait_for("Ready=True", lambda: o if is_ready(o := get(kube, namespace)) else None, 120)


def warning_reasons(kube: Kube, namespace: str) -> set[str]:
    return {e["reason"] for e in kube.events(namespace, "shop") if e["type"] == "Warning"}


@pytest.fixture
def kafka_proxy(toxiproxy_url: str, kafka_bootstrap_servers: str) -> Iterator[tuple[str, str]]:
    """A toxiproxy proxy in front of the broker; yields (its API URL, the address to bootstrap from)."""
    name = unique("kafka-")
    response = httpx.post(
        f"{toxiproxy_url}/proxies",
        json={"name": name, "listen": "127.0.0.1:0", "upstream": kafka_bootstrap_servers},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    yield f"{toxiproxy_url}/proxies/{name}", response.json()["listen"]
    httpx.delete(f"{toxiproxy_url}/proxies/{name}", timeout=5)


def set_proxy(url: str, *, enabled: bool) -> None:
    response = httpx.post(url, json={"enabled": enabled}, timeout=5)
    assert response.status_code == 200, response.text


@pytest.fixture
def manifest(pg: Postgres, platform_database: str, kafka_bootstrap_servers: str) -> dict[str, Any]:
    return platform_manifest("shop", unique("cop"), kafka_bootstrap_servers, pg, platform_database, ADMIN_SECRET)


def test_kafka_outage_sets_topics_ready_false_naming_the_cause_then_recovers(
    kube: Kube, namespace: str, operators: OperatorFactory, manifest: dict[str, Any], kafka_proxy: tuple[str, str]
) -> None:
    proxy_url, address = kafka_proxy
    operator = operators.start()
    manifest["spec"]["kafka"]["bootstrapServers"] = [address]
    assert kube.apply(manifest, namespace).returncode == 0
    wait_ready(kube, namespace)

    set_proxy(proxy_url, enabled=False)
    cond = wait_condition(kube, namespace, "TopicsReady", "False", "KafkaUnreachable")
    assert address in cond["message"]
    ready = condition(get(kube, namespace), "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["reason"] == "KafkaUnreachable"
    # The other concerns are unaffected and say so.
    assert (condition(get(kube, namespace), "DatabaseReady") or {}).get("status") == "True"
    wait_for("a Warning Event", lambda: "KafkaUnreachable" in warning_reasons(kube, namespace))
    assert operator.healthy()  # backing off, not crash-looping

    set_proxy(proxy_url, enabled=True)
    wait_ready(kube, namespace)
    assert operator.process is not None
    assert operator.process.poll() is None


def test_admin_secret_problems_are_named_and_recover(
    kube: Kube, namespace: str, operators: OperatorFactory, manifest: dict[str, Any], pg: Postgres
) -> None:
    operators.start()
    manifest["spec"]["postgres"]["adminSecretRef"]["name"] = "late-admin"
    assert kube.apply(manifest, namespace).returncode == 0
    cond = wait_condition(kube, namespace, "DatabaseReady", "False", "AdminSecretMissing")
    assert "late-admin" in cond["message"]

    kube.run(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "late-admin",
        f"--from-literal=username={pg.user}",
        "--from-literal=password=not-the-password",
    )
    cond = wait_condition(kube, namespace, "DatabaseReady", "False", "AuthenticationFailed")
    assert pg.user in cond["message"]
    assert {"AdminSecretMissing", "AuthenticationFailed"} <= warning_reasons(kube, namespace)

    kube.run("-n", namespace, "delete", "secret", "late-admin")
    kube.run(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "late-admin",
        f"--from-literal=username={pg.user}",
        f"--from-literal=password={pg.password}",
    )
    wait_ready(kube, namespace)


def test_unreachable_postgres_is_reported_with_its_address(
    kube: Kube, namespace: str, operators: OperatorFactory, manifest: dict[str, Any]
) -> None:
    operator = operators.start()
    port = free_port()
    manifest["spec"]["postgres"]["port"] = port
    assert kube.apply(manifest, namespace).returncode == 0
    cond = wait_condition(kube, namespace, "DatabaseReady", "False", "PostgresUnreachable")
    assert f"{port}" in cond["message"]
    assert operator.healthy()


def test_pause_annotation_stops_reconciling_until_removed(
    kube: Kube, namespace: str, operators: OperatorFactory, manifest: dict[str, Any]
) -> None:
    operators.start()
    assert kube.apply(manifest, namespace).returncode == 0
    wait_ready(kube, namespace)

    kube.run("-n", namespace, "annotate", "checkoutplatform", "shop", "checkout.platform.io/paused=true")
    cond = wait_condition(kube, namespace, "Paused", "True", "PausedByAnnotation")
    assert "checkout.platform.io/paused" in cond["message"]
    kube.run("-n", namespace, "delete", "deployment", "shop-inventory")
    time.sleep(8)  # more than two drift intervals (3 s in these tests): a running operator would have acted
    assert kube.get("deployment", "shop-inventory", namespace) is None

    kube.run("-n", namespace, "annotate", "checkoutplatform", "shop", "checkout.platform.io/paused-")
    wait_for("the Deployment to be repaired", lambda: kube.get("deployment", "shop-inventory", namespace))
    wait_for("the Paused condition to go", lambda: condition(get(kube, namespace), "Paused") is None)
    wait_ready(kube, namespace)


def test_deletion_blocked_by_an_unreachable_backend_says_so_and_can_be_released(
    kube: Kube,
    namespace: str,
    operators: OperatorFactory,
    manifest: dict[str, Any],
    kafka_proxy: tuple[str, str],
    topics_of: Any,
) -> None:
    proxy_url, address = kafka_proxy
    operators.start()
    manifest["spec"]["kafka"]["bootstrapServers"] = [address]
    manifest["spec"]["deletionPolicy"] = "Delete"
    prefix = manifest["spec"]["kafka"]["topicPrefix"]
    assert kube.apply(manifest, namespace).returncode == 0
    wait_ready(kube, namespace)

    set_proxy(proxy_url, enabled=False)
    kube.run("-n", namespace, "delete", "checkoutplatform", "shop", "--wait=false")
    cond = wait_condition(kube, namespace, "Deleting", "True", "KafkaUnreachable")
    assert "checkout.platform.io/release-finalizer=true" in cond["message"]
    assert get(kube, namespace) is not None  # held by the finalizer

    kube.run("-n", namespace, "annotate", "checkoutplatform", "shop", "checkout.platform.io/release-finalizer=true")
    wait_for("the platform to be gone", lambda: get(kube, namespace) is None, 60)
    assert len(topics_of(prefix)) == 5  # released without clean-up: the topics are still there


def test_metrics_endpoint_reports_reconciles_and_conditions(
    kube: Kube, namespace: str, operators: OperatorFactory, manifest: dict[str, Any]
) -> None:
    operator = operators.start()
    assert kube.apply(manifest, namespace).returncode == 0
    wait_ready(kube, namespace)
    text = wait_for(
        "condition gauges",
        lambda: t if 'type="Ready"' in (t := operator.metrics()) else None,
    )
    assert 'checkout_operator_reconciles_total{concern="topics",result="ready"}' in text
    assert "checkout_operator_reconcile_duration_seconds_bucket" in text
    assert f'checkout_operator_condition{{name="shop",namespace="{namespace}",status="True",type="Ready"}} 1.0' in text
