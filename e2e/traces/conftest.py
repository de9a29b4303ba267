"""One isolated platform exporting every span to the stack's trace backend, and a search of that backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

import pytest
from saga_platform import Client, SagaPlatform, launched, seed_stock
from trace_tree import TraceSearch

from checkout_stack.stack import Stack
from checkout_stack.traces import TraceQuery

TRACE_STOCK: Final = {
    "TRACE-HAPPY": (50, 1_000),
    "TRACE-DECLINE": (10, 500),
    "TRACE-TIMEOUT": (10, 700),
}
"""SKU → (units, unit price in cents) of this suite's checkouts."""


def otel_env(otlp_endpoint: str) -> dict[str, str]:
    """What the checkout-service chart sets from a CheckoutPlatform's tracing block (ratio 1.0)."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        # Spans leave each process within 200 ms instead of 5 s: the tests read them back sooner.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


@pytest.fixture(scope="module")
def traced_platform(
    local_stack: Stack, postgres_dsn: str, kafka_bootstrap_servers: str, otlp_endpoint: str
) -> Iterator[SagaPlatform]:
    """The six services as processes (2 s step deadlines), tracing to the stack's Jaeger, stock seeded."""
    with launched(local_stack, postgres_dsn, kafka_bootstrap_servers, otel=otel_env(otlp_endpoint)) as running:
        seed_stock(running, TRACE_STOCK)
        yield running


@pytest.fixture
def traced_client(traced_platform: SagaPlatform) -> Iterator[Client]:
    """HTTP to the gateway and the participants."""
    http = Client(traced_platform)
    yield http
    http.close()


@pytest.fixture(scope="session")
def trace_search(trace_query: TraceQuery) -> TraceSearch:
    """The trace backend's search by tag and fetch by id."""
    return TraceSearch(trace_query)
