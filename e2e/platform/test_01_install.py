"""`helm install` + `kubectl apply` → a Ready platform whose processes run exactly what the operator rendered."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from deployed import DeployedPlatform, topics

pytestmark = pytest.mark.integration

SERVICES = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")


def test_the_operator_chart_is_deployed_and_its_operator_runs(platform: DeployedPlatform) -> None:
    status = platform.cluster.helm_run("status", platform.release, "--namespace", platform.system_namespace)
    assert "STATUS: deployed" in status
    pods = platform.operator_pods()
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    processes = platform.target.processes(platform.system_namespace)
    if processes is not None:
        operator = processes[pods[0]["metadata"]["name"]]
        assert operator["ready"], operator
        assert operator["containers"]["operator"]["state"] == "running"


def test_kubectl_get_shows_the_platform_ready(platform: DeployedPlatform) -> None:
    table = platform.cluster.run("-n", platform.namespace, "get", "checkoutplatforms").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "TOPICS", "DATABASE", "WORKLOADS", "AGE"]
    assert table[1].split()[:5] == ["shop", "True", "True", "True", "True"]
    status = platform.resource()["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "TopicsReady": "True",
        "DatabaseReady": "True",
        "WorkloadsReady": "True",
    }
    assert sorted(s["name"] for s in status["services"]) == sorted(SERVICES)


def test_topics_schemas_and_secrets_exist(platform: DeployedPlatform) -> None:
    found = topics(platform.target.host.kafka_bootstrap, platform.prefix)
    assert found == {
        f"{platform.prefix}.checkout-events": 6,
        f"{platform.prefix}.inventory-command": 3,
        f"{platform.prefix}.payment-command": 3,
        f"{platform.prefix}.order-command": 3,
        f"{platform.prefix}.dlq": 1,
    }
    for service in SERVICES:
        secret = platform.cluster.get("secret", f"shop-{service}-database", platform.namespace)
        assert secret is not None
        assert set(secret["data"]) == {"username", "password", "schema", "url"}


def test_every_deployment_runs_its_replicas_as_processes(platform: DeployedPlatform) -> None:
    counts = platform.target.wait_workloads(platform.namespace, timeout_s=60)
    assert counts == {f"shop-{s}": (2 if s == "gateway-bff" else 1) for s in SERVICES}
    processes = platform.target.processes(platform.namespace)
    if processes is None:
        return
    for name, pod in processes.items():
        assert pod["containers"]["migrate"]["reason"] == "Completed", (name, pod["containers"]["migrate"])
        main = [c for n, c in pod["containers"].items() if n != "migrate"]
        assert [c["state"] for c in main] == ["running"], (name, main)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_processes_run_exactly_what_the_operator_rendered(platform: DeployedPlatform) -> None:
    """The order Pod's process: the Deployment's command, its ConfigMap and Secret values, its ports."""
    processes = platform.target.processes(platform.namespace)
    if processes is None:
        pytest.skip("processes are only visible on the local control plane (kind runs them in containers)")
    deployment = platform.cluster.get("deployment", "shop-order", platform.namespace)
    assert deployment is not None
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "checkout_order"]
    config = platform.cluster.get("configmap", "shop-order", platform.namespace)
    secret = platform.cluster.get("secret", "shop-order-database", platform.namespace)
    assert config is not None
    assert secret is not None
    (pod,) = [p for name, p in processes.items() if name.startswith("shop-order-")]
    state = pod["containers"]["order"]
    argv = Path(f"/proc/{state['pid']}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    assert [a.decode() for a in argv[1:]] == ["-m", "checkout_order"]
    env = _environ(state["pid"])
    assert env["DATABASE__URL"] == base64.b64decode(secret["data"]["url"]).decode()
    for key in ("KAFKA__BOOTSTRAP_SERVERS", "KAFKA__TOPIC_PREFIX", "DATABASE__SCHEMA", "OTEL_SERVICE_NAME"):
        assert env[key] == config["data"][key], key
    # The one network rewrite: the containerPort becomes the process's own local port.
    container_port = container["ports"][0]["containerPort"]
    assert env["HTTP__PORT"] == str(state["ports"][str(container_port)])
    assert env["HTTP__HOST"] == "127.0.0.1"
    # The gateway reaches the orchestrator through its Service (rewritten to the Service's local proxy).
    (gateway, *_) = [p for name, p in processes.items() if name.startswith("shop-gateway-bff-")]
    gateway_env = _environ(gateway["containers"]["gateway-bff"]["pid"])
    orchestrator = platform.url("checkout-orchestrator")
    assert gateway_env["UPSTREAMS__ORCHESTRATOR_URL"] == orchestrator
