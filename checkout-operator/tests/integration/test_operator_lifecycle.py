"""The operator end to end: kubectl apply → Ready, spec edits converge, drift is repaired, deletion policies.

Every check looks at the real thing: topics on the broker, schemas and roles in PostgreSQL, objects in
the API server, Pods Running on the kwok nodes, Events on the platform object.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from operator_harness import (
    ADMIN_SECRET,
    LOG_DIR,
    Kube,
    OperatorFactory,
    Postgres,
    condition,
    is_ready,
    platform_manifest,
    secret_value,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

ENABLED = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order")  # the example disables cart
TOPIC_KEYS = ("checkout-events", "inventory-command", "payment-command", "order-command", "dlq")
READY_TIMEOUT_S = 120


def apply_platform(kube: Kube, namespace: str, manifest: dict[str, Any]) -> None:
    result = kube.apply(manifest, namespace)
    assert result.returncode == 0, result.stderr


def get_platform(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return kube.get("checkoutplatform", name, namespace)


def wait_ready(kube: Kube, namespace: str, name: str, timeout: float = READY_TIMEOUT_S) -> dict[str, Any]:
    return wait_for(
        f"{namespace}/{name} Ready=True",
        lambda: obj if is_ready(obj := get_platform(kube, namespace, name)) else None,
        timeout,
    )


def event_reasons(kube: Kube, namespace: str, name: str) -> dict[str, list[str]]:
    reasons: dict[str, list[str]] = {}
    for event in kube.events(namespace, name):
        reasons.setdefault(event["reason"], []).append(event.get("message", ""))
    return reasons


def record_timing(name: str, seconds: float) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with (LOG_DIR / "timings.jsonl").open("a") as out:
        out.write(json.dumps({"measure": name, "seconds": round(seconds, 2), "at": time.time()}) + "\n")


@pytest.fixture
def platform(
    kube: Kube,
    namespace: str,
    operators: OperatorFactory,
    pg: Postgres,
    platform_database: str,
    kafka_bootstrap_servers: str,
) -> dict[str, Any]:
    """The example (cart disabled) with a unique prefix, applied to the namespace; the operator running."""
    operators.start()
    manifest = platform_manifest("shop", unique("cop"), kafka_bootstrap_servers, pg, platform_database, ADMIN_SECRET)
    started = time.monotonic()
    apply_platform(kube, namespace, manifest)
    wait_ready(kube, namespace, "shop")
    record_timing("apply_to_ready_seconds", time.monotonic() - started)
    return manifest


def test_apply_example_converges_to_ready_with_every_backend_object(
    kube: Kube, namespace: str, platform: dict[str, Any], pg: Postgres, platform_database: str, topics_of: Any
) -> None:
    prefix = platform["spec"]["kafka"]["topicPrefix"]
    obj = get_platform(kube, namespace, "shop")
    assert obj is not None
    for type_ in ("Ready", "TopicsReady", "DatabaseReady", "WorkloadsReady"):
        cond = condition(obj, type_)
        assert cond is not None, type_
        assert cond["status"] == "True", cond
        assert cond["lastTransitionTime"]
        assert cond["reason"]
        assert cond["message"]
    assert obj["metadata"]["finalizers"] == ["checkout.platform.io/finalizer"]

    # Kafka: five topics with the example's partitions (checkout-events 6, dlq 1, the rest the default 3).
    topics = topics_of(prefix)
    assert topics == {
        f"{prefix}.checkout-events": 6,
        f"{prefix}.inventory-command": 3,
        f"{prefix}.payment-command": 3,
        f"{prefix}.order-command": 3,
        f"{prefix}.dlq": 1,
    }
    assert [t["name"] for t in obj["status"]["topics"]] == [f"{prefix}.{k}" for k in TOPIC_KEYS]
    assert all(t["ready"] for t in obj["status"]["topics"])

    # PostgreSQL: one schema owned by one login role per enabled service; the role's Secret works.
    services = {s["name"]: s for s in obj["status"]["services"]}
    assert set(services) == set(ENABLED)
    for service in ENABLED:
        entry = services[service]
        assert entry["ready"], entry
        assert entry["readyReplicas"] == entry["replicas"] >= 1, entry
        [row] = pg.query(
            "SELECT n.nspname, r.rolname, r.rolcanlogin, r.rolsuper FROM pg_namespace n "
            "JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = $1",
            entry["schema"],
            database=platform_database,
        )
        assert row["rolname"] == entry["role"]
        assert row["rolcanlogin"]
        assert not row["rolsuper"]
        secret = kube.get("secret", entry["databaseSecret"], namespace)
        assert secret is not None
        assert secret["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        url = secret_value(secret, "url")
        assert url.startswith(f"postgresql://{entry['role']}:")
        assert url.endswith(f"/{platform_database}")
        [me] = Postgres(url).query("SELECT current_user AS u")
        assert me["u"] == entry["role"]

    # Kubernetes: a Deployment per enabled service (none for cart), Pods Running on the kwok nodes.
    for service in ENABLED:
        deployment = kube.get("deployment", f"shop-{service}", namespace)
        assert deployment is not None, service
        assert deployment["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
        assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "checkout-operator"
        managers = {m["manager"] for m in deployment["metadata"]["managedFields"] if m["operation"] == "Apply"}
        assert managers == {"checkout-operator"}
        env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {
            "name": "DATABASE__URL",
            "valueFrom": {"secretKeyRef": {"name": f"shop-{service}-database", "key": "url"}},
        } in env
        config = kube.get("configmap", f"shop-{service}", namespace)
        assert config is not None
        assert config["data"]["KAFKA__TOPIC_PREFIX"] == prefix
        assert config["data"]["DATABASE__SCHEMA"] == services[service]["schema"]
        assert config["data"]["OTEL_TRACES_SAMPLER_ARG"] == "0.5"
    assert kube.get("deployment", "shop-cart", namespace) is None
    pods = json.loads(kube.run("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == 6  # gateway-bff has 2 replicas in the example
    assert all(p["spec"]["nodeName"].startswith("kwok-") for p in running)

    # What a user reads: the printer columns.
    table = kube.run("-n", namespace, "get", "checkoutplatforms").stdout
    assert table.split("\n")[0].split()[:5] == ["NAME", "READY", "TOPICS", "DATABASE", "WORKLOADS"]
    assert table.split("\n")[1].split()[:5] == ["shop", "True", "True", "True", "True"]
    reasons = event_reasons(kube, namespace, "shop")
    assert "TopicCreated" in reasons
    assert "WorkloadCreated" in reasons


def test_spec_edits_converge_and_disabled_services_are_pruned(
    kube: Kube, namespace: str, platform: dict[str, Any], topics_of: Any, kafka_bootstrap_servers: str
) -> None:
    prefix = platform["spec"]["kafka"]["topicPrefix"]
    edited = json.loads(json.dumps(platform))
    spec = edited["spec"]
    spec["kafka"]["defaults"]["partitions"] = 4  # grows the three default-sized topics
    spec["kafka"]["topics"]["payment-command"] = {"config": {"retention.ms": "3600000"}}
    spec["services"]["inventory"] = {"replicas": 3}
    spec["services"]["payment"] = {"enabled": False}
    spec["services"]["cart"] = {"enabled": True}
    apply_platform(kube, namespace, edited)
    obj = wait_ready(kube, namespace, "shop")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] >= 2

    assert topics_of(prefix)[f"{prefix}.inventory-command"] == 4
    assert topics_of(prefix)[f"{prefix}.checkout-events"] == 6
    configs = topic_configs(kafka_bootstrap_servers, f"{prefix}.payment-command")
    assert configs["retention.ms"] == "3600000"

    inventory = kube.get("deployment", "shop-inventory", namespace)
    assert inventory is not None
    assert inventory["spec"]["replicas"] == 3
    assert kube.get("deployment", "shop-payment", namespace) is None
    assert kube.get("service", "shop-payment", namespace) is None
    assert kube.get("configmap", "shop-payment", namespace) is None
    assert kube.get("deployment", "shop-cart", namespace) is not None
    services = {s["name"]: s for s in obj["status"]["services"]}
    assert services["inventory"]["readyReplicas"] == 3
    assert "payment" not in services or not services["payment"]["enabled"]
    reasons = event_reasons(kube, namespace, "shop")
    assert "TopicPartitionsIncreased" in reasons
    assert any("shop-payment" in m for m in reasons.get("WorkloadPruned", []))


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """All configs of a topic as the broker reports them."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    async def describe() -> dict[str, str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
        await admin.start()
        try:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            [resource] = response.to_object()["resources"]
            return {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        finally:
            await admin.close()

    return asyncio.run(describe())


def test_drift_is_repaired_with_events(
    kube: Kube,
    namespace: str,
    platform: dict[str, Any],
    pg: Postgres,
    platform_database: str,
    topics_of: Any,
    kafka_bootstrap_servers: str,
) -> None:
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    prefix = platform["spec"]["kafka"]["topicPrefix"]
    obj = get_platform(kube, namespace, "shop")
    assert obj is not None
    schema = next(s["schema"] for s in obj["status"]["services"] if s["name"] == "order")

    async def delete_topic() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap_servers, request_timeout_ms=10000)
        await admin.start()
        try:
            await admin.delete_topics([f"{prefix}.order-command"])
        finally:
            await admin.close()

    asyncio.run(delete_topic())
    pg.query(f'DROP SCHEMA "{schema}" CASCADE', database=platform_database)
    kube.run("-n", namespace, "delete", "deployment", "shop-inventory")

    wait_for("the topic to come back", lambda: f"{prefix}.order-command" in topics_of(prefix))
    wait_for(
        "the schema to come back",
        lambda: pg.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema, database=platform_database),
    )
    wait_for("the Deployment to come back", lambda: kube.get("deployment", "shop-inventory", namespace))
    wait_ready(kube, namespace, "shop")
    reasons = wait_for(
        "the repair Events",
        lambda: (
            r
            if {"TopicCreated", "SchemaRecreated", "WorkloadRecreated"}
            <= set(r := event_reasons(kube, namespace, "shop"))
            else None
        ),
    )
    assert any("order-command" in m for m in reasons["TopicCreated"])
    assert any(schema in m for m in reasons["SchemaRecreated"])
    assert any("shop-inventory" in m for m in reasons["WorkloadRecreated"])
    # The order service's schema was recreated empty: its Deployment was rolled so migrations run again.
    order = kube.get("deployment", "shop-order", namespace)
    assert order is not None
    assert "checkout.platform.io/restarted-at" in order["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.parametrize("policy", ["Delete", "Retain"])
def test_deletion_honours_the_policy(
    kube: Kube,
    namespace: str,
    operators: OperatorFactory,
    pg: Postgres,
    platform_database: str,
    kafka_bootstrap_servers: str,
    topics_of: Any,
    policy: str,
) -> None:
    operators.start()
    prefix = unique("cop")
    manifest = platform_manifest("shop", prefix, kafka_bootstrap_servers, pg, platform_database, ADMIN_SECRET)
    manifest["spec"]["deletionPolicy"] = policy
    apply_platform(kube, namespace, manifest)
    obj = wait_ready(kube, namespace, "shop")
    schemas = [s["schema"] for s in obj["status"]["services"]]
    roles = [s["role"] for s in obj["status"]["services"]]

    kube.run("-n", namespace, "delete", "checkoutplatform", "shop", "--timeout=90s")
    assert get_platform(kube, namespace, "shop") is None
    present = pg.query(
        "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", schemas, database=platform_database
    )
    present_roles = pg.query("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", roles)
    if policy == "Delete":
        assert topics_of(prefix) == {}
        assert present == []
        assert present_roles == []
    else:
        assert len(topics_of(prefix)) == 5
        assert len(present) == len(schemas)
        assert len(present_roles) == len(roles)
    # Owned objects go with the platform (garbage collection through the owner references).
    wait_for(
        "the Deployments to be garbage-collected",
        lambda: json.loads(kube.run("-n", namespace, "get", "deployments", "-o", "json").stdout)["items"] == [],
    )


def test_example_file_is_what_the_tests_apply() -> None:
    """The tests start from the annotated example, so the example stays valid and meaningful."""
    import yaml

    example = yaml.safe_load((Path(__file__).resolve().parents[3] / "examples" / "checkoutplatform.yaml").read_text())
    assert example["kind"] == "CheckoutPlatform"
    assert example["spec"]["services"]["cart"]["enabled"] is False
