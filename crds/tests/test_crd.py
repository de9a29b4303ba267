"""The CheckoutPlatform CRD against the real kube-apiserver: schema, defaults, printer columns, CEL rules."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_ledger import record_check

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "checkoutplatforms.checkout.platform.io.yaml"
EXAMPLE_FILE = ROOT / "examples" / "checkoutplatform.yaml"
CRD_NAME = "checkoutplatforms.checkout.platform.io"
API_VERSION = "checkout.platform.io/v1alpha1"

MINIMAL_SPEC: dict[str, Any] = {
    "kafka": {"bootstrapServers": ["127.0.0.1:19092"]},
    "postgres": {"host": "127.0.0.1", "database": "checkout", "adminSecretRef": {"name": "checkout-postgres-admin"}},
}
ALL_SERVICES = ["gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart"]
DELETE = object()


class Kube:
    """kubectl bound to the stack's kubeconfig; every call is bounded in time."""

    def __init__(self, binary: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", "--request-timeout=30s", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return result.stdout

    def rejected(self, *args: str, stdin: str | None = None) -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode != 0, f"kubectl {' '.join(args)} was accepted: {result.stdout}"
        return result.stderr


def platform(name: str, namespace: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": API_VERSION,
            "kind": "CheckoutPlatform",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``patch`` into a copy of ``base``; a DELETE value removes the key."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value is DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@pytest.fixture(scope="module")
def kube(kubectl: Path, kubeconfig: Path) -> Kube:
    k = Kube(kubectl, kubeconfig)
    k.ok("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    k.ok("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    return k


@pytest.fixture(scope="module")
def namespace(kube: Kube) -> Iterator[str]:
    name = f"crd-test-{uuid.uuid4().hex[:8]}"
    kube.ok("create", "namespace", name)
    yield name
    kube.ok("delete", "namespace", name, "--wait=false")


@pytest.fixture
def unique() -> Callable[[str], str]:
    return lambda stem: f"{stem}-{uuid.uuid4().hex[:6]}"


def get(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return json.loads(kube.ok("-n", namespace, "get", "checkoutplatforms", name, "-o", "json"))


def test_crd_is_established_with_short_name_and_status_subresource(kube: Kube) -> None:
    crd = json.loads(kube.ok("get", "crd", CRD_NAME, "-o", "json"))
    assert crd["spec"]["names"]["shortNames"] == ["cop"]
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert "cop" in kube.ok("api-resources", "--api-group=checkout.platform.io")


def test_minimal_spec_gets_every_default(kube: Kube, namespace: str, unique: Callable[[str], str]) -> None:
    name = unique("minimal")
    kube.ok("apply", "--server-side", "-f", "-", stdin=platform(name, namespace, MINIMAL_SPEC))
    spec = get(kube, namespace, name)["spec"]
    assert spec == {
        "kafka": {
            "bootstrapServers": ["127.0.0.1:19092"],
            "topicPrefix": "checkout",
            "defaults": {"partitions": 3, "replicationFactor": 1, "minInsyncReplicas": 1},
        },
        "postgres": {
            "host": "127.0.0.1",
            "port": 5432,
            "database": "checkout",
            "adminSecretRef": {"name": "checkout-postgres-admin", "usernameKey": "username", "passwordKey": "password"},
        },
        "services": {},
        "tracing": {"samplingRatio": 1},
        "metrics": {"serviceMonitor": False},
        "deletionPolicy": "Retain",
    }


def test_example_applies_and_defaults_are_filled_in(kube: Kube, namespace: str) -> None:
    example = yaml.safe_load(EXAMPLE_FILE.read_text())
    kube.ok("-n", namespace, "apply", "--server-side", "-f", str(EXAMPLE_FILE))
    spec = get(kube, namespace, example["metadata"]["name"])["spec"]
    assert spec["kafka"]["bootstrapServers"] == ["127.0.0.1:19092"]
    assert spec["postgres"]["host"] == "127.0.0.1"
    assert spec["postgres"]["port"] == 15432
    assert spec["postgres"]["adminSecretRef"]["name"] == "checkout-postgres-admin"
    assert spec["postgres"]["adminSecretRef"]["usernameKey"] == "username"
    assert spec["kafka"]["topics"]["checkout-events"] == {"partitions": 6}
    # Defaults fill what the example leaves out, service by service.
    assert spec["services"]["inventory"] == {"enabled": True, "replicas": 1}
    assert spec["services"]["order"] == {"enabled": True, "replicas": 1}
    assert spec["services"]["payment"]["replicas"] == 1
    assert spec["services"]["cart"] == {"enabled": False, "replicas": 1}
    assert spec["services"]["gateway-bff"]["enabled"] is True
    assert spec["tracing"]["samplingRatio"] == 0.5
    assert spec["deletionPolicy"] == "Retain"


def test_printer_columns_show_conditions(kube: Kube, namespace: str, unique: Callable[[str], str]) -> None:
    name = unique("columns")
    kube.ok("apply", "--server-side", "-f", "-", stdin=platform(name, namespace, MINIMAL_SPEC))
    header = kube.ok("-n", namespace, "get", "cop", name).splitlines()[0].split()
    assert header == ["NAME", "READY", "TOPICS", "DATABASE", "WORKLOADS", "AGE"]

    def condition(kind: str, status: str, reason: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": f"{kind} is {status}",
            "lastTransitionTime": "2025-01-01T00:00:00Z",
            "observedGeneration": 1,
        }

    status = {
        "status": {
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "TopicsNotReady"),
                condition("TopicsReady", "False", "KafkaUnreachable"),
                condition("DatabaseReady", "True", "SchemasReady"),
                condition("WorkloadsReady", "Unknown", "Pending"),
            ],
            "topics": [{"name": "checkout.dlq", "partitions": 3, "ready": False, "message": "broker unreachable"}],
            "services": [{"name": "payment", "replicas": 1, "readyReplicas": 0, "message": "rolling out"}],
        }
    }
    kube.ok("-n", namespace, "patch", "cop", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    row = kube.ok("-n", namespace, "get", "cop", name, "--no-headers").split()
    assert row[:5] == [name, "False", "False", "True", "Unknown"]
    wide = kube.ok("-n", namespace, "get", "cop", name, "-o", "wide").splitlines()
    assert wide[0].split() == ["NAME", "READY", "TOPICS", "DATABASE", "WORKLOADS", "PREFIX", "REASON", "AGE"]
    assert wide[1].split()[5:7] == ["checkout", "TopicsNotReady"]
    # The status schema is enforced too: a condition status outside True/False/Unknown is refused.
    bad = {"status": {"conditions": [condition("Ready", "Maybe", "Whatever")]}}
    error = kube.rejected(
        "-n", namespace, "patch", "cop", name, "--subresource=status", "--type=merge", "-p", json.dumps(bad)
    )
    assert "status.conditions[0].status" in error
    assert 'Unsupported value: "Maybe"' in error


INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "missing-bootstrap-servers",
        {"kafka": {"bootstrapServers": DELETE}},
        ["spec.kafka.bootstrapServers", "Required value"],
    ),
    (
        "empty-bootstrap-servers",
        {"kafka": {"bootstrapServers": []}},
        ["spec.kafka.bootstrapServers", "at least 1 items"],
    ),
    (
        "bootstrap-server-without-port",
        {"kafka": {"bootstrapServers": ["kafka"]}},
        ["spec.kafka.bootstrapServers[0]", "should match"],
    ),
    (
        "bootstrap-server-port-out-of-range",
        {"kafka": {"bootstrapServers": ["kafka:70000"]}},
        ["spec.kafka.bootstrapServers[0]", "port in 1..65535"],
    ),
    ("bad-topic-prefix", {"kafka": {"topicPrefix": "bad prefix!"}}, ["spec.kafka.topicPrefix", "should match"]),
    ("topic-prefix-too-long", {"kafka": {"topicPrefix": "p" * 201}}, ["spec.kafka.topicPrefix", "Too long"]),
    (
        "default-partitions-zero",
        {"kafka": {"defaults": {"partitions": 0}}},
        ["spec.kafka.defaults.partitions", "greater than or equal to 1"],
    ),
    (
        "topic-partitions-too-many",
        {"kafka": {"topics": {"dlq": {"partitions": 1001}}}},
        ["spec.kafka.topics.dlq.partitions", "less than or equal to 1000"],
    ),
    (
        "default-replication-below-min-insync",
        {"kafka": {"defaults": {"replicationFactor": 1, "minInsyncReplicas": 2}}},
        ["spec.kafka.defaults.replicationFactor", "must be >= spec.kafka.defaults.minInsyncReplicas"],
    ),
    (
        "topic-replication-below-default-min-insync",
        {
            "kafka": {
                "defaults": {"replicationFactor": 3, "minInsyncReplicas": 2},
                "topics": {"dlq": {"replicationFactor": 1}},
            }
        },
        ["spec.kafka.topics", "replicationFactor must be >= the topic's min.insync.replicas"],
    ),
    (
        "topic-replication-below-topic-min-insync",
        {"kafka": {"topics": {"dlq": {"replicationFactor": 1, "config": {"min.insync.replicas": "2"}}}}},
        ["spec.kafka.topics", "replicationFactor must be >= the topic's min.insync.replicas"],
    ),
    (
        "negative-retention",
        {"kafka": {"defaults": {"retentionMs": -2}}},
        ["spec.kafka.defaults.retentionMs", "greater than or equal to -1"],
    ),
    (
        "unknown-topic-key",
        {"kafka": {"topics": {"payments": {"partitions": 3}}}},
        ["spec.kafka.topics", "keys must be one of checkout-events"],
    ),
    (
        "bad-topic-config-key",
        {"kafka": {"topics": {"dlq": {"config": {"Retention MS": "1"}}}}},
        ["spec.kafka.topics[dlq].config", "Kafka config names"],
    ),
    ("missing-postgres", {"postgres": DELETE}, ["spec.postgres", "Required value"]),
    ("postgres-port-zero", {"postgres": {"port": 0}}, ["spec.postgres.port", "greater than or equal to 1"]),
    ("bad-database-name", {"postgres": {"database": "check-out"}}, ["spec.postgres.database", "should match"]),
    (
        "bad-secret-name",
        {"postgres": {"adminSecretRef": {"name": "Not_A_Secret"}}},
        ["spec.postgres.adminSecretRef.name", "should match"],
    ),
    ("unknown-service-key", {"services": {"shipping": {}}}, ["spec.services", "keys must be one of gateway-bff"]),
    (
        "all-services-disabled",
        {"services": {s: {"enabled": False} for s in ALL_SERVICES}},
        ["spec.services", "at least one service must be enabled"],
    ),
    (
        "negative-replicas",
        {"services": {"order": {"replicas": -1}}},
        ["spec.services.order.replicas", "greater than or equal to 0"],
    ),
    (
        "too-many-replicas",
        {"services": {"order": {"replicas": 101}}},
        ["spec.services.order.replicas", "less than or equal to 100"],
    ),
    (
        "bad-quantity",
        {"services": {"payment": {"resources": {"requests": {"cpu": "lots"}}}}},
        ["spec.services[payment].resources.requests[cpu]", "must be a Kubernetes quantity"],
    ),
    (
        "unknown-resource-name",
        {"services": {"payment": {"resources": {"limits": {"gpu": "1"}}}}},
        ["spec.services[payment].resources.limits", "resource names must be cpu, memory or ephemeral-storage"],
    ),
    (
        "requests-above-limits",
        {"services": {"payment": {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}}}},
        ["spec.services[payment].resources", "requests must not exceed limits"],
    ),
    (
        "bad-env-name",
        {"services": {"cart": {"env": [{"name": "1BAD-NAME", "value": "x"}]}}},
        ["spec.services.cart.env[0].name", "should match"],
    ),
    (
        "duplicate-env-name",
        {"services": {"cart": {"env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]}}},
        ["spec.services[cart].env[1]", "Duplicate value"],
    ),
    (
        "sampling-ratio-above-one",
        {"tracing": {"samplingRatio": 1.5}},
        ["spec.tracing.samplingRatio", "must be in [0, 1]"],
    ),
    (
        "bad-otlp-endpoint",
        {"tracing": {"otlpEndpoint": "localhost:4318"}},
        ["spec.tracing.otlpEndpoint", "should match"],
    ),
    (
        "otlp-endpoint-not-http",
        {"tracing": {"otlpEndpoint": "ftp://collector:4318"}},
        ["spec.tracing.otlpEndpoint", "should match"],
    ),
    ("deletion-policy-maybe", {"deletionPolicy": "Maybe"}, ["spec.deletionPolicy", 'Unsupported value: "Maybe"']),
    (
        "duplicate-bootstrap-server",
        {"kafka": {"bootstrapServers": ["kafka:9092", "kafka:9092"]}},
        ["spec.kafka.bootstrapServers[1]", "Duplicate value"],
    ),
    (
        "too-many-bootstrap-servers",
        {"kafka": {"bootstrapServers": [f"kafka-{i}:9092" for i in range(17)]}},
        ["spec.kafka.bootstrapServers", "must have at most 16 items"],
    ),
    ("topic-prefix-dot-dot", {"kafka": {"topicPrefix": ".."}}, ["spec.kafka.topicPrefix", "must not be '.' or '..'"]),
    (
        "default-replication-factor-zero",
        {"kafka": {"defaults": {"replicationFactor": 0}}},
        ["spec.kafka.defaults.replicationFactor", "greater than or equal to 1"],
    ),
    (
        "default-min-insync-zero",
        {"kafka": {"defaults": {"minInsyncReplicas": 0}}},
        ["spec.kafka.defaults.minInsyncReplicas", "greater than or equal to 1"],
    ),
    (
        "topic-replication-factor-zero",
        {"kafka": {"topics": {"payment-command": {"replicationFactor": 0}}}},
        ["spec.kafka.topics.payment-command.replicationFactor", "greater than or equal to 1"],
    ),
    (
        "topic-partitions-zero",
        {"kafka": {"topics": {"order-command": {"partitions": 0}}}},
        ["spec.kafka.topics.order-command.partitions", "greater than or equal to 1"],
    ),
    (
        "partitions-not-a-number",
        {"kafka": {"defaults": {"partitions": "three"}}},
        ["spec.kafka.defaults.partitions", 'must be of type integer: "string"'],
    ),
    (
        "topic-config-retention-not-an-integer",
        {"kafka": {"topics": {"dlq": {"config": {"retention.ms": "one week"}}}}},
        ["spec.kafka.topics[dlq].config", "values of *.ms and *.bytes configs must be integers"],
    ),
    (
        "topic-config-bad-cleanup-policy",
        {"kafka": {"topics": {"dlq": {"config": {"cleanup.policy": "forever"}}}}},
        ["spec.kafka.topics[dlq].config", "cleanup.policy] must be delete, compact or compact,delete"],
    ),
    (
        "topic-config-min-insync-zero",
        {"kafka": {"topics": {"dlq": {"config": {"min.insync.replicas": "0"}}}}},
        ["spec.kafka.topics[dlq].config", "min.insync.replicas] must be an integer in 1..99"],
    ),
    (
        "misplaced-field",
        {"kafka": {"partitions": 3}},
        ['unknown field "spec.kafka.partitions"'],
    ),
    ("empty-postgres-host", {"postgres": {"host": ""}}, ["spec.postgres.host", "at least 1 chars long"]),
    ("bad-postgres-host", {"postgres": {"host": "db host;rm -rf"}}, ["spec.postgres.host", "should match"]),
    ("postgres-port-too-high", {"postgres": {"port": 65536}}, ["spec.postgres.port", "less than or equal to 65535"]),
    (
        "template-database",
        {"postgres": {"database": "template1"}},
        ["spec.postgres.database", "must not be a template database"],
    ),
    (
        "sql-in-database-name",
        {"postgres": {"database": "checkout; DROP DATABASE postgres"}},
        ["spec.postgres.database", "should match"],
    ),
    (
        "same-username-and-password-key",
        {"postgres": {"adminSecretRef": {"usernameKey": "password"}}},
        ["spec.postgres.adminSecretRef.passwordKey", "must name different keys"],
    ),
    (
        "missing-secret-name",
        {"postgres": {"adminSecretRef": {"name": DELETE}}},
        ["spec.postgres.adminSecretRef.name", "Required value"],
    ),
    (
        "bad-image",
        {"services": {"inventory": {"image": "Not An Image!"}}},
        ["spec.services.inventory.image", "should match"],
    ),
    (
        "replicas-not-a-number",
        {"services": {"inventory": {"replicas": "three"}}},
        ["spec.services.inventory.replicas", 'must be of type integer: "string"'],
    ),
    (
        "env-overrides-database-url",
        {"services": {"payment": {"env": [{"name": "DATABASE__URL", "value": "postgresql://admin@db/x"}]}}},
        ["spec.services[payment].env[0].name", "must not set DATABASE__URL"],
    ),
    (
        "env-overrides-topic-prefix",
        {"services": {"order": {"env": [{"name": "KAFKA__TOPIC_PREFIX", "value": "other"}]}}},
        ["spec.services[order].env[0].name", "must not set DATABASE__URL"],
    ),
    (
        "env-value-too-long",
        {"services": {"cart": {"env": [{"name": "BIG", "value": "x" * 4097}]}}},
        ["spec.services.cart.env[0].value", "Too long"],
    ),
    (
        "sampling-ratio-negative",
        {"tracing": {"samplingRatio": -0.1}},
        ["spec.tracing.samplingRatio", "greater than or equal to 0"],
    ),
    (
        "otlp-endpoint-with-credentials",
        {"tracing": {"otlpEndpoint": "https://user:s3cret@otel.example:4318"}},
        ["spec.tracing.otlpEndpoint", "must not carry credentials"],
    ),
    ("service-monitor-not-a-bool", {"metrics": {"serviceMonitor": "yes"}}, ["spec.metrics.serviceMonitor", "boolean"]),
]


def described(patch: dict[str, Any], prefix: str = "spec") -> list[str]:
    """``path: value`` of every leaf of a patch (``(missing)`` for a DELETE), for the reliability ledger."""
    leaves: list[str] = []
    for key, value in patch.items():
        path = f"{prefix}.{key}"
        if value is DELETE:
            leaves.append(f"{path}: (missing)")
        elif isinstance(value, dict) and value:
            leaves.extend(described(value, path))
        else:
            text = json.dumps(value)
            leaves.append(f"{path}: {text if len(text) <= 60 else text[:57] + '...'}")
    return leaves


def typed_path(fragment: str) -> str:
    """A field path as server-side apply's typed-patch errors write it: ``spec.services[cart].env[1]`` →
    ``.spec.services.cart.env`` (map keys as fields, no list indexes)."""
    path = fragment.split('"')[1] if '"' in fragment else fragment
    path = re.sub(r"\[(\d+)\]", "", path)
    return "." + re.sub(r"\[([^\]]+)\]", r".\1", path)


def names_field_and_reason(error: str, expected: list[str]) -> bool:
    """Every expected fragment is in the message; or, for what server-side apply refuses before validation
    (wrong types, duplicate keys, undeclared fields), its typed-patch error names the same field."""
    if all(fragment in error for fragment in expected):
        return True
    return "failed to create typed patch object" in error and f"{typed_path(expected[0])}:" in error


def rejection(stderr: str) -> str:
    """The API server's reason, without kubectl's preamble."""
    message = " ".join(stderr.split())
    for marker in (" is invalid: ", "strict decoding error: "):
        if marker in message:
            message = message.split(marker, 1)[1]
    # The API server's note that CEL rules were skipped because the schema already failed: noise here.
    message = re.sub(r"\* <nil>: Invalid value: null: some validation rules were not checked[^*]*", "", message)
    return message.removeprefix("* ").replace(" * ", "; ").strip()


@pytest.fixture(scope="module")
def victim(kube: Kube, namespace: str) -> str:
    """An object that exists, for invalid updates that must change nothing of it."""
    name = f"victim-{uuid.uuid4().hex[:6]}"
    kube.ok("apply", "--server-side", "-f", "-", stdin=platform(name, namespace, MINIMAL_SPEC))
    return name


@pytest.mark.parametrize(("patch", "expected"), [(p, e) for _, p, e in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_spec_is_rejected_naming_field_and_reason(
    kube: Kube, namespace: str, unique: Callable[[str], str], victim: str, patch: dict[str, Any], expected: list[str]
) -> None:
    """Refused whole by create and by server-side apply, as a new object and as an update of an existing one.

    Nothing is accepted half-way: no rejected object exists afterwards, and an existing object whose update
    carried a valid change next to the invalid one is left exactly as it was (same resourceVersion).
    """
    spec = merged(MINIMAL_SPEC, patch)
    name = unique("invalid")
    created = kube.rejected("create", "-f", "-", stdin=platform(name, namespace, spec))
    applied = kube.rejected("apply", "--server-side", "-f", "-", stdin=platform(name, namespace, spec))
    before = get(kube, namespace, victim)
    update = json.loads(platform(victim, namespace, spec))
    update["metadata"]["labels"] = {"hostile-input": "half-way"}  # the valid part of the update
    updated = kube.rejected("apply", "--server-side", "-f", "-", stdin=json.dumps(update))
    after = get(kube, namespace, victim)
    # The update is judged by its effect only: server-side apply merges it into the existing object first,
    # so an emptied list can surface as its parent missing (still refused, naming a spec field).
    missing = [
        (how, expected)
        for how, error in (("create", created), ("server-side apply", applied))
        if not (names_field_and_reason(error, expected))
    ]
    if "spec." not in updated:
        missing.append(("update", ["a spec field"]))
    exists = kube.run("-n", namespace, "get", "cop", name).returncode == 0
    unchanged = after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    leaves = described(patch)
    record_check(
        "hostile-input",
        ", ".join(leaves[:2]) + (f" (+{len(leaves) - 2} more)" if len(leaves) > 2 else ""),
        f"rejected: {rejection(created)[:300]}",
        passed=not missing and not exists and unchanged,
        detail="create, server-side apply and an update of an existing object all refused whole"
        if not missing
        else f"message lacks {missing}",
    )
    assert not missing, f"{missing} not in:\ncreate: {created}\napply: {applied}\nupdate: {updated}"
    assert not exists, "a rejected object exists"
    assert unchanged, "a rejected update changed the existing object"
    assert after["spec"] == before["spec"]
    assert "labels" not in after["metadata"], "the valid half of a rejected update was applied"


def test_invalid_table_is_broad() -> None:
    """At least 20 distinct invalid specs, touching at least 20 distinct fields."""
    assert len({i for i, _, _ in INVALID}) == len(INVALID) >= 50
    fields = {leaf.split(":", 1)[0] for _, patch, _ in INVALID for leaf in described(patch)}
    assert len(fields) >= 30, sorted(fields)


VALID_EDGES: list[tuple[str, dict[str, Any]]] = [
    (
        "sampling-ratio-integer-bounds",
        {"tracing": {"samplingRatio": 0, "otlpEndpoint": "https://otel.example:4318/v1"}},
    ),
    ("sampling-ratio-one", {"tracing": {"samplingRatio": 1}}),
    ("ipv6-and-many-bootstrap-servers", {"kafka": {"bootstrapServers": ["[::1]:9092", "kafka-0.kafka:9092"]}}),
    (
        "override-replication-meets-default-min-insync",
        {
            "kafka": {
                "defaults": {"replicationFactor": 3, "minInsyncReplicas": 2},
                "topics": {"dlq": {"replicationFactor": 2}},
            }
        },
    ),
    (
        "override-min-insync-in-config",
        {"kafka": {"topics": {"dlq": {"replicationFactor": 3, "config": {"min.insync.replicas": "3"}}}}},
    ),
    (
        "requests-equal-limits-in-other-units",
        {
            "services": {
                "payment": {
                    "resources": {
                        "requests": {"cpu": 1, "memory": "1Gi"},
                        "limits": {"cpu": "1000m", "memory": "1024Mi"},
                    }
                }
            }
        },
    ),
    ("five-of-six-services-disabled", {"services": {s: {"enabled": s == "cart"} for s in ALL_SERVICES}}),
    ("zero-replicas", {"services": {"order": {"replicas": 0}}}),
    ("retention-forever", {"kafka": {"defaults": {"retentionMs": -1}}}),
    (
        "topic-configs-that-are-integers-and-policies",
        {"kafka": {"topics": {"dlq": {"config": {"retention.ms": "-1", "cleanup.policy": "compact,delete"}}}}},
    ),
    ("other-env-names-are-free", {"services": {"payment": {"env": [{"name": "LOG_LEVEL", "value": "DEBUG"}]}}}),
    ("postgres-database-named-postgres", {"postgres": {"database": "postgres"}}),
    ("custom-secret-keys", {"postgres": {"adminSecretRef": {"usernameKey": "user", "passwordKey": "pass"}}}),
    ("otlp-endpoint-with-at-in-its-path", {"tracing": {"otlpEndpoint": "https://otel.example:4318/v1/@team"}}),
]


@pytest.mark.parametrize("patch", [p for _, p in VALID_EDGES], ids=[i for i, _ in VALID_EDGES])
def test_edge_values_are_accepted(
    kube: Kube, namespace: str, unique: Callable[[str], str], patch: dict[str, Any]
) -> None:
    """The rules above are not broader than they say."""
    kube.ok("create", "-f", "-", stdin=platform(unique("edge"), namespace, merged(MINIMAL_SPEC, patch)))


@pytest.fixture
def existing(kube: Kube, namespace: str, unique: Callable[[str], str]) -> str:
    name = unique("transition")
    spec = merged(MINIMAL_SPEC, {"kafka": {"topics": {"checkout-events": {"partitions": 6}}}})
    kube.ok("create", "-f", "-", stdin=platform(name, namespace, spec))
    return name


def patch_spec(kube: Kube, namespace: str, name: str, spec: dict[str, Any], *, accepted: bool) -> str:
    args = ("-n", namespace, "patch", "cop", name, "--type=merge", "-p", json.dumps({"spec": spec}))
    return kube.ok(*args) if accepted else kube.rejected(*args)


def test_topic_prefix_is_immutable(kube: Kube, namespace: str, existing: str) -> None:
    error = patch_spec(kube, namespace, existing, {"kafka": {"topicPrefix": "other"}}, accepted=False)
    assert "spec.kafka.topicPrefix" in error
    assert "spec.kafka.topicPrefix is immutable" in error
    assert get(kube, namespace, existing)["spec"]["kafka"]["topicPrefix"] == "checkout"
    # Re-stating the same value is fine.
    patch_spec(kube, namespace, existing, {"kafka": {"topicPrefix": "checkout"}}, accepted=True)


def test_topic_partitions_grow_but_never_shrink(kube: Kube, namespace: str, existing: str) -> None:
    error = patch_spec(
        kube, namespace, existing, {"kafka": {"topics": {"checkout-events": {"partitions": 5}}}}, accepted=False
    )
    assert "spec.kafka.topics" in error
    assert "must not decrease" in error
    # Dropping the override would fall back to the default of 3: also a shrink.
    error = patch_spec(kube, namespace, existing, {"kafka": {"topics": {"checkout-events": None}}}, accepted=False)
    assert "must not decrease" in error
    # Lowering the default shrinks every topic that uses it.
    error = patch_spec(kube, namespace, existing, {"kafka": {"defaults": {"partitions": 2}}}, accepted=False)
    assert "must not decrease" in error
    assert get(kube, namespace, existing)["spec"]["kafka"]["topics"]["checkout-events"]["partitions"] == 6

    patch_spec(kube, namespace, existing, {"kafka": {"topics": {"checkout-events": {"partitions": 12}}}}, accepted=True)
    patch_spec(kube, namespace, existing, {"kafka": {"topics": {"dlq": {"partitions": 4}}}}, accepted=True)
    kafka = get(kube, namespace, existing)["spec"]["kafka"]
    assert kafka["topics"]["checkout-events"]["partitions"] == 12
    assert kafka["topics"]["dlq"]["partitions"] == 4


def test_name_too_long_for_the_workload_names_is_rejected(kube: Kube, namespace: str) -> None:
    """<name>-checkout-orchestrator must fit a Helm release name (53): names are at most 31 characters."""
    error = kube.rejected("create", "-f", "-", stdin=platform("x" * 32, namespace, MINIMAL_SPEC))
    assert "metadata.name" in error
    assert "may not be more than 31" in error or "at most 31" in error or "Too long" in error
    kube.ok("create", "-f", "-", stdin=platform("x" * 31, namespace, MINIMAL_SPEC))
