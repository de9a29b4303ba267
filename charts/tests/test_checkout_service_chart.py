"""The checkout-service chart: lint, render, schema, security, and the real API server of the pinned version."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkout_stack import versions

pytestmark = pytest.mark.integration

CHART = Path(__file__).resolve().parents[1] / "checkout-service"
VALUES_FILES = {"full": CHART / "ci" / "full-values.yaml", "minimal": CHART / "ci" / "minimal-values.yaml"}
SERVICES = {
    "gateway-bff": ("checkout_gateway", 8100, "gateway"),
    "checkout-orchestrator": ("checkout_orchestrator", 8101, "orchestrator"),
    "inventory": ("checkout_inventory", 8102, "inventory"),
    "payment": ("checkout_payment", 8103, "payment"),
    "order": ("checkout_order", 8104, "orders"),
    "cart": ("checkout_cart", 8106, "cart"),
}
# Every way the chart is rendered in this module: (id, helm arguments).
RENDERINGS = [(name, ["--set", f"service.name={name}"]) for name in SERVICES] + [
    (label, ["-f", str(path)]) for label, path in VALUES_FILES.items()
]
WAIT_S = 120
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


def render(helm: Path, *args: str, namespace: str = "checkout", release: str = "rel") -> list[dict[str, Any]]:
    out = run(
        helm, "template", release, str(CHART), "--namespace", namespace, "--kube-version", versions.KUBERNETES, *args
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def all_containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.fixture(scope="module")
def rendered(helm: Path) -> dict[str, list[dict[str, Any]]]:
    return {label: render(helm, *args) for label, args in RENDERINGS}


@pytest.fixture
def namespace(kubectl: Path, kubeconfig: Path) -> Iterator[str]:
    name = f"chart-test-{uuid.uuid4().hex[:8]}"
    run(kubectl, f"--kubeconfig={kubeconfig}", "create", "namespace", name)
    yield name
    run(kubectl, f"--kubeconfig={kubeconfig}", "delete", "namespace", name, "--wait=false")


@pytest.mark.parametrize("values", [None, *VALUES_FILES.values()], ids=["defaults", *VALUES_FILES])
def test_helm_lint_strict_passes(helm: Path, values: Path | None) -> None:
    args = ["-f", str(values)] if values else []
    result = run(helm, "lint", "--strict", str(CHART), *args)
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_renders_with_its_identity(rendered: dict[str, list[dict[str, Any]]], service: str) -> None:
    package, port, schema = SERVICES[service]
    docs = rendered[service]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceAccount"]
    [deployment] = by_kind(docs, "Deployment")
    [config] = by_kind(docs, "ConfigMap")
    [svc] = by_kind(docs, "Service")
    assert deployment["metadata"]["name"] == f"rel-{service}"
    labels = deployment["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == service
    assert labels["app.kubernetes.io/instance"] == "rel"
    assert labels["app.kubernetes.io/component"] == service
    assert labels["app.kubernetes.io/part-of"] == "checkout-platform"
    assert labels["app.kubernetes.io/managed-by"] == "Helm"
    assert labels["app.kubernetes.io/version"]
    pod = deployment["spec"]["template"]["spec"]
    [init] = pod["initContainers"]
    [main] = pod["containers"]
    assert main["command"] == ["python", "-m", package]
    assert init["command"] == ["python", "-m", package, "migrate"]
    assert init["image"] == main["image"] == f"checkout-platform/{service}:0.1.0"
    assert main["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert svc["spec"]["ports"][0]["port"] == port
    assert svc["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert config["data"]["SERVICE_NAME"] == service
    assert config["data"]["HTTP__PORT"] == str(port)
    assert config["data"]["HTTP__HOST"] == "0.0.0.0"  # noqa: S104 - a pod binds all its interfaces
    assert config["data"]["DATABASE__SCHEMA"] == schema
    assert pod["terminationGracePeriodSeconds"] == 45
    assert pod["automountServiceAccountToken"] is False


def test_full_values_turn_every_optional_feature_on(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["full"]
    assert sorted(d["kind"] for d in docs) == [
        "ConfigMap",
        "Deployment",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    [monitor] = by_kind(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    [pdb] = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    [policy] = by_kind(docs, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]  # the public gateway
    egress = policy["spec"]["egress"]
    assert {p["port"] for p in egress[0]["ports"]} == {53}
    assert [
        ([b["ipBlock"]["cidr"] for b in rule["to"]], [p["port"] for p in rule["ports"]]) for rule in egress[1:5]
    ] == [
        (["10.0.10.0/24"], [9092, 9093]),
        (["10.0.20.5/32"], [5432]),
        (["10.0.30.0/24"], [4318]),  # the OTLP endpoint's port, from tracing.endpoint
        (["10.0.40.0/24"], [443]),
    ]
    assert [rule["to"][0]["podSelector"]["matchLabels"] for rule in egress[5:]] == [
        {"app.kubernetes.io/name": "checkout-orchestrator", "checkout.platform.io/platform": "prod"},
        {"app.kubernetes.io/name": "cart", "checkout.platform.io/platform": "prod"},
    ]
    [config] = by_kind(docs, "ConfigMap")
    assert config["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert config["data"]["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert config["data"]["OTEL_TRACES_SAMPLER_ARG"] == "0.25"
    assert config["data"]["KAFKA__TOPIC_PREFIX"] == "prod.checkout"
    [deployment] = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 3
    assert pod["terminationGracePeriodSeconds"] == 60
    assert pod["serviceAccountName"] == "gateway-sa"
    main = pod["containers"][0]
    assert main["resources"]["limits"]["memory"] == "256Mi"
    assert pod["initContainers"][0]["resources"]["requests"]["cpu"] == "50m"
    env_names = [e["name"] for e in main["env"]]
    assert env_names == ["DATABASE__URL", "SHUTDOWN_GRACE_S", "POD_NAME", "FEATURE_FLAG"]


def test_minimal_values_render_only_the_essentials(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["minimal"]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service"]
    [deployment] = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod
    assert pod["serviceAccountName"] == "default"
    [config] = by_kind(docs, "ConfigMap")
    assert config["data"]["OTEL_SDK_DISABLED"] == "true"


@pytest.mark.parametrize("label", [label for label, _ in RENDERINGS])
def test_every_container_is_locked_down_and_probed(rendered: dict[str, list[dict[str, Any]]], label: str) -> None:
    [deployment] = by_kind(rendered[label], "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    for container in all_containers(deployment):
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True, container["name"]
        assert sc["runAsUser"] == 10001
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108 - the emptyDir mount
    main = pod["containers"][0]
    assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    if label != "full":
        for container in all_containers(deployment):
            assert "resources" not in container, "no default resources"


# --- NetworkPolicy: on by default, default deny, only what each service needs -----------------------------------

CALLED_BY = {"checkout-orchestrator": "gateway-bff", "cart": "gateway-bff"}
"""Who calls whom over HTTP: the gateway reads sagas from the orchestrator and proxies carts."""
WITHOUT_KAFKA = {"cart"}


def rule_ports(rule: dict[str, Any]) -> list[Any]:
    return [port["port"] for port in rule["ports"]]


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_a_default_deny_network_policy_by_default(
    rendered: dict[str, list[dict[str, Any]]], service: str
) -> None:
    docs = rendered[service]
    [policy] = by_kind(docs, "NetworkPolicy")
    [deployment] = by_kind(docs, "Deployment")
    spec = policy["spec"]
    assert spec["podSelector"] == deployment["spec"]["selector"]  # exactly the service's Pods
    assert spec["policyTypes"] == ["Ingress", "Egress"]  # isolated both ways: what is not listed is denied
    [main] = deployment["spec"]["template"]["spec"]["containers"]
    assert [port["name"] for port in main["ports"]] == ["http"]  # the named port the rules admit

    if service == "gateway-bff":
        assert spec["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    elif service in CALLED_BY:
        assert spec["ingress"] == [
            {
                "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": CALLED_BY[service]}}}],
                "ports": [{"port": "http", "protocol": "TCP"}],
            }
        ]
    else:
        assert spec["ingress"] == []  # nobody calls it: Kafka in, Kafka out

    dns, *rest = spec["egress"]
    assert "to" not in dns
    assert sorted(rule_ports(dns)) == [53, 53]
    expected = [[5432]] if service in WITHOUT_KAFKA else [[9092], [5432]]
    assert [rule_ports(rule) for rule in rest] == expected  # no OTLP without tracing, no upstream Services unset
    assert all(rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}] for rule in rest)


def test_the_operators_values_narrow_the_policy_to_the_platform_and_its_endpoints(helm: Path, tmp_path: Path) -> None:
    """The values the operator derives for a platform, rendered by the real chart (as the operator does)."""
    from checkout_operator.reconcilers.workloads import Owner, chart_values
    from checkout_operator.spec import PlatformSpec

    spec = PlatformSpec.parse(
        {
            "kafka": {"bootstrapServers": ["kafka-0.kafka:9094", "kafka-1.kafka:9094"], "topicPrefix": "shop"},
            "postgres": {"host": "10.1.2.3", "port": 6432, "database": "main", "adminSecretRef": {"name": "admin"}},
            "tracing": {"otlpEndpoint": "http://10.9.9.9:4318"},
        }
    )
    policies = {}
    for service in ("gateway-bff", "cart"):
        values = tmp_path / f"{service}.json"
        values.write_text(json.dumps(chart_values(Owner(name="shop", namespace="team", uid="u"), spec, service)))
        [policies[service]] = by_kind(render(helm, "-f", str(values), release=f"shop-{service}"), "NetworkPolicy")

    gateway = policies["gateway-bff"]["spec"]
    _, kafka, postgres, otlp, *upstreams = gateway["egress"]
    assert (kafka["to"], rule_ports(kafka)) == ([{"ipBlock": {"cidr": "0.0.0.0/0"}}], [9094])
    assert (postgres["to"], rule_ports(postgres)) == ([{"ipBlock": {"cidr": "10.1.2.3/32"}}], [6432])
    assert (otlp["to"], rule_ports(otlp)) == ([{"ipBlock": {"cidr": "10.9.9.9/32"}}], [4318])
    platform = {"checkout.platform.io/platform": "shop"}
    assert [rule["to"][0]["podSelector"]["matchLabels"] for rule in upstreams] == [
        {"app.kubernetes.io/name": "checkout-orchestrator", **platform},
        {"app.kubernetes.io/name": "cart", **platform},
    ]
    cart = policies["cart"]["spec"]
    assert cart["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gateway-bff", **platform}}}
    ]


def test_the_network_policy_can_be_turned_off_or_opened(helm: Path) -> None:
    assert by_kind(render(helm, "--set", "networkPolicy.enabled=false"), "NetworkPolicy") == []
    [opened] = by_kind(
        render(helm, "--set", "service.name=order", "--set", "networkPolicy.ingress.fromAnywhere=true"), "NetworkPolicy"
    )
    assert opened["spec"]["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}]
    [closed] = by_kind(
        render(helm, "--set", "service.name=gateway-bff", "--set", "networkPolicy.ingress.fromAnywhere=false"),
        "NetworkPolicy",
    )
    assert closed["spec"]["ingress"] == []


def test_the_gateways_rate_limit_is_set_through_values_and_left_to_its_defaults_otherwise(
    helm: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    [default] = by_kind(rendered["gateway-bff"], "ConfigMap")
    assert not [key for key in default["data"] if key.startswith("RATE_LIMIT__")]  # the gateway's own defaults
    docs = render(
        helm,
        "--set",
        "service.name=gateway-bff",
        "--set",
        "rateLimit.enabled=true",
        "--set-json",
        "rateLimit.requestsPerS=7.5",
        "--set",
        "rateLimit.burst=30",
        "--set",
        "rateLimit.clientHeader=X-Forwarded-For",
    )
    [config] = by_kind(docs, "ConfigMap")
    assert {key: value for key, value in config["data"].items() if key.startswith("RATE_LIMIT__")} == {
        "RATE_LIMIT__ENABLED": "true",
        "RATE_LIMIT__REQUESTS_PER_S": "7.5",
        "RATE_LIMIT__BURST": "30",
        "RATE_LIMIT__CLIENT_HEADER": "X-Forwarded-For",
    }
    refused = run(
        helm,
        "template",
        "rel",
        str(CHART),
        "--kube-version",
        versions.KUBERNETES,
        "--set",
        "rateLimit.burst=0",
        check=False,
    )
    assert "/rateLimit/burst" in refused.stderr


@pytest.mark.parametrize("label", [label for label, _ in RENDERINGS])
def test_database_url_comes_only_from_a_secret(rendered: dict[str, list[dict[str, Any]]], label: str) -> None:
    docs = rendered[label]
    for config in by_kind(docs, "ConfigMap"):
        assert "DATABASE__URL" not in config["data"]
        assert not any("postgres" in v for v in config["data"].values())
    [deployment] = by_kind(docs, "Deployment")
    for container in all_containers(deployment):
        db = [e for e in container["env"] if e["name"] == "DATABASE__URL"]
        assert len(db) == 1, container["name"]
        assert "value" not in db[0]
        ref = db[0]["valueFrom"]["secretKeyRef"]
        expected = {"full": ("gateway-db", "dsn"), "minimal": ("inventory-db", "url")}.get(label)
        assert (ref["name"], ref["key"]) == (expected or (f"rel-{label}-database", "url"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "additional properties 'bogus' not allowed"),
        (["--set", "kafka.extra=1"], "additional properties 'extra' not allowed"),
        (["--set", "replicaCount=-1"], "/replicaCount"),
        (["--set", "service.name=shipping"], "/service/name"),
        (["--set", "tracing.samplerRatio=1.5"], "/tracing/samplerRatio"),
        (["--set", "logLevel=TRACE"], "/logLevel"),
    ],
    ids=["unknown-key", "unknown-nested-key", "negative-replicas", "unknown-service", "ratio-above-1", "bad-level"],
)
def test_schema_rejects_bad_values(helm: Path, args: list[str], message: str) -> None:
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


def ensure_service_monitor_crd(kubectl: Path, kubeconfig: Path) -> bool:
    """Install a minimal ServiceMonitor CRD unless one is there; True when this call installed it."""
    kc = f"--kubeconfig={kubeconfig}"
    crd = SERVICE_MONITOR_CRD["metadata"]["name"]
    if run(kubectl, kc, "get", "crd", crd, check=False).returncode == 0:
        return False
    run(kubectl, kc, "create", "-f", "-", stdin=json.dumps(SERVICE_MONITOR_CRD))
    run(kubectl, kc, "wait", "--for=condition=Established", f"crd/{crd}", f"--timeout={WAIT_S}s")
    return True


@pytest.mark.parametrize(("label", "args"), RENDERINGS, ids=[label for label, _ in RENDERINGS])
def test_rendered_manifests_pass_the_real_api_server(
    helm: Path, kubectl: Path, kubeconfig: Path, namespace: str, label: str, args: list[str]
) -> None:
    docs = render(helm, *args, namespace=namespace)
    installed_crd = by_kind(docs, "ServiceMonitor") and ensure_service_monitor_crd(kubectl, kubeconfig)
    try:
        stream = "\n---\n".join(yaml.safe_dump(d) for d in docs)
        result = run(
            kubectl, f"--kubeconfig={kubeconfig}", "apply", "--dry-run=server", "-o", "name", "-f", "-", stdin=stream
        )
        applied = sorted(result.stdout.split())
        assert len(applied) == len(docs), result.stdout
    finally:
        if installed_crd:
            run(kubectl, f"--kubeconfig={kubeconfig}", "delete", "crd", SERVICE_MONITOR_CRD["metadata"]["name"])


def test_real_api_server_rejects_a_broken_manifest(helm: Path, kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    # The dry-run above can fail: a Deployment with an invalid port is refused by the server itself.
    [deployment] = by_kind(render(helm, namespace=namespace), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000
    result = run(
        kubectl,
        f"--kubeconfig={kubeconfig}",
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        stdin=json.dumps(deployment),
        check=False,
    )
    assert result.returncode != 0
    assert "containerPort" in result.stderr


def test_helm_install_runs_pods_on_kwok_nodes(helm: Path, kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    kc = f"--kubeconfig={kubeconfig}"
    run(
        kubectl,
        kc,
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "payment-db",
        "--from-literal=url=postgresql://payment:secret@postgres:5432/checkout",
    )
    run(
        helm,
        kc,
        "install",
        "checkout-payment",
        str(CHART),
        "-n",
        namespace,
        "--set",
        "service.name=payment",
        "--set",
        "replicaCount=2",
        "--set",
        "database.secretRef.name=payment-db",
        "--set",
        "podDisruptionBudget.enabled=true",
        "--wait",
        f"--timeout={WAIT_S}s",
    )
    try:
        selector = "app.kubernetes.io/instance=checkout-payment"
        deadline = time.monotonic() + WAIT_S
        while True:
            pods = json.loads(run(kubectl, kc, "-n", namespace, "get", "pods", "-l", selector, "-o", "json").stdout)
            phases = sorted(p["status"].get("phase", "") for p in pods["items"])
            if phases == ["Running", "Running"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert phases == ["Running", "Running"]
        nodes = json.loads(run(kubectl, kc, "get", "nodes", "-l", "type=kwok", "-o", "json").stdout)
        kwok_nodes = {n["metadata"]["name"] for n in nodes["items"]}
        assert {p["spec"]["nodeName"] for p in pods["items"]} <= kwok_nodes
        deployment = json.loads(
            run(kubectl, kc, "-n", namespace, "get", "deployment", "checkout-payment", "-o", "json").stdout
        )
        assert deployment["status"].get("readyReplicas") == 2
        assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == [
            "python",
            "-m",
            "checkout_payment",
        ]
        kinds = run(kubectl, kc, "-n", namespace, "get", "service,configmap,pdb,networkpolicy", "-o", "name").stdout
        for expected in (
            "service/checkout-payment",
            "configmap/checkout-payment",
            "poddisruptionbudget.policy/checkout-payment",
            "networkpolicy.networking.k8s.io/checkout-payment",
        ):
            assert expected in kinds
    finally:
        run(helm, kc, "uninstall", "checkout-payment", "-n", namespace, "--wait", f"--timeout={WAIT_S}s")
    gone = run(kubectl, kc, "-n", namespace, "get", "deployment", "checkout-payment", check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr
