"""The checkout-operator chart: lint, render, schema, RBAC, security, the single-source CRD, the real API server."""

from __future__ import annotations

import concurrent.futures
import contextlib
import copy
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chaos_ledger import record_check
from pydantic import BaseModel

from checkout_stack import versions

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "checkout-operator"
CRD_SOURCE = ROOT / "crds" / "checkoutplatforms.checkout.platform.io.yaml"
CHART_CRD = CHART / "crds" / "checkoutplatforms.checkout.platform.io.yaml"
PEERING_CRDS = [CHART / "crds" / "clusterkopfpeerings.kopf.dev.yaml", CHART / "crds" / "kopfpeerings.kopf.dev.yaml"]
VALUES_FILES = {
    "full": CHART / "ci" / "full-values.yaml",
    "minimal": CHART / "ci" / "minimal-values.yaml",
    "namespaced": CHART / "ci" / "namespaced-values.yaml",
}
# Every way the chart is rendered in this module: (id, helm arguments).
RENDERINGS = [("defaults", []), *((label, ["-f", str(path)]) for label, path in VALUES_FILES.items())]
LABELS = [label for label, _ in RENDERINGS]
WAIT_S = 120
IMAGE = "checkout-platform/checkout-operator:0.1.0"

# What the operator may do, per (API group, resource): the whole contract of its RBAC.
APPLIED = {"get", "list", "create", "patch", "delete"}
"""Rendered from the service chart: server-side applied, listed by label once a pass, pruned."""
PEERING = {"get", "list", "watch", "patch"}
NAMESPACED_GRANTS: dict[tuple[str, str], set[str]] = {
    ("checkout.platform.io", "checkoutplatforms"): {"get", "list", "watch", "patch"},
    ("checkout.platform.io", "checkoutplatforms/status"): {"patch"},
    ("", "events"): {"create"},
    ("", "secrets"): {"get", "create", "patch"},
    ("", "configmaps"): APPLIED,
    ("", "services"): APPLIED,
    ("", "serviceaccounts"): APPLIED,
    ("apps", "deployments"): APPLIED | {"watch"},
    ("policy", "poddisruptionbudgets"): APPLIED,
    ("networking.k8s.io", "networkpolicies"): APPLIED,
    ("monitoring.coreos.com", "servicemonitors"): APPLIED,
}
CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"}}
CLUSTER_WIDE_CLUSTER_ROLE = {**CRD_READ, ("kopf.dev", "clusterkopfpeerings"): PEERING, **NAMESPACED_GRANTS}
NAMESPACED_CLUSTER_ROLE = {**CRD_READ, ("", "namespaces"): {"get", "list", "watch"}}
NAMESPACED_ROLE = {("kopf.dev", "kopfpeerings"): PEERING, **NAMESPACED_GRANTS}

OPERATOR_ENV = [
    "POD_ID",
    "NAMESPACES",
    "METRICS_PORT",
    "HEALTH_PORT",
    "LOG_LEVEL",
    "RECONCILE__INTERVAL_S",
    "KAFKA__TIMEOUT_S",
    "POSTGRES__TIMEOUT_S",
    "WATCH__SERVER_TIMEOUT_S",
    "WATCH__CLIENT_TIMEOUT_S",
    "PEERING__NAME",
    "PEERING__PRIORITY",
    "PEERING__STANDALONE",
    "WORKLOADS__CHART_DIR",
    "WORKLOADS__HELM_BINARY",
    "WORKLOADS__KUBE_VERSION",
]
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                },
            }
        ],
    },
}


def run(binary: Path, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(binary), *args], input=stdin, capture_output=True, text=True, timeout=WAIT_S + 60, check=False
    )
    if check:
        assert result.returncode == 0, f"{binary.name} {' '.join(args)}:\n{result.stderr}"
    return result


def render_sources(
    helm: Path, *args: str, namespace: str = "checkout", release: str = "rel"
) -> list[tuple[str, dict[str, Any]]]:
    """(source file inside the chart, object) for every rendered document."""
    out = run(
        helm, "template", release, str(CHART), "--namespace", namespace, "--kube-version", versions.KUBERNETES, *args
    ).stdout
    rendered = []
    for chunk in out.split("\n---\n"):
        source = next((line.split("/", 1)[1] for line in chunk.splitlines() if line.startswith("# Source: ")), "")
        doc = yaml.safe_load(chunk)
        if doc:
            rendered.append((source, doc))
    return rendered


def render(helm: Path, *args: str, namespace: str = "checkout", release: str = "rel") -> list[dict[str, Any]]:
    return [doc for _, doc in render_sources(helm, *args, namespace=namespace, release=release)]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def wildcards(rules: list[dict[str, Any]]) -> list[str]:
    """Every '*' in a rule's groups, resources, verbs or names (RBAC reads '*' as 'everything')."""
    found = []
    for i, rule in enumerate(rules):
        for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            found += [f"rules[{i}].{field}: {item!r}" for item in rule.get(field, []) if "*" in item]
    return found


def grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """The verbs granted per (API group, resource), merged over all rules."""
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, f"unexpected rule fields: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


def rbac_problems(rules: list[dict[str, Any]], expected: dict[tuple[str, str], set[str]]) -> list[str]:
    """Differences from the expected grants: wildcards, extra or missing resources, extra or missing verbs."""
    problems = wildcards(rules)
    granted = grants(rules)
    for key in sorted(set(granted) | set(expected)):
        extra = sorted(granted.get(key, set()) - expected.get(key, set()))
        missing = sorted(expected.get(key, set()) - granted.get(key, set()))
        if extra:
            problems.append(f"{key}: verbs not needed {extra}")
        if missing:
            problems.append(f"{key}: verbs missing {missing}")
    return problems


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, list[dict[str, Any]]]:
    return {label: render(helm, *args) for label, args in RENDERINGS}


@pytest.fixture
def namespace(kubectl: Path, kubeconfig: Path) -> Iterator[str]:
    name = f"op-chart-{uuid.uuid4().hex[:8]}"
    run(kubectl, f"--kubeconfig={kubeconfig}", "create", "namespace", name)
    yield name
    run(kubectl, f"--kubeconfig={kubeconfig}", "delete", "namespace", name, "--wait=false")


@pytest.fixture
def watched(kubectl: Path, kubeconfig: Path) -> Iterator[list[str]]:
    """Two fresh namespaces for the operator to watch."""
    names = [f"op-watched-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        run(kubectl, f"--kubeconfig={kubeconfig}", "create", "namespace", name)
    yield names
    for name in names:
        run(kubectl, f"--kubeconfig={kubeconfig}", "delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def peering_crds(kubectl: Path, kubeconfig: Path) -> None:
    """kopf's peering CRDs, created from the chart's files where missing so peering objects can be validated.

    Like CRDs installed by helm they are left in place: other operators' peering objects may live in them.
    """
    kc = f"--kubeconfig={kubeconfig}"
    for path in PEERING_CRDS:
        name = yaml.safe_load(path.read_text())["metadata"]["name"]
        if run(kubectl, kc, "get", "crd", name, check=False).returncode != 0:
            run(kubectl, kc, "create", "-f", str(path))
        run(kubectl, kc, "wait", "--for=condition=Established", f"crd/{name}", f"--timeout={WAIT_S}s")


PROMETHEUS_RULE_CRD = copy.deepcopy(SERVICE_MONITOR_CRD)
PROMETHEUS_RULE_CRD["metadata"]["name"] = "prometheusrules.monitoring.coreos.com"
PROMETHEUS_RULE_CRD["spec"]["names"] = {
    "plural": "prometheusrules",
    "singular": "prometheusrule",
    "kind": "PrometheusRule",
}
MONITORING_CRDS = {"ServiceMonitor": SERVICE_MONITOR_CRD, "PrometheusRule": PROMETHEUS_RULE_CRD}


def ensure_service_monitor_crd(
    kubectl: Path, kubeconfig: Path, definition: dict[str, Any] = SERVICE_MONITOR_CRD
) -> bool:
    """Install a minimal monitoring CRD unless one is there; True when this call installed it."""
    kc = f"--kubeconfig={kubeconfig}"
    crd = definition["metadata"]["name"]
    if run(kubectl, kc, "get", "crd", crd, check=False).returncode == 0:
        return False
    run(kubectl, kc, "create", "-f", "-", stdin=json.dumps(definition))
    run(kubectl, kc, "wait", "--for=condition=Established", f"crd/{crd}", f"--timeout={WAIT_S}s")
    return True


# --- lint, render, one kind per template, labels --------------------------------------------------------------


@pytest.mark.parametrize("values", [None, *VALUES_FILES.values()], ids=["defaults", *VALUES_FILES])
def test_helm_lint_strict_passes(helm: Path, values: Path | None) -> None:
    args = ["-f", str(values)] if values else []
    result = run(helm, "lint", "--strict", str(CHART), *args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("label", "kinds"),
    [
        (
            "defaults",
            ["ClusterKopfPeering", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ServiceAccount"],
        ),
        (
            "full",
            [
                "ClusterKopfPeering",
                "ClusterRole",
                "ClusterRoleBinding",
                *["ConfigMap"] * 4,  # the Grafana dashboards
                "Deployment",
                "PodDisruptionBudget",
                "PrometheusRule",
                "Service",
                "ServiceAccount",
                "ServiceMonitor",
            ],
        ),
        ("minimal", ["Deployment", "Service"]),
        (
            "namespaced",
            [
                "ClusterRole",
                "ClusterRoleBinding",
                "Deployment",
                "KopfPeering",
                "KopfPeering",
                "Role",
                "Role",
                "RoleBinding",
                "RoleBinding",
                "Service",
                "ServiceAccount",
            ],
        ),
    ],
)
def test_each_values_file_renders_its_objects(
    rendered: dict[str, list[dict[str, Any]]], label: str, kinds: list[str]
) -> None:
    assert sorted(d["kind"] for d in rendered[label]) == kinds


def test_every_template_renders_exactly_one_kind(helm: Path) -> None:
    kinds_per_template: dict[str, set[str]] = {}
    for _, args in [*RENDERINGS, ("standalone", ["--set", "peering.standalone=true"])]:
        for source, doc in render_sources(helm, *args):
            kinds_per_template.setdefault(source, set()).add(doc["kind"])
    templates = {f"templates/{p.name}" for p in (CHART / "templates").glob("*.yaml")}
    assert set(kinds_per_template) == templates, "every template renders in at least one values file"
    mixed = {source: kinds for source, kinds in kinds_per_template.items() if len(kinds) != 1}
    assert mixed == {}


@pytest.mark.parametrize("label", LABELS)
def test_every_object_carries_the_standard_labels(rendered: dict[str, list[dict[str, Any]]], label: str) -> None:
    name = "cop" if label == "full" else "checkout-operator"
    for doc in rendered[label]:
        labels = doc["metadata"]["labels"]
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels["app.kubernetes.io/name"] == name, where
        assert labels["app.kubernetes.io/instance"] == "rel", where
        assert labels["app.kubernetes.io/component"] == "operator", where
        assert labels["app.kubernetes.io/part-of"] == "checkout-platform", where
        assert labels["app.kubernetes.io/managed-by"] == "Helm", where
        assert labels["app.kubernetes.io/version"] == ("1.2.3" if label == "full" else "0.1.0"), where
        assert labels["helm.sh/chart"] == "checkout-operator-0.1.0", where
    [deployment] = by_kind(rendered[label], "Deployment")
    [service] = by_kind(rendered[label], "Service")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"] == selector


# --- schema -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "additional properties 'bogus' not allowed"),
        (["--set", "peering.leader=true"], "additional properties 'leader' not allowed"),
        (["--set", "workloads.images.shipping.repository=x"], "additional properties 'shipping' not allowed"),
        (["--set", "replicaCount=two"], "at '/replicaCount': got string, want integer"),
        (["--set", "peering.standalone=maybe"], "at '/peering/standalone': got string, want boolean"),
        (["--set", "watchNamespaces=team-a"], "at '/watchNamespaces': got string, want array"),
        (["--set-json", 'watchNamespaces=["Team_A"]'], "at '/watchNamespaces/0'"),
        (["--set-json", 'watchNamespaces=["a","a"]'], "at '/watchNamespaces'"),
        (["--set", "peering.priority=-1"], "at '/peering/priority'"),
        (["--set", "updateStrategy=BlueGreen"], "at '/updateStrategy'"),
        (["--set", "logLevel=TRACE"], "at '/logLevel'"),
        (["--set", "kafka.timeoutS=0"], "at '/kafka/timeoutS'"),
    ],
    ids=[
        "unknown-key",
        "unknown-nested-key",
        "unknown-service-image",
        "replicas-not-integer",
        "standalone-not-boolean",
        "namespaces-not-list",
        "namespace-not-dns-label",
        "namespace-twice",
        "negative-priority",
        "unknown-strategy",
        "bad-level",
        "zero-timeout",
    ],
)
def test_schema_rejects_bad_values_with_a_clear_message(helm: Path, args: list[str], message: str) -> None:
    result = run(helm, "template", "rel", str(CHART), "--kube-version", versions.KUBERNETES, *args, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def test_schema_closes_every_object_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "additionalProperties" not in node:
                open_objects.append(path or "/")
            if node.get("type") == "object" and "properties" in node and node["additionalProperties"] is not False:
                open_objects.append(path or "/")
            for key, child in node.items():
                walk(child, f"{path}/{key}")
        elif isinstance(node, list):
            for i, child in enumerate(node):
                walk(child, f"{path}/{i}")

    walk(schema, "")
    assert open_objects == []


def test_every_values_key_is_documented() -> None:
    lines = (CHART / "values.yaml").read_text().splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or stripped.endswith(":"):
            continue
        if not lines[i - 1].strip().startswith("#"):
            undocumented.append(stripped)
    assert undocumented == []


# --- RBAC -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", ["defaults", "full"])
def test_cluster_wide_rbac_grants_exactly_what_the_operator_needs(
    rendered: dict[str, list[dict[str, Any]]], label: str
) -> None:
    docs = rendered[label]
    assert by_kind(docs, "Role") == by_kind(docs, "RoleBinding") == []
    [role] = by_kind(docs, "ClusterRole")
    assert rbac_problems(role["rules"], CLUSTER_WIDE_CLUSTER_ROLE) == []
    [binding] = by_kind(docs, "ClusterRoleBinding")
    [account] = by_kind(docs, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "checkout"}
    ]


def test_namespaced_rbac_grants_per_namespace_and_nothing_sensitive_cluster_wide(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["namespaced"]
    [cluster_role] = by_kind(docs, "ClusterRole")
    assert rbac_problems(cluster_role["rules"], NAMESPACED_CLUSTER_ROLE) == []
    cluster_grants = grants(cluster_role["rules"])
    assert ("", "secrets") not in cluster_grants
    assert ("kopf.dev", "clusterkopfpeerings") not in cluster_grants
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert rbac_problems(role["rules"], NAMESPACED_ROLE) == [], role["metadata"]["namespace"]
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    [account] = by_kind(docs, "ServiceAccount")
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[0]["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "checkout"}
        ]


@pytest.mark.parametrize("label", LABELS)
def test_no_rbac_rule_uses_a_wildcard(rendered: dict[str, list[dict[str, Any]]], label: str) -> None:
    for doc in by_kind(rendered[label], "ClusterRole") + by_kind(rendered[label], "Role"):
        assert wildcards(doc["rules"]) == [], doc["metadata"]


def test_rbac_check_catches_a_wildcard_an_extra_grant_and_a_missing_verb(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    [role] = by_kind(rendered["defaults"], "ClusterRole")
    rules = copy.deepcopy(role["rules"])
    secrets = next(r for r in rules if "secrets" in r["resources"])
    secrets["verbs"] = [v for v in secrets["verbs"] if v != "patch"]
    rules.append({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]})
    problems = rbac_problems(rules, CLUSTER_WIDE_CLUSTER_ROLE)
    assert f"rules[{len(rules) - 1}].verbs: '*'" in problems
    assert "('', 'pods'): verbs not needed ['*']" in problems
    assert "('', 'secrets'): verbs missing ['patch']" in problems


def test_standalone_operator_gets_no_peering_rights_or_objects(helm: Path) -> None:
    for args in (
        ["--set", "peering.standalone=true"],
        ["-f", str(VALUES_FILES["namespaced"]), "--set", "peering.standalone=true"],
    ):
        docs = render(helm, *args)
        assert by_kind(docs, "ClusterKopfPeering") == by_kind(docs, "KopfPeering") == []
        for role in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
            assert not any(group == "kopf.dev" for group, _ in grants(role["rules"]))
        [deployment] = by_kind(docs, "Deployment")
        assert env_of(deployment)["PEERING__STANDALONE"] == "true"


def test_rbac_create_false_leaves_rbac_to_the_installer(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["minimal"]
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} & {
        d["kind"] for d in docs
    }
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "checkout-operator"


# --- peering objects --------------------------------------------------------------------------------------------


def test_peering_objects_follow_the_watch_mode(rendered: dict[str, list[dict[str, Any]]]) -> None:
    [cluster_peering] = by_kind(rendered["defaults"], "ClusterKopfPeering")
    assert cluster_peering["apiVersion"] == "kopf.dev/v1"
    assert cluster_peering["metadata"]["name"] == "checkout-operator"
    assert "namespace" not in cluster_peering["metadata"]
    [full_peering] = by_kind(rendered["full"], "ClusterKopfPeering")
    assert full_peering["metadata"]["name"] == "checkout-prod"
    peerings = by_kind(rendered["namespaced"], "KopfPeering")
    assert [(p["apiVersion"], p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings] == [
        ("kopf.dev/v1", "team-a", "checkout-operator"),
        ("kopf.dev/v1", "team-b", "checkout-operator"),
    ]
    assert by_kind(rendered["namespaced"], "ClusterKopfPeering") == []
    for label in LABELS:
        [deployment] = by_kind(rendered[label], "Deployment")
        names = {p["metadata"]["name"] for p in by_kind(rendered[label], "ClusterKopfPeering")}
        names |= {p["metadata"]["name"] for p in by_kind(rendered[label], "KopfPeering")}
        assert names <= {env_of(deployment)["PEERING__NAME"]}, "the operator peers through the object the chart creates"


def test_kopf_peering_crds_have_kopfs_shape() -> None:
    shapes = {}
    for path in PEERING_CRDS:
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{spec['group']}"
        [version] = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1", True, True)
        # kopf patches .status through the main endpoint: a status subresource would silently drop its keep-alives.
        assert "subresources" not in version
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        shapes[spec["names"]["kind"]] = (spec["group"], spec["scope"], spec["names"]["plural"])
    assert shapes == {
        "ClusterKopfPeering": ("kopf.dev", "Cluster", "clusterkopfpeerings"),
        "KopfPeering": ("kopf.dev", "Namespaced", "kopfpeerings"),
    }


# --- the Deployment ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("label", LABELS)
def test_operator_pod_is_locked_down_and_probed(rendered: dict[str, list[dict[str, Any]]], label: str) -> None:
    [deployment] = by_kind(rendered[label], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is True, "the operator talks to the API server"
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "128Mi"}}]
    [container] = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - the emptyDir mount
    assert container["command"] == ["python", "-m", "checkout_operator"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    env = env_of(deployment)
    assert ports == {"metrics": int(env["METRICS_PORT"]), "health": int(env["HEALTH_PORT"])}
    if label != "full":
        assert ports == {"metrics": 8080, "health": 8081}
        assert "resources" not in container, "no default resources"


def test_default_deployment_runs_the_pinned_image_with_documented_settings(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    [deployment] = by_kind(rendered["defaults"], "Deployment")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == IMAGE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(deployment)
    assert list(env)[: len(OPERATOR_ENV)] == OPERATOR_ENV
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["NAMESPACES"] == "[]"
    assert env["PEERING__NAME"] == "checkout-operator"
    assert env["PEERING__PRIORITY"] == "0"
    assert env["PEERING__STANDALONE"] == "false"
    assert env["WORKLOADS__CHART_DIR"] == "/app/charts/checkout-service"
    assert env["WORKLOADS__HELM_BINARY"] == "/usr/local/bin/helm"
    assert env["WORKLOADS__KUBE_VERSION"] == versions.KUBERNETES, "the cluster's version when not set"
    assert env["OTEL_SDK_DISABLED"] == "true"
    assert "WORKLOADS__IMAGES" not in env
    [service] = by_kind(rendered["defaults"], "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}]


def test_full_values_reach_the_operator(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["full"]
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    env = env_of(deployment)
    assert env["LOG_LEVEL"] == "DEBUG"
    assert env["RECONCILE__INTERVAL_S"] == "15.5"
    assert env["KAFKA__TIMEOUT_S"] == "5"
    assert env["POSTGRES__TIMEOUT_S"] == "7.5"
    assert env["WATCH__SERVER_TIMEOUT_S"] == "120"
    assert env["WATCH__CLIENT_TIMEOUT_S"] == "150"
    assert env["PEERING__NAME"] == "checkout-prod"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.5"
    assert env["RECONCILE__RETRY_BACKOFF_S"] == "2"
    images = json.loads(env["WORKLOADS__IMAGES"])
    assert images["cart"] == {"repository": "checkout/cart"}
    assert images["gateway-bff"] == {"repository": "checkout/gateway-bff", "tag": "1.2.3"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "checkout/checkout-operator:1.2.3"
    assert container["resources"]["limits"]["memory"] == "512Mi"
    [monitor] = by_kind(docs, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    [service] = by_kind(docs, "Service")
    assert service["spec"]["ports"][0]["port"] == 9090
    assert monitor["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    [pdb] = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1


def test_namespaced_values_pass_the_namespaces_as_json(rendered: dict[str, list[dict[str, Any]]]) -> None:
    [deployment] = by_kind(rendered["namespaced"], "Deployment")
    assert json.loads(env_of(deployment)["NAMESPACES"]) == ["team-a", "team-b"]


def settings_env_names() -> set[str]:
    """The environment variables OperatorSettings reads (nested groups joined with "__")."""
    from checkout_operator.settings import OperatorSettings  # the lead's contract, imported where it is tested

    names = set()
    for name, info in OperatorSettings.model_fields.items():
        group = info.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            names |= {f"{name}__{field}".upper() for field in group.model_fields}
        else:
            names.add(name.upper())
    return names


def test_every_operator_variable_the_chart_sets_is_a_setting() -> None:
    # POD_ID is read by kopf itself (its peer identity), not by the settings.
    assert set(OPERATOR_ENV) - {"POD_ID"} <= settings_env_names()


def test_service_images_variable_is_a_setting() -> None:
    assert "WORKLOADS__IMAGES" in settings_env_names()


@pytest.mark.parametrize("label", ["defaults", "full", "namespaced"])
def test_rendered_environment_builds_the_operator_settings(
    rendered: dict[str, list[dict[str, Any]]], label: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    [deployment] = by_kind(rendered[label], "Deployment")
    env = {name: value for name, value in env_of(deployment).items() if isinstance(value, str)}
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from checkout_operator.settings import OperatorSettings

    settings = OperatorSettings()
    assert settings.namespaces == json.loads(env["NAMESPACES"])
    assert settings.metrics_port == int(env["METRICS_PORT"])
    assert settings.health_port == int(env["HEALTH_PORT"])
    assert settings.log_level == env["LOG_LEVEL"]
    assert settings.reconcile.interval_s == float(env["RECONCILE__INTERVAL_S"])
    assert settings.kafka.timeout_s == float(env["KAFKA__TIMEOUT_S"])
    assert settings.postgres.timeout_s == float(env["POSTGRES__TIMEOUT_S"])
    assert settings.watch.server_timeout_s == int(env["WATCH__SERVER_TIMEOUT_S"])
    assert settings.watch.client_timeout_s == int(env["WATCH__CLIENT_TIMEOUT_S"])
    assert settings.peering.name == env["PEERING__NAME"]
    assert settings.peering.priority == int(env["PEERING__PRIORITY"])
    assert settings.peering.standalone is False
    assert str(settings.workloads.chart_dir) == "/app/charts/checkout-service"
    assert settings.workloads.helm_binary == "/usr/local/bin/helm"
    assert settings.workloads.kube_version == versions.KUBERNETES


@pytest.mark.parametrize(
    ("args", "strategy"),
    [
        ([], "Recreate"),
        (["--set", "replicaCount=3"], "RollingUpdate"),
        (["--set", "replicaCount=3", "--set", "updateStrategy=Recreate"], "Recreate"),
        (["--set", "updateStrategy=RollingUpdate"], "RollingUpdate"),
    ],
    ids=["one-replica", "three-replicas", "forced-recreate", "forced-rolling"],
)
def test_update_strategy_avoids_overlapping_single_operators(helm: Path, args: list[str], strategy: str) -> None:
    [deployment] = by_kind(render(helm, *args), "Deployment")
    assert deployment["spec"]["strategy"]["type"] == strategy


@pytest.mark.parametrize("label", LABELS)
def test_images_name_no_registry_host(rendered: dict[str, list[dict[str, Any]]], label: str) -> None:
    [deployment] = by_kind(rendered[label], "Deployment")
    env = env_of(deployment)
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    images += [f"{i['repository']}:{i.get('tag', '')}" for i in json.loads(env.get("WORKLOADS__IMAGES", "{}")).values()]
    for image in images:
        first = image.split("/", 1)[0]
        assert "/" in image, image
        assert not {".", ":"} & set(first), f"{image} names a registry host"
        assert first != "localhost", f"{image} names a registry host"


# --- one source for the CRD -------------------------------------------------------------------------------------


def test_chart_crd_is_the_repository_crd(helm: Path, tmp_path: Path) -> None:
    assert CHART_CRD.is_symlink(), "the chart links crds/…, it does not copy it"
    assert CHART_CRD.resolve() == CRD_SOURCE.resolve()
    assert CHART_CRD.read_bytes() == CRD_SOURCE.read_bytes()
    # helm follows the link when rendering…
    crds = [doc for source, doc in render_sources(helm, "--include-crds") if source.startswith("crds/")]
    names = sorted(doc["metadata"]["name"] for doc in crds)
    assert names == ["checkoutplatforms.checkout.platform.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]
    [crd] = [doc for doc in crds if doc["metadata"]["name"] == "checkoutplatforms.checkout.platform.io"]
    assert crd == yaml.safe_load(CRD_SOURCE.read_text())
    # …and stores the linked file's bytes when packaging, so a packaged chart carries the same CRD.
    run(helm, "package", str(CHART), "--destination", str(tmp_path))
    [package] = tmp_path.glob("checkout-operator-*.tgz")
    with tarfile.open(package) as archive:
        member = archive.getmember("checkout-operator/crds/checkoutplatforms.checkout.platform.io.yaml")
        assert member.isfile()
        packaged = archive.extractfile(member)
        assert packaged is not None
        assert packaged.read() == CRD_SOURCE.read_bytes()
        assert not any(m.name.startswith("checkout-operator/ci/") for m in archive.getmembers())


# --- the real API server ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("label", "args"), RENDERINGS, ids=LABELS)
@pytest.mark.usefixtures("peering_crds")
def test_rendered_manifests_pass_the_real_api_server(
    helm: Path, kubectl: Path, kubeconfig: Path, namespace: str, watched: list[str], label: str, args: list[str]
) -> None:
    if label == "namespaced":
        args = [*args, "--set-json", f"watchNamespaces={json.dumps(watched)}"]
    docs = render(helm, *args, "--include-crds", namespace=namespace)
    installed_crds = [
        definition["metadata"]["name"]
        for kind, definition in MONITORING_CRDS.items()
        if by_kind(docs, kind) and ensure_service_monitor_crd(kubectl, kubeconfig, definition)
    ]
    try:
        stream = "\n---\n".join(yaml.safe_dump(d) for d in docs)
        result = run(
            kubectl, f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=stream
        )
        applied = result.stdout.split()
        assert len(applied) == len(docs), result.stdout
        if label == "namespaced":
            assert sum(a.startswith("role.rbac.authorization.k8s.io/") for a in applied) == 2
            assert sum(a.startswith("kopfpeering.kopf.dev/") for a in applied) == 2
    finally:
        for crd in installed_crds:
            run(kubectl, f"--kubeconfig={kubeconfig}", "delete", "crd", crd)


def test_real_api_server_rejects_a_broken_binding(helm: Path, kubectl: Path, kubeconfig: Path) -> None:
    # The dry-run above can fail: a ClusterRoleBinding may only refer to a ClusterRole.
    [binding] = by_kind(render(helm), "ClusterRoleBinding")
    binding["roleRef"]["kind"] = "Role"
    result = run(
        kubectl,
        f"--kubeconfig={kubeconfig}",
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps(binding),
        check=False,
    )
    assert result.returncode != 0
    assert "roleRef.kind" in result.stderr


# --- a real install on the local control plane ------------------------------------------------------------------


class Install:
    """One `helm install` of the chart; uninstalled (and its cluster-scoped objects checked gone) on exit."""

    def __init__(self, helm: Path, kubectl: Path, kubeconfig: Path, namespace: str, *args: str) -> None:
        self.helm, self.kubectl, self.namespace, self.args = helm, kubectl, namespace, args
        self.kc = f"--kubeconfig={kubeconfig}"
        self.release = f"cop-{uuid.uuid4().hex[:8]}"
        self.fullname = f"{self.release}-checkout-operator"
        self.account = f"system:serviceaccount:{namespace}:{self.fullname}"

    def __enter__(self) -> Install:
        installed = run(
            self.helm,
            self.kc,
            "install",
            self.release,
            str(CHART),
            "-n",
            self.namespace,
            "--set",
            f"peering.name={self.release}",
            *self.args,
            "--wait",
            f"--timeout={WAIT_S}s",
            check=False,
        )
        if installed.returncode != 0:
            self.__exit__()  # a failed install may still have created cluster-scoped objects
            pytest.fail(f"helm install {self.release}:\n{installed.stderr}")
        return self

    def __exit__(self, *_: object) -> None:
        uninstalled = run(
            self.helm,
            self.kc,
            "uninstall",
            self.release,
            "-n",
            self.namespace,
            "--wait",
            f"--timeout={WAIT_S}s",
            check=False,
        )
        # Whatever happened, no cluster-scoped object of this release outlives the test.
        for kind in ("clusterrolebinding", "clusterrole", "clusterkopfpeering"):
            run(
                self.kubectl,
                self.kc,
                "delete",
                kind,
                self.fullname if kind != "clusterkopfpeering" else self.release,
                "--ignore-not-found",
                check=False,
            )
        assert uninstalled.returncode == 0, uninstalled.stderr

    def kubectl_json(self, *args: str) -> dict[str, Any]:
        return json.loads(run(self.kubectl, self.kc, *args, "-o", "json").stdout)

    def can(self, verb: str, resource: str, *scope: str) -> bool:
        result = run(
            self.kubectl, self.kc, "auth", "can-i", verb, resource, *scope, f"--as={self.account}", check=False
        )
        return result.stdout.strip() == "yes"

    def assert_available(self) -> None:
        deployment = self.kubectl_json("-n", self.namespace, "get", "deployment", self.fullname)
        assert deployment["status"].get("availableReplicas") == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        pods = self.kubectl_json(
            "-n", self.namespace, "get", "pods", "-l", f"app.kubernetes.io/instance={self.release}"
        )
        assert [p["status"]["phase"] for p in pods["items"]] == ["Running"]
        service = self.kubectl_json("-n", self.namespace, "get", "service", f"{self.fullname}-metrics")
        assert service["spec"]["ports"][0]["port"] == 8080


def assert_gone(kubectl: Path, kubeconfig: Path, *objects: str, namespace: str | None = None) -> None:
    scope = ["-n", namespace] if namespace else []
    for obj in objects:
        result = run(kubectl, f"--kubeconfig={kubeconfig}", *scope, "get", obj, check=False)
        assert result.returncode != 0, f"{obj} outlived helm uninstall"
        assert "NotFound" in result.stderr


def test_helm_install_cluster_wide(helm: Path, kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    with Install(helm, kubectl, kubeconfig, namespace) as install:
        install.assert_available()
        for crd in ("checkoutplatforms.checkout.platform.io", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"):
            install.kubectl_json("get", "crd", crd)
        peering = install.kubectl_json("get", "clusterkopfpeering", install.release)
        assert peering["metadata"]["labels"]["app.kubernetes.io/instance"] == install.release
        install.kubectl_json("get", "clusterrole", install.fullname)
        install.kubectl_json("get", "clusterrolebinding", install.fullname)
        # The real authorizer agrees with the rules: everywhere for its own kinds, nothing beyond.
        assert install.can("patch", "checkoutplatforms.checkout.platform.io", "--all-namespaces")
        assert install.can("patch", "checkoutplatforms.checkout.platform.io", "--subresource=status", "-n", "default")
        assert install.can("patch", "secrets", "-n", "default")
        assert not install.can("list", "secrets", "-n", "default")
        assert install.can("patch", f"clusterkopfpeerings.kopf.dev/{install.release}")
        assert not install.can("delete", "checkoutplatforms.checkout.platform.io", "--all-namespaces")
        assert not install.can("create", "customresourcedefinitions")
        assert not install.can("create", "pods", "-n", "default")
        assert not install.can("create", "clusterroles")
    assert_gone(
        kubectl,
        kubeconfig,
        f"clusterrole/{install.fullname}",
        f"clusterrolebinding/{install.fullname}",
        f"clusterkopfpeering/{install.release}",
    )


def test_helm_install_namespaced(
    helm: Path, kubectl: Path, kubeconfig: Path, namespace: str, watched: list[str]
) -> None:
    only_watched = ["--set-json", f"watchNamespaces={json.dumps(watched)}"]
    with Install(helm, kubectl, kubeconfig, namespace, *only_watched) as install:
        install.assert_available()
        for ns in watched:
            install.kubectl_json("-n", ns, "get", "role", install.fullname)
            install.kubectl_json("-n", ns, "get", "rolebinding", install.fullname)
            install.kubectl_json("-n", ns, "get", "kopfpeering", install.release)
            assert install.can("patch", "secrets", "-n", ns)
            assert install.can("patch", "checkoutplatforms.checkout.platform.io", "-n", ns)
            assert install.can("patch", f"kopfpeerings.kopf.dev/{install.release}", "-n", ns)
        assert not install.can("get", "secrets", "-n", namespace)
        assert not install.can("get", "secrets", "-n", "default")
        assert not install.can("list", "checkoutplatforms.checkout.platform.io", "--all-namespaces")
        assert not install.can("list", "clusterkopfpeerings.kopf.dev")
        assert install.can("watch", "customresourcedefinitions")
        assert install.can("list", "namespaces")
    assert_gone(kubectl, kubeconfig, f"clusterrole/{install.fullname}", f"clusterrolebinding/{install.fullname}")
    for ns in watched:
        objects = (f"role/{install.fullname}", f"rolebinding/{install.fullname}", f"kopfpeering/{install.release}")
        assert_gone(kubectl, kubeconfig, *objects, namespace=ns)


# --- the RBAC as the real authorizer sees it: a can-i matrix over verbs x resources -------------------------------

VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
NEEDED_IN_WATCHED: dict[str, set[str]] = {
    # kopf: the daemon and event handlers list+watch the resource; finalizer and progress annotations are PATCHes.
    "checkoutplatforms.checkout.platform.io": {"get", "list", "watch", "patch"},
    # platform.py: patch_namespaced_custom_object_status.
    "checkoutplatforms.checkout.platform.io/status": {"patch"},
    # kopf.event() POSTs core/v1 Events.
    "events": {"create"},
    # credentials.py: read_namespaced_secret (admin, service), patch_namespaced_secret (server-side apply).
    "secrets": {"get", "create", "patch"},
    # workloads.py: server_side_apply (create or patch), one list per kind by label, delete when pruning.
    "configmaps": {"get", "list", "create", "patch", "delete"},
    "services": {"get", "list", "create", "patch", "delete"},
    "serviceaccounts": {"get", "list", "create", "patch", "delete"},
    "poddisruptionbudgets.policy": {"get", "list", "create", "patch", "delete"},
    "networkpolicies.networking.k8s.io": {"get", "list", "create", "patch", "delete"},
    "servicemonitors.monitoring.coreos.com": {"get", "list", "create", "patch", "delete"},
    # ...and kopf.on.event watches the platforms' Deployments.
    "deployments.apps": {"get", "list", "watch", "create", "patch", "delete"},
    # kopf peering: the KopfPeering's status holds the replicas' keep-alives.
    "kopfpeerings.kopf.dev": {"get", "list", "watch", "patch"},
    # Never needed: run, exec into or read the Pods, other workloads, RBAC, tokens, storage.
    "pods": set(),
    "pods/exec": set(),
    "pods/log": set(),
    "pods/portforward": set(),
    "serviceaccounts/token": set(),
    "statefulsets.apps": set(),
    "daemonsets.apps": set(),
    "jobs.batch": set(),
    "roles.rbac.authorization.k8s.io": set(),
    "rolebindings.rbac.authorization.k8s.io": set(),
    "persistentvolumeclaims": set(),
    "ingresses.networking.k8s.io": set(),
    "leases.coordination.k8s.io": set(),
    "*": set(),
}
NEEDED_CLUSTER_WIDE: dict[str, set[str]] = {
    "customresourcedefinitions.apiextensions.k8s.io": {"get", "list", "watch"},  # kopf's resource discovery
    "namespaces": {"get", "list", "watch"},  # kopf follows the watched namespaces
    "nodes": set(),
    "persistentvolumes": set(),
    "clusterroles.rbac.authorization.k8s.io": set(),
    "clusterrolebindings.rbac.authorization.k8s.io": set(),
    "clusterkopfpeerings.kopf.dev": set(),  # namespaced watch: the namespaced KopfPeering only
    "certificatesigningrequests.certificates.k8s.io": set(),
    "validatingwebhookconfigurations.admissionregistration.k8s.io": set(),
    "*": set(),
}
SPECIAL_VERBS = (  # (verb, resource): privilege escalation paths, always denied
    ("impersonate", "users"),
    ("impersonate", "serviceaccounts"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("*", "secrets"),
)


def _can_i_args(verb: str, resource: str) -> list[str]:
    name, _, subresource = resource.partition("/")
    return [verb, name, *([f"--subresource={subresource}"] if subresource else [])]


@pytest.mark.timeout(900)
def test_namespaced_operator_can_do_what_it_needs_and_nothing_else(
    helm: Path, kubectl: Path, kubeconfig: Path, namespace: str, watched: list[str]
) -> None:
    """`kubectl auth can-i --as=<the operator's ServiceAccount>` over every verb x resource: allowed exactly where
    checkout-operator/src calls the API (NEEDED_*), in the watched namespace only; denied everywhere else.

    What is denied in the watched namespace cannot be allowed in another one (a Role there or the ClusterRole
    would have shown), so other scopes are asked only about what the watched namespace allows.
    """
    watched_ns = watched[0]
    only_watched = ["--set-json", f"watchNamespaces={json.dumps([watched_ns])}"]
    matrix: list[tuple[bool, str, str, tuple[str, ...]]] = []  # (expected, verb, resource, scope)
    for resource, needed in NEEDED_IN_WATCHED.items():
        for verb in VERBS:
            matrix.append((verb in needed, verb, resource, ("-n", watched_ns)))
            if verb in needed:
                matrix.append((False, verb, resource, ("-n", "default")))  # a namespace it does not watch
                matrix.append((False, verb, resource, ("--all-namespaces",)))
    for resource, needed in NEEDED_CLUSTER_WIDE.items():
        matrix += [(verb in needed, verb, resource, ()) for verb in VERBS]
    for verb, resource in SPECIAL_VERBS:
        matrix += [(False, verb, resource, ("-n", watched_ns)), (False, verb, resource, ())]
    # kubectl resolves a resource through discovery: without the ServiceMonitor CRD every answer would be "no".
    installed_crd = ensure_service_monitor_crd(kubectl, kubeconfig)
    with contextlib.ExitStack() as cleanup:
        if installed_crd:
            crd = SERVICE_MONITOR_CRD["metadata"]["name"]
            cleanup.callback(run, kubectl, f"--kubeconfig={kubeconfig}", "delete", "crd", crd, "--wait=false")
        install = cleanup.enter_context(Install(helm, kubectl, kubeconfig, namespace, *only_watched))

        def answer(check: tuple[bool, str, str, tuple[str, ...]]) -> bool:
            _, verb, resource, scope = check
            return install.can(*_can_i_args(verb, resource), *scope)

        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:  # one kubectl process per question
            answers = list(pool.map(answer, matrix))
    unexpected = [
        f"{'allowed' if got else 'denied'}: {verb} {resource} ({' '.join(scope) or 'cluster'})"
        for (expected, verb, resource, scope), got in zip(matrix, answers, strict=True)
        if got != expected
    ]
    outcome = f"{len(matrix) - len(unexpected)} of {len(matrix)} can-i checks as expected"
    record_check(
        "privilege",
        f"operator RBAC (namespaced) x can-i matrix: {len(VERBS)} verbs x "
        f"{len(NEEDED_IN_WATCHED) + len(NEEDED_CLUSTER_WIDE)} resources, watched / unwatched / cluster",
        outcome,
        passed=not unexpected,
        detail="; ".join(unexpected),
    )
    for problem in unexpected:
        record_check("privilege", f"operator RBAC: {problem}", "unexpected", passed=False)
    assert sum(expected for expected, *_ in matrix) == sum(map(len, NEEDED_IN_WATCHED.values())) + 6
    assert unexpected == [], outcome
