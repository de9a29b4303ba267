"""The kit's instruments: the catalogue's names, types and labels; one set per registry; exemplars in OpenMetrics."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from checkout_kit.health import health_router
from checkout_kit.metrics import (
    DEAD_LETTERED,
    DUPLICATE,
    FAILED,
    PROCESSED,
    HttpMetrics,
    MessagingMetrics,
    PeriodicRefresh,
    instruments_of,
    service_registry,
    traceparent_exemplar,
)

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
"""What Prometheus 2.x sends when it scrapes."""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SAMPLED = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

CATALOGUE = {
    # name (as exposed, without _total/_bucket suffixes): (type, labels)
    "http_server_requests": ("counter", {"method", "route", "status"}),
    "http_server_request_duration_seconds": ("histogram", {"method", "route"}),
    "http_server_active_requests": ("gauge", {"method"}),
    "checkout_messages_consumed": ("counter", {"topic", "outcome"}),
    "checkout_message_processing_duration_seconds": ("histogram", {"topic"}),
    "checkout_consumer_lag": ("gauge", {"topic", "partition"}),
    "checkout_outbox_backlog": ("gauge", set()),
    "checkout_outbox_oldest_age_seconds": ("gauge", set()),
    "checkout_outbox_relay_latency_seconds": ("histogram", {"topic"}),
    "checkout_outbox_published": ("counter", {"topic"}),
    "checkout_dead_letters": ("counter", {"topic", "reason"}),
}
"""docs/metrics.md, HTTP and messaging sections."""


def _exercised() -> CollectorRegistry:
    registry = CollectorRegistry()
    http = HttpMetrics(registry)
    http.observe("GET", "/carts/{cart_id}", 200, 0.01)
    http.in_flight.labels("GET").set(0)
    metrics = MessagingMetrics.of(registry)
    metrics.consumed_record("t.checkout-events", PROCESSED, 0.02)
    metrics.set_lag({("t.checkout-events", 0): 3})
    metrics.set_backlog(2, 1.5)
    metrics.published_row("t.inventory-command", dt.datetime.now(dt.UTC), 0.0, None)
    metrics.dead_letters.labels("t.checkout-events", "undecodable").inc()
    return registry


def test_the_instruments_are_the_catalogues() -> None:
    families = {
        family.name: family for family in text_string_to_metric_families(generate_latest(_exercised()).decode())
    }
    for name, (kind, labels) in CATALOGUE.items():
        family = families[name]
        assert family.type == kind, name
        sample_labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        assert sample_labels == labels, name


def test_counters_and_durations_have_the_conventional_suffixes() -> None:
    text = generate_latest(_exercised()).decode()
    assert 'checkout_messages_consumed_total{outcome="processed",topic="t.checkout-events"} 1.0' in text
    assert "checkout_outbox_published_total" in text
    assert 'checkout_dead_letters_total{reason="undecodable",topic="t.checkout-events"} 1.0' in text
    assert "checkout_message_processing_duration_seconds_bucket" in text


def test_one_set_of_instruments_per_registry() -> None:
    first, second = CollectorRegistry(), CollectorRegistry()
    assert MessagingMetrics.of(first) is MessagingMetrics.of(first)
    assert MessagingMetrics.of(first) is not MessagingMetrics.of(second)
    assert instruments_of(first, MessagingMetrics) is MessagingMetrics.of(first)
    MessagingMetrics.of(first).consumed_record("a", DUPLICATE)
    assert second.get_sample_value("checkout_messages_consumed_total", {"topic": "a", "outcome": "duplicate"}) is None


def test_detached_instruments_count_where_nobody_scrapes() -> None:
    registry = service_registry()
    MessagingMetrics.detached().consumed_record("a", FAILED)
    assert registry.get_sample_value("checkout_messages_consumed_total", {"topic": "a", "outcome": "failed"}) is None


def test_the_service_registry_carries_the_process_collectors() -> None:
    names = {family.name for family in service_registry().collect()}
    assert {"process_cpu_seconds", "python_info", "python_gc_objects_collected"} <= names


def test_lag_of_a_partition_no_longer_owned_disappears() -> None:
    registry = CollectorRegistry()
    metrics = MessagingMetrics.of(registry)
    metrics.set_lag({("t", 0): 5, ("t", 1): 2})
    metrics.set_lag({("t", 0): 0}, dropped=[("t", 1), ("t", 7)])
    assert registry.get_sample_value("checkout_consumer_lag", {"topic": "t", "partition": "0"}) == 0
    assert registry.get_sample_value("checkout_consumer_lag", {"topic": "t", "partition": "1"}) is None


def test_relay_latency_is_never_negative_and_links_the_messages_trace() -> None:
    registry = CollectorRegistry()
    metrics = MessagingMetrics.of(registry)
    written = dt.datetime.now(dt.UTC)
    metrics.published_row("t", written, written.timestamp() - 5, SAMPLED)  # the database clock ahead of ours
    assert registry.get_sample_value("checkout_outbox_relay_latency_seconds_sum", {"topic": "t"}) == 0
    assert f'# {{trace_id="{TRACE_ID}"}}' in generate_latest(registry).decode()


def test_backlog_age_is_never_negative() -> None:
    registry = CollectorRegistry()
    MessagingMetrics.of(registry).set_backlog(0, -0.3)
    assert registry.get_sample_value("checkout_outbox_oldest_age_seconds") == 0


def test_only_a_sampled_traceparent_gives_an_exemplar() -> None:
    assert traceparent_exemplar(SAMPLED) == {"trace_id": TRACE_ID}
    assert traceparent_exemplar(SAMPLED[:-2] + "00") is None
    assert traceparent_exemplar(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None
    assert traceparent_exemplar("garbage") is None
    assert traceparent_exemplar(None) is None


async def test_prometheus_gets_openmetrics_with_the_exemplars() -> None:
    registry = CollectorRegistry()
    HttpMetrics(registry, exemplar=lambda: {"trace_id": TRACE_ID}).observe("GET", "/x", 200, 0.02)
    app = FastAPI()
    app.include_router(health_router(registry))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        scraped = await client.get("/metrics", headers={"accept": PROMETHEUS_ACCEPT})
        plain = await client.get("/metrics")
    assert scraped.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    bucket = next(line for line in scraped.text.splitlines() if 'le="0.025"' in line)
    assert f'# {{trace_id="{TRACE_ID}"}} 0.02' in bucket
    assert "trace_id" not in plain.text  # the classic text format has no exemplars


async def test_a_refresh_that_fails_is_tried_again_and_the_loop_lives_on() -> None:
    calls: list[int] = []
    done = asyncio.Event()

    async def refresh() -> None:
        calls.append(len(calls))
        if len(calls) < 3:
            raise ConnectionRefusedError("database down")
        done.set()

    loop = PeriodicRefresh("test gauges", refresh, interval_s=0.01)
    await loop.start()
    await asyncio.wait_for(done.wait(), 5)
    assert loop.running
    await loop.check_ready()
    await loop.stop(1.0)
    assert not loop.running
    assert len(calls) >= 3


def test_outcomes_are_the_catalogues() -> None:
    assert {PROCESSED, DUPLICATE, DEAD_LETTERED, FAILED} == {"processed", "duplicate", "dead_lettered", "failed"}
