"""`make demo`'s round trip: one real operation through every component, said out loud."""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from checkout_stack.console import info, step
from checkout_stack.metrics import PrometheusQuery
from checkout_stack.traces import TraceQuery

if TYPE_CHECKING:
    from checkout_stack.stack import Stack

SMOKE_DEPLOYMENT = """
apiVersion: v1
kind: Namespace
metadata: {name: stack-smoke}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: smoke, namespace: stack-smoke}
spec:
  replicas: 2
  selector: {matchLabels: {app: smoke}}
  template:
    metadata: {labels: {app: smoke}}
    spec:
      containers:
        - {name: smoke, image: "checkout-platform/smoke:1"}
"""


async def _postgres(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE IF NOT EXISTS stack_smoke (id bigserial PRIMARY KEY, at timestamptz)")
        row_id = await connection.fetchval("INSERT INTO stack_smoke (at) VALUES (now()) RETURNING id")
        version = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    info(f"PostgreSQL {version}: inserted row {row_id} into stack_smoke and read it back")


async def _kafka(bootstrap: str) -> None:
    topic = "stack-smoke"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    marker = uuid.uuid4().hex.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, marker, key=b"smoke")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"stack-smoke-{marker.decode()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            async for message in consumer:
                if message.value == marker:
                    await consumer.commit()
                    break
    finally:
        await consumer.stop()
    info(
        f"Kafka {bootstrap}: produced to {topic}[{sent.partition}]@{sent.offset} (acks=all, idempotent), "
        "consumed it back and committed the offset"
    )


def _kubernetes(stack: Stack) -> None:
    k8s = stack.kubernetes
    version = k8s.kubectl("version", "-o", "yaml")
    server = next(
        (line.split(":", 1)[1].strip() for line in version.splitlines() if line.strip().startswith("gitVersion")), "?"
    )
    k8s.kubectl("apply", "-f", "-", input_text=SMOKE_DEPLOYMENT)
    k8s.kubectl("-n", "stack-smoke", "rollout", "status", "deployment/smoke", "--timeout=90s")
    pods = k8s.kubectl(
        "-n",
        "stack-smoke",
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName}{'\\n'}{end}",
    )
    info(f"Kubernetes {server}: Deployment stack-smoke/smoke rolled out with 2 replicas:")
    for line in pods.strip().splitlines():
        info(f"  pod {line}")


def _traces(env: dict[str, str]) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    service = f"stack-smoke-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    with provider.get_tracer("checkout_stack.smoke").start_as_current_span("smoke round trip") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
    provider.shutdown()
    TraceQuery(env["TRACES_QUERY_URL"]).wait_for_trace(trace_id)
    info(f"Jaeger: sent span 'smoke round trip' over OTLP ({service}) and read trace {trace_id} back")


def _prometheus(env: dict[str, str]) -> None:
    result = PrometheusQuery(env["PROMETHEUS_URL"]).wait_for("up", timeout_s=30)
    jobs = ", ".join(sorted({f"{r['metric']['job']}={r['value'][1]}" for r in result}))
    info(f"Prometheus: query up → {jobs}")


def _toxiproxy(env: dict[str, str]) -> None:
    version = httpx.get(f"{env['TOXIPROXY_URL'].rstrip('/')}/version", timeout=5).text.strip()
    info(f"toxiproxy: API answers, version {version}")


def run_smoke(stack: Stack) -> None:
    """Do one real thing with each component and print what happened."""
    env = stack.env()
    with step("PostgreSQL round trip"):
        asyncio.run(_postgres(env["DATABASE_URL"]))
    with step("Kafka round trip"):
        asyncio.run(_kafka(env["KAFKA_BOOTSTRAP_SERVERS"]))
    with step("Kubernetes round trip"):
        _kubernetes(stack)
    with step("trace round trip"):
        _traces(env)
    with step("Prometheus query"):
        _prometheus(env)
    with step("toxiproxy"):
        _toxiproxy(env)
