"""The operator's SDK from its own OTEL_* environment, and what a concern's span says about its outcome."""

from __future__ import annotations

import os

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from checkout_operator.outcome import Outcome
from checkout_operator.tracing import TracingConfigError, build_tracer_provider, record_outcome


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    return monkeypatch


def test_disabled_sdk_builds_nothing(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_SDK_DISABLED", "true")
    assert build_tracer_provider() is None


def test_the_service_is_checkout_operator_unless_named(otel_env: pytest.MonkeyPatch) -> None:
    provider = build_tracer_provider()
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "checkout-operator"
    otel_env.setenv("OTEL_SERVICE_NAME", "checkout-operator-staging")
    named = build_tracer_provider()
    assert named is not None
    assert named.resource.attributes["service.name"] == "checkout-operator-staging"


def test_the_sampler_ratio_is_honoured(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0.0")
    provider = build_tracer_provider()
    assert provider is not None
    assert not provider.get_tracer("t").start_span("reconcile ns/shop").get_span_context().trace_flags.sampled


def test_grpc_is_refused_with_what_to_set(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(TracingConfigError, match="http/protobuf"):
        build_tracer_provider()


@pytest.mark.parametrize(
    ("outcome", "error"),
    [
        (Outcome(True, "TopicsReady", "all five topics match"), False),
        (Outcome(False, "KafkaUnreachable", "no broker at 127.0.0.1:1", retry=True), True),
        (Outcome(False, "WorkloadsProgressing", "rolling out", requeue_s=5), False),
        (Outcome(False, "PartitionShrinkRefused", "cannot shrink"), False),
    ],
)
def test_a_concern_span_carries_its_outcome_and_an_error_only_for_a_failing_backend(
    outcome: Outcome, error: bool
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("reconcile topics") as span:
        record_outcome(span, outcome)
    (finished,) = exporter.get_finished_spans()
    attributes = dict(finished.attributes or {})
    assert (attributes["checkout.reconcile.ready"], attributes["checkout.reconcile.reason"]) == (
        outcome.ready,
        outcome.reason,
    )
    assert (finished.status.status_code is StatusCode.ERROR) is error
