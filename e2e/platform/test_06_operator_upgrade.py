"""`helm upgrade` of the operator chart with a live platform and traffic: the operator rolls, nothing is lost."""

from __future__ import annotations

import time

import pytest
from deployed import DeployedPlatform, Traffic, topic_config
from saga_platform import Client, outcome

pytestmark = pytest.mark.integration


def test_upgrading_the_operator_chart_during_traffic_loses_no_saga(platform: DeployedPlatform, client: Client) -> None:
    with Traffic(platform, "PE2E-TRAFFIC") as traffic:
        time.sleep(2)
        old = {p["metadata"]["name"] for p in platform.operator_pods()}
        began = time.monotonic()
        platform.install_operator(logLevel="DEBUG", reconcile={"intervalS": 15})
        new = platform.wait_new_operator(old)
        rolled = time.monotonic() - began
        revision = platform.cluster.helm_run("history", platform.release, "-n", platform.system_namespace)
        platform.patch({"spec": {"kafka": {"topics": {"checkout-events": {"config": {"retention.ms": "172800000"}}}}}})
        platform.wait_ready(timeout_s=120)
        time.sleep(2)
    deployment = platform.cluster.get("deployment", platform.release, platform.system_namespace)
    assert deployment is not None
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (env["LOG_LEVEL"], env["RECONCILE__INTERVAL_S"]) == ("DEBUG", "15")
    assert "upgrade" in revision.lower(), revision
    topic = f"{platform.prefix}.checkout-events"
    assert topic_config(platform.target.host.kafka_bootstrap, topic, "retention.ms") == "172800000"
    assert traffic.refused == []
    final = traffic.settle(client)
    assert len(final) >= 10, "the traffic never got going"
    outcomes = sorted({outcome(f) for f in final})
    platform.record(
        f"helm upgrade of the operator during traffic (→ {new[-5:]})", f"{len(final)} sagas: {outcomes}", rolled
    )
    assert outcomes == ["COMPLETED"]
