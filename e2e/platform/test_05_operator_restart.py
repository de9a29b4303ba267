"""The operator's Pod deleted during traffic: a new one takes over, no checkout is lost, edits still converge."""

from __future__ import annotations

import time

import pytest
from deployed import DeployedPlatform, Traffic, topic_config
from saga_platform import Client, outcome

pytestmark = pytest.mark.integration


def test_operator_restarted_during_traffic_loses_no_saga(platform: DeployedPlatform, client: Client) -> None:
    with Traffic(platform, "PE2E-TRAFFIC") as traffic:
        time.sleep(2)
        (old,) = [p["metadata"]["name"] for p in platform.operator_pods()]
        began = time.monotonic()
        platform.cluster.run("-n", platform.system_namespace, "delete", "pod", old, "--wait=false")
        new = platform.wait_new_operator({old})
        replaced = time.monotonic() - began
        # The new operator reconciles an edit made after it started.
        platform.patch({"spec": {"kafka": {"topics": {"checkout-events": {"config": {"retention.ms": "86400000"}}}}}})
        platform.wait_ready(timeout_s=120)
        time.sleep(2)
    topic = f"{platform.prefix}.checkout-events"
    assert topic_config(platform.target.host.kafka_bootstrap, topic, "retention.ms") == "86400000"
    assert traffic.refused == []
    final = traffic.settle(client)
    assert len(final) >= 10, "the traffic never got going"
    outcomes = sorted({outcome(f) for f in final})
    platform.record(
        f"operator Pod deleted during traffic ({old[-5:]} → {new[-5:]})", f"{len(final)} sagas: {outcomes}", replaced
    )
    assert outcomes == ["COMPLETED"]
