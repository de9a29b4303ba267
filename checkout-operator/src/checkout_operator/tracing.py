"""The operator's traces: one trace per reconcile pass, a child span per concern.

``reconcile <namespace>/<name>`` covers a pass over one ``CheckoutPlatform``; its children
``reconcile topics``, ``reconcile database`` and ``reconcile workloads`` (``reconcile deletion``
when it is being deleted, under ``cleanup <namespace>/<name>``) each end with the concern's
outcome: ``checkout.reconcile.ready`` and ``checkout.reconcile.reason`` (the condition's reason,
e.g. ``KafkaUnreachable``), an error status when a backend failed. The pass span carries the
platform (``k8s.namespace.name``, ``checkout.platform.name``, ``checkout.platform.uid``,
``checkout.platform.generation``), the Ready condition's status and reason, and the delay until
the next pass — so a slow or failing pass is one search away in the trace backend.

The SDK is built at the operator's startup (kopf's startup handler; nothing at import) from the
standard ``OTEL_*`` variables of its own environment, which the checkout-operator chart sets from
its ``tracing`` values: ``OTEL_SDK_DISABLED``, ``OTEL_SERVICE_NAME`` (default
``checkout-operator``), ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER`` (+ ``_ARG``),
``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``), ``OTEL_EXPORTER_OTLP_*`` (HTTP/protobuf).
They are the SDK's contract and it reads them from the process environment itself; they are the
one exception to "only the settings object reads the environment". The spans go out in batches;
the cleanup handler flushes what is left when the operator stops.

Written here rather than shared with the services' kit: the operator shares nothing with them
but the contracts and the charts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from os import environ
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
    OTEL_SDK_DISABLED,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from checkout_operator.outcome import Outcome

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME: Final = "checkout-operator"
TRACER_NAME: Final = "checkout_operator"
OTLP_PROTOCOL: Final = "http/protobuf"
EXPORTERS: Final = ("otlp", "console", "none")

PLATFORM_NAME: Final = "checkout.platform.name"
PLATFORM_UID: Final = "checkout.platform.uid"
PLATFORM_GENERATION: Final = "checkout.platform.generation"
PLATFORM_READY: Final = "checkout.platform.ready"
"""The Ready condition's status after the pass (``True``, ``False``, ``Unknown``)."""
CONCERN: Final = "checkout.reconcile.concern"
READY: Final = "checkout.reconcile.ready"
REASON: Final = "checkout.reconcile.reason"
"""The outcome's reason: the concern's condition reason, or the Ready condition's on the pass span."""
REQUEUE_AFTER: Final = "checkout.reconcile.requeue_after_s"


class TracingConfigError(ValueError):
    """An ``OTEL_*`` variable asks for something this build cannot do; the message says what to set."""


def _exporters() -> list[SpanExporter]:
    names = [n.strip().lower() for n in environ.get(OTEL_TRACES_EXPORTER, "otlp").split(",") if n.strip()] or ["otlp"]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"{OTEL_TRACES_EXPORTER}: unsupported exporter {', '.join(unknown)}; use one of {', '.join(EXPORTERS)}"
        )
    exporters: list[SpanExporter] = []
    if "otlp" in names:
        traces_only = OTEL_EXPORTER_OTLP_TRACES_PROTOCOL in environ
        variable = OTEL_EXPORTER_OTLP_TRACES_PROTOCOL if traces_only else OTEL_EXPORTER_OTLP_PROTOCOL
        protocol = environ.get(variable, OTLP_PROTOCOL).strip()
        if protocol != OTLP_PROTOCOL:
            raise TracingConfigError(
                f"{variable}={protocol!r}: the operator exports OTLP over HTTP only; set {variable}={OTLP_PROTOCOL}"
            )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter())
    if "console" in names:
        exporters.append(ConsoleSpanExporter())
    return exporters


def build_tracer_provider() -> TracerProvider | None:
    """A provider as the ``OTEL_*`` variables describe it (``checkout-operator`` unless named); None if disabled."""
    if environ.get(OTEL_SDK_DISABLED, "").strip().lower() == "true":
        return None
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def install_tracing() -> TracerProvider | None:
    """Build the provider and make it the process's global one (once, at startup); None when disabled."""
    provider = build_tracer_provider()
    if provider is None:
        log.info("tracing off (%s=true)", OTEL_SDK_DISABLED)
        return None
    trace.set_tracer_provider(provider)
    log.info(
        "tracing on: service.name=%s, sampler %s",
        provider.resource.attributes.get(SERVICE_NAME),
        provider.sampler.get_description(),
    )
    return provider


def shutdown_tracing(provider: TracerProvider | None) -> None:
    """Export the spans still buffered and stop (bounded by the exporter's timeout)."""
    if provider is None:
        return
    try:
        provider.shutdown()
    except Exception:  # never let telemetry turn a clean stop into a failed one
        log.exception("flushing the last spans failed")


def _platform_attributes(meta: Mapping[str, Any]) -> dict[str, str | int]:
    return {
        "k8s.namespace.name": str(meta.get("namespace", "")),
        PLATFORM_NAME: str(meta.get("name", "")),
        PLATFORM_UID: str(meta.get("uid", "")),
        PLATFORM_GENERATION: int(meta.get("generation") or 0),
    }


@contextmanager
def platform_span(verb: str, meta: Mapping[str, Any]) -> Iterator[Span]:
    """``<verb> <namespace>/<name>``: a root span (a pass starts from a timer or a watch event) over one pass."""
    name = f"{verb} {meta.get('namespace')}/{meta.get('name')}"
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(
        name, context=None, kind=SpanKind.INTERNAL, attributes=_platform_attributes(meta)
    ) as span:
        yield span


@contextmanager
def concern_span(concern: str) -> Iterator[Span]:
    """``reconcile <concern>``: one concern's part of the pass (its outcome recorded by :func:`record_outcome`)."""
    tracer = trace.get_tracer(TRACER_NAME)
    with tracer.start_as_current_span(f"reconcile {concern}", attributes={CONCERN: concern}) as span:
        yield span


def record_outcome(span: Span, outcome: Outcome) -> None:
    """The concern's result on its span; a backend failure (retried with backoff) is an error."""
    span.set_attribute(READY, outcome.ready)
    span.set_attribute(REASON, outcome.reason)
    if not outcome.ready and outcome.retry:
        span.set_status(Status(StatusCode.ERROR, f"{outcome.reason}: {outcome.message}"))


def record_pass(ready: Mapping[str, Any], next_pass_s: float | None = None) -> None:
    """The Ready condition the pass wrote, and when the next one runs, on the current pass span."""
    span = trace.get_current_span()
    span.set_attribute(PLATFORM_READY, str(ready.get("status", "Unknown")))
    span.set_attribute(REASON, str(ready.get("reason", "")))
    if next_pass_s is not None:
        span.set_attribute(REQUEUE_AFTER, next_pass_s)
