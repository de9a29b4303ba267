"""Each reconcile pass is a trace in the real trace backend: a span per pass, a child per concern, the outcome on it.

The operator runs as a process with the standard OTEL_* variables pointing at the stack's Jaeger (its
service name left to the default, ``checkout-operator``); its traces are found the way an SRE finds
them, by searching the backend for the platform's namespace.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from operator_harness import ADMIN_SECRET, Kube, OperatorFactory, Postgres, platform_manifest, unique, wait_for

pytestmark = pytest.mark.integration

CONCERNS = ["reconcile topics", "reconcile database", "reconcile workloads"]


def traced_operator_env(otlp_endpoint: str) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "1.0",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }


def search(query_url: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    """Traces of the checkout-operator service with a span carrying all ``tags``."""
    response = httpx.get(
        f"{query_url}/api/traces",
        params={"service": "checkout-operator", "tags": json.dumps(tags), "limit": 50, "lookback": "1h"},
        timeout=10,
    )
    response.raise_for_status()
    return list(response.json().get("data") or [])


def spans_of(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's spans as {name, id, parent, tags, error} (tags by key), in start order."""
    spans = []
    for raw in sorted(trace["spans"], key=lambda s: s["startTime"]):
        tags = {tag["key"]: tag["value"] for tag in raw.get("tags") or []}
        parent = next((r["spanID"] for r in raw.get("references") or [] if r["refType"] == "CHILD_OF"), None)
        spans.append(
            {
                "name": raw["operationName"],
                "id": raw["spanID"],
                "parent": parent,
                "tags": tags,
                "error": tags.get("otel.status_code") == "ERROR",
                "service": trace["processes"][raw["processID"]]["serviceName"],
            }
        )
    return spans


def a_pass(query_url: str, namespace: str, ready: str, reason: str) -> list[dict[str, Any]]:
    """The spans of one pass over ``<namespace>/shop`` that left Ready=``ready`` with ``reason``, once all arrived."""

    def find() -> list[dict[str, Any]] | None:
        tags = {"k8s.namespace.name": namespace, "checkout.platform.ready": ready, "checkout.reconcile.reason": reason}
        for trace in search(query_url, tags):
            spans = spans_of(trace)
            if [s["name"] for s in spans if s["parent"] is not None] == CONCERNS:
                return spans
        return None

    return wait_for(f"a traced pass over {namespace}/shop with Ready={ready} ({reason})", find, timeout=120)


def test_each_reconcile_pass_is_a_trace_with_a_span_per_concern_and_its_outcome(
    kube: Kube,
    namespace: str,
    operators: OperatorFactory,
    pg: Postgres,
    platform_database: str,
    kafka_bootstrap_servers: str,
    otlp_endpoint: str,
    traces_query_url: str,
) -> None:
    operators.start(**traced_operator_env(otlp_endpoint))
    manifest = platform_manifest("shop", unique("cop"), kafka_bootstrap_servers, pg, platform_database, ADMIN_SECRET)
    manifest["spec"]["kafka"]["bootstrapServers"] = ["127.0.0.1:1"]  # nothing listens: the broker is unreachable
    assert kube.apply(manifest, namespace).returncode == 0

    failing = a_pass(traces_query_url, namespace, "False", "KafkaUnreachable")
    root, topics, database, workloads = failing
    assert root["parent"] is None
    assert root["name"] == f"reconcile {namespace}/shop"
    assert root["service"] == "checkout-operator"  # the default service name
    assert root["tags"]["checkout.platform.name"] == "shop"
    assert root["tags"]["checkout.platform.generation"] == 1
    assert root["tags"]["checkout.reconcile.requeue_after_s"] > 0
    assert {topics["parent"], database["parent"], workloads["parent"]} == {root["id"]}
    assert (topics["tags"]["checkout.reconcile.ready"], topics["tags"]["checkout.reconcile.reason"]) == (
        False,
        "KafkaUnreachable",
    )
    assert topics["error"]  # a backend failure, retried with backoff
    assert database["tags"]["checkout.reconcile.ready"] is True
    assert not database["error"]

    # The spec fixed: the next pass converges, and its trace says so.
    manifest["spec"]["kafka"]["bootstrapServers"] = [kafka_bootstrap_servers]
    assert kube.apply(manifest, namespace).returncode == 0
    converged = a_pass(traces_query_url, namespace, "True", "Reconciled")
    root, *concerns = converged
    assert root["tags"]["checkout.platform.generation"] == 2
    assert [(s["tags"]["checkout.reconcile.concern"], s["tags"]["checkout.reconcile.ready"]) for s in concerns] == [
        ("topics", True),
        ("database", True),
        ("workloads", True),
    ]
    assert not any(s["error"] for s in converged)
