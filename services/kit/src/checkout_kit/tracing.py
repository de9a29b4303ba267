"""The OpenTelemetry SDK of a service process: built at startup from the standard ``OTEL_*`` variables.

:mod:`checkout_kit.telemetry` holds the seams the code calls (API only); this module installs what
turns them into exported spans. Nothing happens at import: :func:`install_tracing` runs when a
service process starts serving (:func:`checkout_kit.runtime.serve`, before the app is built, so the
app's lifespan already finds the SDK), and :func:`shutdown_tracing` flushes the spans still
buffered after the app's lifespan has stopped its components (the last messages' spans included).

Configuration is the SDK's own contract, the standard variables read from the process environment
(the chart sets them from the CheckoutPlatform's ``tracing`` block); the kit adds no variable:

``OTEL_SDK_DISABLED=true``               no SDK at all: the API stays a no-op that still carries
                                         context through Kafka headers and HTTP calls
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``   the resource; without a ``service.name`` from
                                         either, the service's ``SERVICE_NAME`` setting is used
``OTEL_TRACES_SAMPLER`` (+ ``_ARG``)     e.g. ``parentbased_traceidratio`` / ``0.1``: a checkout's
                                         later hops follow the decision taken at the gateway
``OTEL_TRACES_EXPORTER``                 ``otlp`` (default), ``console``, ``none`` (comma-separated)
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``_TRACES_ENDPOINT``), ``..._HEADERS``, ``..._TIMEOUT``
``OTEL_EXPORTER_OTLP_PROTOCOL``          ``http/protobuf`` (the only protocol shipped)
``OTEL_PROPAGATORS``                     ``tracecontext,baggage`` by default (W3C)
``OTEL_BSP_*``                           the batch span processor's queue and delays
``OTEL_SEMCONV_STABILITY_OPT_IN``        ``http,database`` unless set: the stable conventions

Why a process-wide switch rather than one per app: the API allows one global tracer provider per
process, set once. Tests build many apps in one process without an SDK (and may install their
own in-memory provider); the served process installs exactly one.

Instrumentation, in the maintained packages where they fit:

- HTTP server spans: FastAPI (per app, :func:`instrument_app`; ``/livez``, ``/readyz`` and
  ``/metrics`` are not traced: probes and scrapes would bury the checkouts);
- HTTP client spans: httpx (process-wide; the gateway's calls to the orchestrator and the cart);
- database spans: SQLAlchemy, per engine (:func:`instrument_engine`), **only inside a trace** —
  see :class:`_ChildOnlyEngineTracer`;
- Kafka: our own spans (:mod:`checkout_kit.telemetry`), not the aiokafka instrumentation, whose
  consumer spans would end at ``getmany()`` instead of covering the record's transaction, and whose
  producer spans would belong to the outbox relay's loop rather than to the saga that wrote the row.
"""

from __future__ import annotations

import logging
from os import environ
from typing import Any, Final

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
from opentelemetry.instrumentation.sqlalchemy.version import __version__ as sqlalchemy_instrumentation_version
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

UNTRACED_URLS: Final = "/livez,/readyz,/metrics"
"""Routes never traced (regexes searched in the URL): probes and scrapes, many per second, no checkout."""
OTLP_PROTOCOL: Final = "http/protobuf"
"""The OTLP protocol of the exporter the kit ships (``opentelemetry-exporter-otlp-proto-http``)."""
EXPORTERS: Final = ("otlp", "console", "none")
SEMCONV_OPT_IN: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
STABLE_CONVENTIONS: Final = "http,database"
"""The instrumentations' opt-in to the stable HTTP and database semantic conventions (our default)."""


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable asks for something this build cannot do; the message says what to set."""


def sdk_disabled() -> bool:
    """``OTEL_SDK_DISABLED=true`` (case-insensitive), as the specification defines it."""
    return environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true"


def exporter_names() -> list[str]:
    """``OTEL_TRACES_EXPORTER`` as a list (default ``otlp``); raise for a name the kit does not ship."""
    names = [name.strip().lower() for name in environ.get(OTEL_TRACES_EXPORTER, "otlp").split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"{OTEL_TRACES_EXPORTER}={environ.get(OTEL_TRACES_EXPORTER)!r}: unsupported exporter "
            f"{', '.join(unknown)}; use one of {', '.join(EXPORTERS)}"
        )
    return names or ["otlp"]


def _otlp_exporter() -> SpanExporter:
    traces_only = OTEL_EXPORTER_OTLP_TRACES_PROTOCOL in environ
    protocol_variable = OTEL_EXPORTER_OTLP_TRACES_PROTOCOL if traces_only else OTEL_EXPORTER_OTLP_PROTOCOL
    protocol = environ.get(protocol_variable, OTLP_PROTOCOL).strip()
    if protocol != OTLP_PROTOCOL:
        raise TracingConfigError(
            f"{protocol_variable}={protocol!r}: this service exports OTLP over HTTP only; "
            f"set {protocol_variable}={OTLP_PROTOCOL} and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's "
            "OTLP/HTTP port (4318)"
        )
    # Imported here: the exporter pulls in requests and protobuf; a process without tracing never needs them.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from OTEL_EXPORTER_OTLP_*


def service_resource(default_service_name: str) -> Resource:
    """The resource from ``OTEL_RESOURCE_ATTRIBUTES``/``OTEL_SERVICE_NAME``.

    ``default_service_name`` (the service's ``SERVICE_NAME`` setting) when neither names the service.
    """
    resource = Resource.create()
    name = str(resource.attributes.get(SERVICE_NAME, ""))
    if not name or name.startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: default_service_name}))
    return resource


def build_tracer_provider(default_service_name: str) -> TracerProvider | None:
    """A tracer provider as the ``OTEL_*`` variables describe it; None when the SDK is disabled.

    Sampler (``OTEL_TRACES_SAMPLER``/``_ARG``) and span limits are read by the SDK itself; spans go
    through a :class:`BatchSpanProcessor` (``OTEL_BSP_*``) to each exporter of ``OTEL_TRACES_EXPORTER``.
    Raises :class:`TracingConfigError` for an exporter or protocol this build does not ship.
    """
    if sdk_disabled():
        return None
    names = exporter_names()
    provider = TracerProvider(resource=service_resource(default_service_name))
    for name in names:
        if name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        elif name == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def prefer_stable_conventions() -> None:
    """Have the instrumentations emit the stable HTTP and database conventions unless told otherwise.

    Without ``OTEL_SEMCONV_STABILITY_OPT_IN`` they still emit the deprecated pre-1.0 attributes
    (``http.method``, ``db.statement`` …); a value set in the environment is left as it is.
    """
    environ.setdefault(SEMCONV_OPT_IN, STABLE_CONVENTIONS)


def install_tracing(default_service_name: str) -> TracerProvider | None:
    """Build the provider, make it the process's global one and instrument httpx; None when disabled.

    Call once, at process start, before the app is built (see the module docstring).
    """
    provider = build_tracer_provider(default_service_name)
    if provider is None:
        log.info("tracing off (%s=true)", OTEL_SDK_DISABLED)
        return None
    prefer_stable_conventions()
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    resource = provider.resource.attributes
    log.info(
        "tracing on: service.name=%s, sampler %s, exporters %s",
        resource.get(SERVICE_NAME),
        provider.sampler.get_description(),
        ", ".join(exporter_names()),
    )
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Export what is buffered (bounded by the exporter's timeout) and stop the processors."""
    if provider is None:
        return
    try:
        provider.shutdown()
    except Exception:  # never let telemetry turn a clean stop into a failed one
        log.exception("flushing the last spans failed")


def tracing_active() -> bool:
    """Whether this process installed an SDK (the global provider records spans)."""
    return isinstance(trace.get_tracer_provider(), TracerProvider)


def instrument_app(app: FastAPI) -> None:
    """Server spans for ``app``'s requests (W3C context extracted from the headers) when tracing is on.

    The OpenTelemetry middleware wraps the whole stack, so the metrics middleware runs inside the
    request's span and its latency samples carry the trace id as exemplar.
    """
    if tracing_active():
        FastAPIInstrumentor.instrument_app(app, excluded_urls=UNTRACED_URLS, exclude_spans=["receive", "send"])


class _ChildOnlyEngineTracer(EngineTracer):
    """SQLAlchemy's engine tracer, recording a statement only inside a recorded span.

    Background loops query on their own, outside any request or message: the outbox relay's poll,
    the deadline scanner's claim, the readiness ping. Traced, each would be a one-span root trace
    several times a second per replica, burying the checkouts. Inside a recorded span (a request, a
    consumed message, a fired deadline) every statement is a child span as the instrumentation makes
    it; inside a span the sampler dropped, the (parent-based) child would be dropped too, so the
    statement skips the instrumentation's work altogether.
    """

    def _before_cur_exec(
        self, conn: Any, cursor: Any, statement: Any, params: Any, context: Any, executemany: bool
    ) -> tuple[Any, Any]:
        if not trace.get_current_span().is_recording():
            return statement, params
        result: tuple[Any, Any] = super()._before_cur_exec(  # type: ignore[no-untyped-call]
            conn, cursor, statement, params, context, executemany
        )
        return result


def instrument_engine(engine: AsyncEngine) -> None:
    """Database client spans (``db.*`` semantic conventions) for ``engine``, when tracing is on."""
    if not tracing_active():
        return
    tracer = trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", sqlalchemy_instrumentation_version)
    connections = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    _ChildOnlyEngineTracer(tracer, engine.sync_engine, connections)  # type: ignore[no-untyped-call]
