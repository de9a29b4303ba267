"""The SDK is what the standard OTEL_* variables describe: on by default, off when disabled, sampled as told.

Exports go to a throwaway OTLP/HTTP receiver on loopback (a few lines of http.server), decoded with
the OTLP protobuf definitions: what a collector would receive, not what the SDK's objects hold.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from checkout_kit.tracing import (
    SEMCONV_OPT_IN,
    STABLE_CONVENTIONS,
    TracingConfigError,
    build_tracer_provider,
    prefer_stable_conventions,
    tracing_active,
)

REMOTE_TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736


@dataclass
class Received:
    path: str
    content_type: str
    request: ExportTraceServiceRequest


@dataclass
class Collector:
    """An OTLP/HTTP receiver on a free loopback port, keeping every export it gets."""

    url: str
    received: list[Received] = field(default_factory=list)

    def spans(self) -> list[tuple[str, object]]:
        """(service.name, span) for every span received."""
        found = []
        for export in self.received:
            for resource_spans in export.request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    found.extend((attributes.get("service.name", ""), span) for span in scope_spans.spans)
        return found


@pytest.fixture
def collector() -> Iterator[Collector]:
    received: list[Received] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.append(Received(self.path, self.headers["Content-Type"], request))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Collector(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No OTEL_* variable from the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def remote_parent(sampled: bool) -> object:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    context = SpanContext(REMOTE_TRACE_ID, 0x00F067AA0BA902B7, is_remote=True, trace_flags=flags)
    return trace.set_span_in_context(NonRecordingSpan(context))


@pytest.mark.parametrize("value", ["true", "TRUE", " True "])
def test_otel_sdk_disabled_means_no_sdk(otel_env: pytest.MonkeyPatch, value: str) -> None:
    otel_env.setenv("OTEL_SDK_DISABLED", value)
    assert build_tracer_provider("inventory") is None


def test_the_sdk_is_on_unless_disabled(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_SDK_DISABLED", "false")
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = build_tracer_provider("inventory")
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("work") as span:
        assert span.is_recording()


def test_the_service_name_comes_from_otel_service_name(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    otel_env.setenv("OTEL_SERVICE_NAME", "payment")
    otel_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=checkout-platform,deployment.environment=prod")
    provider = build_tracer_provider("e2e-1234.payment")
    assert provider is not None
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "payment"
    assert attributes["service.namespace"] == "checkout-platform"
    assert attributes["deployment.environment"] == "prod"


def test_without_a_name_in_the_environment_the_service_name_setting_is_used(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = build_tracer_provider("checkout-orchestrator")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "checkout-orchestrator"


def test_a_service_name_in_the_resource_attributes_is_honoured(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    otel_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=order")
    provider = build_tracer_provider("fallback")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "order"


def test_ratio_zero_samples_no_new_trace_but_follows_a_sampled_parent(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    otel_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0.0")
    provider = build_tracer_provider("gateway-bff")
    assert provider is not None
    tracer = provider.get_tracer("t")
    assert "0.0" in provider.sampler.get_description()

    roots = [tracer.start_span("root") for _ in range(50)]
    assert not any(span.get_span_context().trace_flags.sampled for span in roots)
    # A later hop of a checkout the gateway sampled is sampled too: one checkout, one whole trace.
    child = tracer.start_span("process", context=remote_parent(sampled=True))
    assert child.get_span_context().trace_flags.sampled
    assert child.get_span_context().trace_id == REMOTE_TRACE_ID
    unsampled = tracer.start_span("process", context=remote_parent(sampled=False))
    assert not unsampled.get_span_context().trace_flags.sampled


def test_ratio_one_samples_every_new_trace(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    otel_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "1.0")
    provider = build_tracer_provider("gateway-bff")
    assert provider is not None
    tracer = provider.get_tracer("t")
    assert all(tracer.start_span("root").get_span_context().trace_flags.sampled for _ in range(50))


def test_a_ratio_in_between_samples_about_that_share(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    otel_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    otel_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    provider = build_tracer_provider("gateway-bff")
    assert provider is not None
    tracer = provider.get_tracer("t")
    sampled = sum(tracer.start_span("root").get_span_context().trace_flags.sampled for _ in range(4_000))
    assert 800 < sampled < 1_200  # 1 000 expected; random trace ids, so a wide margin


def test_spans_are_exported_over_otlp_http_to_the_configured_endpoint(
    otel_env: pytest.MonkeyPatch, collector: Collector
) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    otel_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    otel_env.setenv("OTEL_SERVICE_NAME", "inventory")
    provider = build_tracer_provider("fallback")
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("process checkout.inventory-command"):
        pass
    provider.shutdown()  # flushes the batch

    assert [r.path for r in collector.received] == ["/v1/traces"]
    assert collector.received[0].content_type == "application/x-protobuf"
    assert [(service, span.name) for service, span in collector.spans()] == [  # type: ignore[attr-defined]
        ("inventory", "process checkout.inventory-command")
    ]


def test_exporter_none_exports_nothing(otel_env: pytest.MonkeyPatch, collector: Collector) -> None:
    otel_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    otel_env.setenv("OTEL_TRACES_EXPORTER", "none")
    provider = build_tracer_provider("inventory")
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("work"):
        pass
    provider.shutdown()
    assert collector.received == []


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"])
def test_an_otlp_protocol_not_shipped_is_refused_with_what_to_set(otel_env: pytest.MonkeyPatch, variable: str) -> None:
    otel_env.setenv(variable, "grpc")
    with pytest.raises(TracingConfigError, match=rf"{variable}='grpc'.*{variable}=http/protobuf"):
        build_tracer_provider("inventory")


def test_an_unknown_exporter_is_refused(otel_env: pytest.MonkeyPatch) -> None:
    otel_env.setenv("OTEL_TRACES_EXPORTER", "otlp,zipkin")
    with pytest.raises(TracingConfigError, match="unsupported exporter zipkin"):
        build_tracer_provider("inventory")


def test_stable_conventions_are_preferred_unless_chosen(otel_env: pytest.MonkeyPatch) -> None:
    prefer_stable_conventions()
    assert os.environ[SEMCONV_OPT_IN] == STABLE_CONVENTIONS
    otel_env.setenv(SEMCONV_OPT_IN, "http/dup")
    prefer_stable_conventions()
    assert os.environ[SEMCONV_OPT_IN] == "http/dup"


def test_a_test_process_has_no_sdk_installed() -> None:
    # Apps built in tests run without the SDK: installing it is the served process's job (serve()).
    assert not tracing_active()


SERVED = textwrap.dedent(
    """
    import asyncio, json, sys
    import httpx
    from fastapi import APIRouter
    from checkout_kit.app import ServiceSpec, create_app
    from checkout_kit.settings import ServiceSettings
    from checkout_kit.telemetry import trace_exemplar
    from checkout_kit.tracing import install_tracing, shutdown_tracing

    provider = install_tracing("demo-fallback")   # what serve() does before building the app
    router = APIRouter()

    @router.get("/hello")
    async def hello() -> dict[str, object]:
        return {"exemplar": trace_exemplar()}

    async def main() -> dict[str, object]:
        app = create_app(ServiceSpec(title="demo", routers=(router,)), ServiceSettings(service_name="demo"))
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            hello = (await c.get("/hello", headers={"traceparent": sys.argv[1]})).json()
            await c.get("/livez")
            metrics = (await c.get("/metrics", headers={"accept": "application/openmetrics-text"})).text
        return {"hello": hello, "metrics": metrics}

    result = asyncio.run(main())
    shutdown_tracing(provider)
    print(json.dumps(result))
    """
)


def test_a_served_process_traces_requests_and_links_latency_samples_to_them(collector: Collector) -> None:
    traceparent = f"00-{REMOTE_TRACE_ID:032x}-00f067aa0ba902b7-01"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=collector.url, OTEL_SERVICE_NAME="demo-service")
    done = subprocess.run(
        [sys.executable, "-c", SERVED, traceparent], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout.strip().splitlines()[-1])
    spans = collector.spans()
    names = [(service, span.name) for service, span in spans]  # type: ignore[attr-defined]
    assert names == [("demo-service", "GET /hello")]  # probes and scrapes are not traced
    (_, server), *_ = spans
    assert server.trace_id.hex() == f"{REMOTE_TRACE_ID:032x}"  # type: ignore[attr-defined]
    assert server.parent_span_id.hex() == "00f067aa0ba902b7"  # type: ignore[attr-defined]
    attributes = {a.key: a.value for a in server.attributes}  # type: ignore[attr-defined]
    assert attributes["http.route"].string_value == "/hello"
    assert attributes["http.request.method"].string_value == "GET"  # the stable HTTP conventions
    assert result["hello"]["exemplar"] == {"trace_id": f"{REMOTE_TRACE_ID:032x}"}
    assert f'trace_id="{REMOTE_TRACE_ID:032x}"' in result["metrics"]  # the latency sample's exemplar
