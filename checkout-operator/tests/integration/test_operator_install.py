"""The install path: `helm install` of charts/checkout-operator, then operators running as its ServiceAccount.

The chart's Deployment is scaled to zero (kwok would only pretend to run it); the operator runs as a local
process authenticated with a token of the chart's ServiceAccount, so every request it makes is checked
against the chart's least-privilege RBAC. Two such processes share the chart's KopfPeering: only the
higher priority acts, and the other takes over when it leaves.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import (
    ADMIN_SECRET,
    ROOT,
    Kube,
    OperatorFactory,
    Postgres,
    is_ready,
    platform_manifest,
    ready_condition,
    unique,
    wait_for,
)

pytestmark = pytest.mark.integration

OPERATOR_CHART = ROOT / "charts" / "checkout-operator"


@pytest.fixture
def installed(helm: Path, kubeconfig: Path, kube: Kube, namespace: str) -> Iterator[str]:
    """The operator chart installed for the test namespace; yields the operator's ServiceAccount name."""
    release = "cop"
    args = [
        str(helm),
        f"--kubeconfig={kubeconfig}",
        "install",
        release,
        str(OPERATOR_CHART),
        "--namespace",
        namespace,
        "--set",
        f"watchNamespaces={{{namespace}}}",
        "--set",
        "replicaCount=0",
        "--wait",
        "--timeout",
        "120s",
    ]
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    accounts = json.loads(kube.run("-n", namespace, "get", "serviceaccounts", "-o", "json").stdout)["items"]
    [account] = [a["metadata"]["name"] for a in accounts if "checkout-operator" in a["metadata"]["name"]]
    yield account
    # Platforms go first (their finalizer needs an operator); the operators fixture handles that.
    subprocess.run(
        [str(helm), f"--kubeconfig={kubeconfig}", "uninstall", release, "--namespace", namespace, "--wait"],
        capture_output=True,
        timeout=180,
        check=False,
    )


def service_account_kubeconfig(kube: Kube, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount (a bound token, as a Pod would have)."""
    token = kube.run("-n", namespace, "create", "token", account, "--duration=1h").stdout.strip()
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [
            {"name": account, "context": {"cluster": cluster["name"], "user": account, "namespace": namespace}}
        ],
        "current-context": account,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def as_operator(
    installed: str, kube: Kube, namespace: str, operators: OperatorFactory, tmp_path: Path
) -> OperatorFactory:
    """Operators of this namespace, authenticated as the chart's ServiceAccount."""
    operators.kubeconfig = service_account_kubeconfig(kube, namespace, installed, tmp_path / "operator.kubeconfig")
    return operators


@pytest.fixture
def manifest(pg: Postgres, platform_database: str, kafka_bootstrap_servers: str) -> dict[str, Any]:
    return platform_manifest("shop", unique("cop"), kafka_bootstrap_servers, pg, platform_database, ADMIN_SECRET)


def get(kube: Kube, namespace: str) -> dict[str, Any] | None:
    return kube.get("checkoutplatform", "shop", namespace)


def wait_ready(kube: Kube, namespace: str, generation: int = 1) -> dict[str, Any]:
    def probe() -> Any:
        obj = get(kube, namespace)
        if is_ready(obj) and obj is not None and obj["metadata"]["generation"] >= generation:
            return obj
        return ready_condition(obj)

    return wait_for(f"Ready=True at generation {generation}", probe, 120)


def test_operator_with_the_charts_rbac_converges_a_platform(
    kube: Kube, namespace: str, as_operator: OperatorFactory, manifest: dict[str, Any]
) -> None:
    operator = as_operator.start(standalone=False)
    assert kube.apply(manifest, namespace).returncode == 0
    obj = wait_ready(kube, namespace)
    assert {s["name"] for s in obj["status"]["services"]} == {
        "gateway-bff",
        "checkout-orchestrator",
        "inventory",
        "payment",
        "order",
    }
    assert "forbidden" not in operator.log().lower()  # every request was within the chart's RBAC
    # What a user reads with `kubectl get cop -o wide` and `kubectl describe cop`.
    wide = kube.run("-n", namespace, "get", "checkoutplatforms", "-o", "wide").stdout
    assert "Reconciled" in wide
    described = kube.run("-n", namespace, "describe", "checkoutplatform", "shop").stdout
    assert "Reason:                Reconciled" in described
    assert "Message:               topics, database and workloads match the spec" in described
    (ROOT / ".run" / "operator-tests").mkdir(parents=True, exist_ok=True)
    (ROOT / ".run" / "operator-tests" / "describe.txt").write_text(f"$ kubectl get cop -o wide\n{wide}\n{described}")


def test_two_operators_never_both_act_and_the_standby_takes_over(
    kube: Kube, namespace: str, as_operator: OperatorFactory, manifest: dict[str, Any]
) -> None:
    # kopf starts paused and resumes once peering shows no one of a higher (or equal) priority.
    leader = as_operator.start(standalone=False, priority=200)
    wait_for("the leader to resume", lambda: "Resuming operations" in leader.log(), 60)
    standby = as_operator.start(standalone=False, priority=100)

    def peers() -> set[str]:
        peering = kube.get("kopfpeering", "checkout-operator", namespace) or {}
        return set(peering.get("status") or {})

    wait_for("both operators in the KopfPeering", lambda: len(peers()) == 2, 60)
    assert kube.apply(manifest, namespace).returncode == 0
    wait_ready(kube, namespace)
    assert "reconciled " in leader.log()
    assert "reconciled " not in standby.log()
    assert "Resuming operations" not in standby.log()

    leader.stop()
    wait_for("the standby to resume", lambda: "Resuming operations" in standby.log(), 90)
    manifest["spec"]["services"]["inventory"] = {"replicas": 2}
    assert kube.apply(manifest, namespace).returncode == 0
    obj = wait_ready(kube, namespace, generation=2)
    assert "reconciled " in standby.log()
    inventory = next(s for s in obj["status"]["services"] if s["name"] == "inventory")
    assert inventory["readyReplicas"] == 2
