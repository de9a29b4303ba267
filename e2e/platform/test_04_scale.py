"""Scaling a service in the CheckoutPlatform: the Deployment follows, and so do the running processes."""

from __future__ import annotations

import asyncio
import time

import pytest
from deployed import DeployedPlatform, consumer_group_members
from saga_platform import checkout_body, outcome, run_concurrently

pytestmark = pytest.mark.integration


def _replicas(platform: DeployedPlatform, service: str) -> int:
    deployment = platform.cluster.get("deployment", platform.workload(service), platform.namespace)
    assert deployment is not None
    return int(deployment["spec"]["replicas"])


def test_scaling_inventory_up_and_down_moves_processes_and_consumers(platform: DeployedPlatform) -> None:
    began = time.monotonic()
    platform.patch({"spec": {"services": {"inventory": {"replicas": 2}}}})
    platform.wait_ready()
    assert _replicas(platform, "inventory") == 2
    counts = platform.target.wait_workloads(platform.namespace, timeout_s=120)
    assert counts[platform.workload("inventory")] == 2
    scaled_up = time.monotonic() - began
    processes = platform.target.processes(platform.namespace)
    if processes is not None:
        inventory = [p for name, p in processes.items() if name.startswith(f"{platform.workload('inventory')}-")]
        pids = {p["containers"]["inventory"]["pid"] for p in inventory}
        assert len(pids) == 2, inventory
    # Both processes joined the inventory's consumer group and share the command topic's partitions.
    group = f"{platform.prefix}.inventory"
    members = consumer_group_members(platform.target.host.kafka_bootstrap, group, expected=2)
    assert len(members) == 2, members
    bodies = [checkout_body({"PE2E-SCALE": 1}, customer=f"cust_scale_{i}") for i in range(20)]
    final, _ = asyncio.run(run_concurrently(platform, bodies, timeout_s=120, poll_interval_s=1.0))
    assert {outcome(f) for f in final} == {"COMPLETED"}
    platform.record("scale inventory 1 → 2 (apply → 2 processes ready)", "2 consumers, 20 COMPLETED", scaled_up)

    began = time.monotonic()
    platform.patch({"spec": {"services": {"inventory": {"replicas": 1}}}})
    platform.wait_ready()
    counts = platform.target.wait_workloads(platform.namespace, timeout_s=120)
    assert counts[platform.workload("inventory")] == 1
    members = consumer_group_members(platform.target.host.kafka_bootstrap, group, expected=1)
    assert len(members) == 1, members
    platform.record("scale inventory 2 → 1", "1 process, 1 consumer", time.monotonic() - began)
