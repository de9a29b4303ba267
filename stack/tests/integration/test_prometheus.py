"""Prometheus scrapes what is registered with ``add_targets`` and forgets it after removal."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from checkout_stack.components.prometheus import Prometheus
from checkout_stack.metrics import PrometheusQuery
from checkout_stack.processes import ProcessError
from checkout_stack.settings import StackSettings

pytestmark = pytest.mark.integration


@pytest.fixture
def exporter() -> Iterator[tuple[str, float]]:
    """A metrics endpoint on an ephemeral loopback port serving one gauge with a unique value."""
    registry = CollectorRegistry()
    value = float(secrets.randbelow(1_000_000_000) + 1)
    gauge = Gauge("checkout_stack_probe_value", "A value only this test run knows.", registry=registry)
    gauge.set(value)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    yield f"127.0.0.1:{server.server_port}", value
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _active_jobs(prometheus_url: str) -> set[str]:
    response = httpx.get(f"{prometheus_url}/api/v1/targets", params={"state": "active"}, timeout=5)
    response.raise_for_status()
    return {target["labels"]["job"] for target in response.json()["data"]["activeTargets"]}


def test_registered_target_is_scraped_then_forgotten(
    prometheus: Prometheus,
    prometheus_url: str,
    prometheus_query: PrometheusQuery,
    exporter: tuple[str, float],
) -> None:
    address, value = exporter
    job = f"probe-{uuid.uuid4().hex[:12]}"
    path = prometheus.add_targets(job, [address], {"suite": "integration"})
    try:
        assert path.name == f"{job}.json"
        samples = prometheus_query.wait_for(
            f'checkout_stack_probe_value{{job="{job}"}}',
            lambda result: any(float(s["value"][1]) == value for s in result),
            timeout_s=60,
        )
        assert samples[0]["metric"]["suite"] == "integration"
        assert samples[0]["metric"]["instance"] == address
    finally:
        prometheus.remove_targets(job)

    deadline = time.monotonic() + 30
    while job in _active_jobs(prometheus_url):
        assert time.monotonic() < deadline, f"job {job} still scraped 30s after remove_targets"
        time.sleep(1)


def test_promtool_rejects_a_broken_configuration(tmp_path: Path) -> None:
    broken = Prometheus(StackSettings(run_dir=tmp_path))
    broken.config_path.parent.mkdir(parents=True)
    broken.config_path.write_text("scrape_configs:\n  - job_name: x\n    scrape_interval: soon\n")
    with pytest.raises(ProcessError, match="promtool rejected"):
        broken.check_config()
