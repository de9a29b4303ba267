"""The Kubernetes control plane is real: CRDs, custom objects, Deployments and Pods on kwok Nodes."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from checkout_stack import versions
from checkout_stack.components.kubernetes import EXTRA_SERVICE_CIDR

pytestmark = pytest.mark.integration


def run(binary: Path, kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [str(binary), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{binary.name} {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def namespace(kubectl: Path, kubeconfig: Path) -> Any:
    name = f"stack-test-{uuid.uuid4().hex[:8]}"
    run(kubectl, kubeconfig, "create", "namespace", name)
    yield name
    run(kubectl, kubeconfig, "delete", "namespace", name, "--wait=false")


def test_api_server_reports_the_pinned_version(kubectl: Path, kubeconfig: Path) -> None:
    info = json.loads(run(kubectl, kubeconfig, "version", "-o", "json"))
    assert info["serverVersion"]["gitVersion"] == f"v{versions.KUBERNETES}"
    assert info["clientVersion"]["gitVersion"] == f"v{versions.KUBERNETES}"


def test_custom_resource_definition_and_object_round_trip(kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    group = f"t{uuid.uuid4().hex[:8]}.stack.checkout.example"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer", "minimum": 1}},
                                    "required": ["size"],
                                }
                            },
                        }
                    },
                }
            ],
        },
    }
    run(kubectl, kubeconfig, "apply", "-f", "-", stdin=json.dumps(crd))
    try:
        run(kubectl, kubeconfig, "wait", "--for=condition=Established", f"crd/widgets.{group}", "--timeout=60s")
        widget = {
            "apiVersion": f"{group}/v1alpha1",
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": namespace},
            "spec": {"size": 3},
        }
        run(kubectl, kubeconfig, "apply", "-f", "-", stdin=json.dumps(widget))
        got = json.loads(run(kubectl, kubeconfig, "-n", namespace, "get", f"widgets.{group}", "w1", "-o", "json"))
        assert got["spec"] == {"size": 3}
        # The schema is enforced by the real API server.
        widget["metadata"]["name"] = "w2"
        widget["spec"] = {"size": 0}
        rejected = subprocess.run(
            [str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "-f", "-"],
            input=json.dumps(widget),
            capture_output=True,
            text=True,
            check=False,
        )
        assert rejected.returncode != 0
        assert "spec.size" in rejected.stderr
    finally:
        run(kubectl, kubeconfig, "delete", "crd", f"widgets.{group}", "--wait=false")


def test_deployment_gets_two_running_pods_on_kwok_nodes(kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "checkout-platform/web:1"}]},
            },
        },
    }
    run(kubectl, kubeconfig, "apply", "-f", "-", stdin=json.dumps(deployment))
    run(kubectl, kubeconfig, "-n", namespace, "rollout", "status", "deployment/web", "--timeout=120s")
    deadline = time.monotonic() + 60
    while True:
        pods = json.loads(run(kubectl, kubeconfig, "-n", namespace, "get", "pods", "-l", "app=web", "-o", "json"))
        phases = sorted(p["status"].get("phase", "") for p in pods["items"])
        if phases == ["Running", "Running"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert phases == ["Running", "Running"]
    nodes = {p["spec"]["nodeName"] for p in pods["items"]}
    node_info = json.loads(run(kubectl, kubeconfig, "get", "nodes", "-o", "json"))
    kwok_nodes = {n["metadata"]["name"] for n in node_info["items"] if n["metadata"]["labels"].get("type") == "kwok"}
    assert nodes <= kwok_nodes


def test_helm_installs_a_chart_into_the_cluster(
    helm: Path, kubectl: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v2",
                "name": "probe",
                "version": "0.1.0",
                "kubeVersion": ">=1.34.0-0",
            }
        )
    )
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-probe\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )
    run(helm, kubeconfig, "install", "probe", str(chart), "-n", namespace, "--set", "greeting=hi", "--wait")
    data = json.loads(run(kubectl, kubeconfig, "-n", namespace, "get", "configmap", "probe-probe", "-o", "json"))
    assert data["data"] == {"greeting": "hi", "kube": f"v{versions.KUBERNETES}"}
    run(helm, kubeconfig, "uninstall", "probe", "-n", namespace, "--wait")


def test_services_get_addresses_beyond_the_primary_range(kubectl: Path, kubeconfig: Path, namespace: str) -> None:
    """The extra ServiceCIDR is served: a Service may take an address the primary /24 does not hold."""
    name, cidr = EXTRA_SERVICE_CIDR
    assert json.loads(run(kubectl, kubeconfig, "get", "servicecidr", name, "-o", "json"))["spec"]["cidrs"] == [cidr]
    address = cidr.rsplit(".", 2)[0] + f".{uuid.uuid4().int % 250 + 1}.{uuid.uuid4().int % 250 + 2}"
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "wide", "namespace": namespace},
        "spec": {"clusterIP": address, "ports": [{"port": 80}], "selector": {"app": "none"}},
    }
    run(kubectl, kubeconfig, "apply", "-f", "-", stdin=yaml.safe_dump(service))
    got = run(kubectl, kubeconfig, "get", "service", "wide", "-n", namespace, "-o", "jsonpath={.spec.clusterIP}")
    assert got == address


def test_python_client_sees_ready_kwok_nodes(kube_api: Any) -> None:
    from kubernetes import client

    nodes = client.CoreV1Api(kube_api).list_node(label_selector="type=kwok").items
    assert len(nodes) >= 1
    for node in nodes:
        ready = {c.type: c.status for c in node.status.conditions}["Ready"]
        assert ready == "True", node.metadata.name


def test_client_certificate_outside_system_masters_is_forbidden(kubernetes_stack: Any, tmp_path: Path) -> None:
    # RBAC is on: the scheduler's identity may not read Secrets.
    k8s = kubernetes_stack.kubernetes
    result = subprocess.run(
        [str(k8s.tool("kubectl")), f"--kubeconfig={k8s.home / 'scheduler.kubeconfig'}", "get", "secrets", "-A"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode != 0
    assert "forbidden" in result.stderr.lower()
