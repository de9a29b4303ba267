"""Least privilege of the deployed platform: generated passwords stay in their Secrets, Pods are isolated and locked.

Runs after the scenarios (checkouts, scaling, operator restart and upgrade) so the logs, Events and status it
searches hold a whole run's worth, and before the deletion. Every generated password (the per-service Secrets'
``password``) is looked for, raw and URL-encoded, in every ConfigMap of both namespaces, the CheckoutPlatform
(spec, status, annotations), every Event of both namespaces, and every process log of the operator and the
services (the node agent's ``node/pods/*/*.log`` on the local control plane, ``kubectl logs`` on kind).
Results go to the reliability ledger (section ``privilege``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any, Final
from urllib.parse import quote

import pytest
from chaos_ledger import record_check
from deployed import DeployedPlatform

pytestmark = pytest.mark.integration

SERVICES: Final = ("gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart")
PLATFORM_LABEL: Final = "checkout.platform.io/platform"
CALLED_OVER_HTTP: Final = {"gateway-bff", "checkout-orchestrator", "cart"}
"""Services with an ingress rule (the public gateway; the two it calls); the others take no connections."""


def generated_passwords(platform: DeployedPlatform) -> dict[str, str]:
    """Each service's generated password, from its Secret."""
    passwords = {}
    for service in SERVICES:
        secret = platform.cluster.get("secret", f"{platform.name}-{service}-database", platform.namespace)
        assert secret is not None, f"no Secret for {service}"
        passwords[service] = base64.b64decode(secret["data"]["password"]).decode()
        # The search below finds a password where it is: in its own Secret (base64) and DSN (URL-encoded).
        assert any(form in json.dumps(secret) for form in forms(passwords[service]))
        url = base64.b64decode(secret["data"]["url"]).decode()
        assert any(form in url for form in forms(passwords[service]))
    assert all(len(password) >= 16 for password in passwords.values()), "generated passwords are long and random"
    return passwords


def forms(password: str) -> set[str]:
    """How a password could show up in text: as is, URL-encoded (in a DSN), base64 (copied out of a Secret)."""
    return {password, quote(password, safe=""), base64.b64encode(password.encode()).decode()}


def log_texts(platform: DeployedPlatform) -> Iterator[tuple[str, str]]:
    """(where, text) of every process log of the operator and the services."""
    processes = platform.target.processes(platform.namespace)
    if processes is not None:  # local: the node agent writes each container's output under node/pods/
        pods_dir = platform.run_dir / "node" / "pods"
        files = sorted(pods_dir.glob("*/*.log"))
        assert any("checkout-operator" in path.parent.name for path in files), f"no operator log in {pods_dir}"
        for service in SERVICES:
            assert any(f"_{platform.workload(service)}-" in path.parent.name for path in files), f"no {service} log"
        for path in files:
            yield str(path.relative_to(platform.run_dir)), path.read_text(errors="replace")
        return
    for namespace in (platform.system_namespace, platform.namespace):  # kind: the kubelet has them
        for pod in platform.cluster.list("pods", namespace):
            name = pod["metadata"]["name"]
            logs = platform.cluster.run("-n", namespace, "logs", name, "--all-containers", "--prefix", check=False)
            yield f"pod {namespace}/{name}", logs.stdout


def searched_places(platform: DeployedPlatform) -> Iterator[tuple[str, str]]:
    """(where, text) of every place a password must never be."""
    for namespace in (platform.namespace, platform.system_namespace):
        for config in platform.cluster.list("configmaps", namespace):
            yield f"ConfigMap {namespace}/{config['metadata']['name']}", json.dumps(config)
        for event in platform.cluster.list("events", namespace):
            yield f"Event {namespace}/{event['metadata']['name']}", json.dumps(event)
    resource = platform.resource()
    yield "CheckoutPlatform spec", json.dumps(resource["spec"])
    yield "CheckoutPlatform status", json.dumps(resource.get("status", {}))
    yield "CheckoutPlatform metadata", json.dumps(resource["metadata"])
    yield from log_texts(platform)


def test_generated_passwords_appear_nowhere_but_their_secrets(platform: DeployedPlatform) -> None:
    passwords = generated_passwords(platform)
    places: dict[str, int] = {}
    leaks: list[str] = []
    for where, text in searched_places(platform):
        kind = where.split(" ", 1)[0] if not where.endswith(".log") else "log"
        places[kind] = places.get(kind, 0) + 1
        for service, password in passwords.items():
            if any(form in text for form in forms(password)):
                leaks.append(f"{service}'s password in {where}")
                record_check("privilege", f"{service}'s generated password in {where}", "found", passed=False)
    assert places.get("ConfigMap", 0) >= len(SERVICES)
    assert places.get("Event", 0) > 0
    assert places.get("log", places.get("pod", 0)) >= len(SERVICES) + 1
    searched = ", ".join(f"{count} {kind}" for kind, count in sorted(places.items()))
    record_check(
        "privilege",
        f"{len(passwords)} generated passwords (raw, URL-encoded, base64) x ConfigMaps, Events, the CR, process logs",
        "found nowhere" if not leaks else f"{len(leaks)} leaks",
        passed=not leaks,
        detail=f"searched {searched}",
    )
    assert leaks == []


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector uses more than matchLabels: {selector}"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def test_each_service_has_a_network_policy_and_every_platform_pod_is_isolated_both_ways(
    platform: DeployedPlatform,
) -> None:
    policies = platform.cluster.list("networkpolicies", platform.namespace)
    by_name = {policy["metadata"]["name"]: policy for policy in policies}
    problems: list[str] = []
    for service in SERVICES:
        policy = by_name.get(platform.workload(service))
        if policy is None:
            problems.append(f"{service}: no NetworkPolicy {platform.workload(service)}")
            continue
        spec = policy["spec"]
        if sorted(spec.get("policyTypes", [])) != ["Egress", "Ingress"]:
            problems.append(f"{service}: policyTypes {spec.get('policyTypes')}")
        if service not in CALLED_OVER_HTTP and spec.get("ingress"):
            problems.append(f"{service}: admits ingress it does not need: {spec['ingress']}")
        for rule in spec.get("ingress") or []:
            if [port["port"] for port in rule.get("ports", [])] != ["http"]:
                problems.append(f"{service}: ingress beyond the service port: {rule}")
    pods = platform.cluster.list("pods", platform.namespace, PLATFORM_LABEL)
    # Earlier scenarios may have scaled a service to 0 (the operator rows do): a Pod per running Deployment.
    deployments = platform.cluster.list("deployments", platform.namespace, PLATFORM_LABEL)
    running = [d["metadata"]["name"] for d in deployments if d["spec"].get("replicas", 1) > 0]
    assert len(pods) >= len(running) > 0, f"{len(pods)} platform Pods for the running Deployments {running}"
    isolating = [
        policy["spec"]["podSelector"]
        for policy in policies
        if {"Ingress", "Egress"} <= set(policy["spec"].get("policyTypes", []))
    ]
    for pod in pods:
        labels = pod["metadata"].get("labels", {})
        if not any(_selects(selector, labels) for selector in isolating):
            problems.append(f"pod {pod['metadata']['name']}: no policy isolates it for Ingress and Egress")
    record_check(
        "privilege",
        f"NetworkPolicy per service ({len(SERVICES)}), default deny both ways for {len(pods)} platform Pods",
        "every service has one; every Pod isolated" if not problems else f"{len(problems)} problems",
        passed=not problems,
        detail="; ".join(problems),
    )
    assert problems == []


def _container_problems(pod: Mapping[str, Any]) -> Iterator[str]:
    spec = pod["spec"]
    pod_context = spec.get("securityContext", {})
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        context = container.get("securityContext", {})
        name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}/{container['name']}"
        if context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is not True:
            yield f"{name}: runAsNonRoot not set"
        if context.get("runAsUser", pod_context.get("runAsUser", 0)) == 0:
            yield f"{name}: runs as uid 0"
        if context.get("readOnlyRootFilesystem") is not True:
            yield f"{name}: root filesystem writable"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"{name}: privilege escalation allowed"
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            yield f"{name}: capabilities not all dropped"
        if context.get("capabilities", {}).get("add"):
            yield f"{name}: capabilities added {context['capabilities']['add']}"
        if context.get("privileged"):
            yield f"{name}: privileged"


def test_every_container_runs_non_root_on_a_read_only_root_filesystem(platform: DeployedPlatform) -> None:
    pods = [
        *platform.cluster.list("pods", platform.namespace),
        *platform.cluster.list("pods", platform.system_namespace),
    ]
    containers = sum(len(p["spec"]["containers"]) + len(p["spec"].get("initContainers", [])) for p in pods)
    problems = [problem for pod in pods for problem in _container_problems(pod)]
    record_check(
        "privilege",
        f"securityContext of {containers} containers in {len(pods)} Pods (services and operator)",
        "all non-root, read-only root filesystem, no privilege escalation, capabilities drop ALL"
        if not problems
        else f"{len(problems)} problems",
        passed=not problems,
        detail="; ".join(problems),
    )
    deployments = platform.cluster.list("deployments", platform.namespace, PLATFORM_LABEL)
    running = sum(1 for d in deployments if d["spec"].get("replicas", 1) > 0)
    assert len(pods) > running > 0, "a Pod per running Deployment of the platform, and the operator's"
    assert problems == []
