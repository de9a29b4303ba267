"""What tracing costs a checkout: the same platform with sampling 1.0, 0.0, and the SDK off, in one run.

Three isolated instances of the platform (the e2e saga harness: six services as processes, their
own database, topics and consumer groups) run side by side against the local stack, differing only
in their OTEL_* variables:

- ``ratio-1.0``     ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``, ``_ARG=1.0``: every span
                    recorded and exported to the stack's Jaeger (what the e2e trace tests run);
- ``ratio-0.0``     the same sampler with ``_ARG=0.0``: the SDK and the instrumentations are there,
                    nothing is sampled (the cost of having tracing installed);
- ``sdk-disabled``  ``OTEL_SDK_DISABLED=true``: the API alone (the baseline).

Checkouts are sequential and round-robin over the instances (A, B, C, A, B, C …), so the three
see the same machine at the same moments. Each is measured twice, without polling the platform
over HTTP (status requests would be traced too):

- ``initiate``: the client's round trip of ``POST /api/checkout/initiate`` (gateway request span,
  two inserts, commit);
- ``saga``: from the gateway accepting the checkout (``checkouts.created_at``) to the orchestrator
  recording it COMPLETED (``sagas.updated_at``), read from the database: seven Kafka hops through
  three participants, each with its database transaction and outbox relay.

    uv run python bench/tracing_overhead.py                 # 200 checkouts per variant (+ 20 warm-up)
    uv run python bench/tracing_overhead.py --checkouts 50  # quicker

Needs the local stack (`make up`). Writes ``bench/results/tracing-overhead.md``. Timings are only
recorded, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg
import httpx

ROOT: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "e2e" / "saga"))

from saga_platform import SagaPlatform, checkout_body, launched, seed_stock  # noqa: E402

from checkout_stack.stack import Stack  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results" / "tracing-overhead.md"
SKU: Final = "BENCH-TRACING"
WARMUP: Final = 20
POLL_S: Final = 0.005
"""How often the database is asked whether a saga completed (the saga's own timestamps are what is measured)."""
SAGA_TIMEOUT_S: Final = 30.0


@dataclass
class Variant:
    """One instance of the platform and what was measured on it."""

    name: str
    otel: dict[str, str]
    platform: SagaPlatform | None = None
    initiate_s: list[float] = field(default_factory=list)
    saga_s: list[float] = field(default_factory=list)


def variants(otlp_endpoint: str) -> list[Variant]:
    """The three OTEL_* configurations compared."""
    exporting = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
    }
    return [
        Variant("ratio-1.0", {**exporting, "OTEL_TRACES_SAMPLER_ARG": "1.0"}),
        Variant("ratio-0.0", {**exporting, "OTEL_TRACES_SAMPLER_ARG": "0.0"}),
        Variant("sdk-disabled", {"OTEL_SDK_DISABLED": "true"}),
    ]


async def completed_at(connection: asyncpg.Connection, saga_id: str) -> float:
    """Seconds from the gateway's acceptance to the orchestrator's COMPLETED, once the saga is terminal."""
    deadline = time.monotonic() + SAGA_TIMEOUT_S
    while time.monotonic() < deadline:
        row = await connection.fetchrow(
            "SELECT s.state, s.updated_at, c.created_at FROM orchestrator.sagas s "
            "JOIN gateway.checkouts c USING (saga_id) WHERE s.saga_id = $1",
            saga_id,
        )
        if row is not None and row["state"] in ("COMPLETED", "FAILED"):
            if row["state"] != "COMPLETED":
                raise RuntimeError(f"saga {saga_id} ended {row['state']}: see the instance's logs")
            return float((row["updated_at"] - row["created_at"]).total_seconds())
        await asyncio.sleep(POLL_S)
    raise RuntimeError(f"saga {saga_id} not terminal after {SAGA_TIMEOUT_S:.0f}s")


async def one_checkout(http: httpx.AsyncClient, connection: asyncpg.Connection) -> tuple[float, float]:
    """Initiate one checkout and wait for it; return (initiate round trip, saga latency) in seconds."""
    started = time.perf_counter()
    response = await http.post("/api/checkout/initiate", json=checkout_body({SKU: 1}, customer="cust_bench"))
    initiate = time.perf_counter() - started
    if response.status_code != 202:
        raise RuntimeError(f"initiate answered {response.status_code}: {response.text}")
    return initiate, await completed_at(connection, response.json()["saga_id"])


async def measure(runs: Sequence[Variant], checkouts: int) -> None:
    """Warm every instance up, then run the checkouts round-robin, sequentially."""
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[str, tuple[httpx.AsyncClient, asyncpg.Connection]] = {}
        for run in runs:
            assert run.platform is not None
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=run.platform.bff_url, timeout=30))
            connection = await asyncpg.connect(run.platform.dsn, timeout=10)
            stack.push_async_callback(connection.close)
            clients[run.name] = (http, connection)
        for _ in range(WARMUP):
            for run in runs:
                await one_checkout(*clients[run.name])
        for index in range(checkouts):
            for run in runs:
                initiate, saga = await one_checkout(*clients[run.name])
                run.initiate_s.append(initiate)
                run.saga_s.append(saga)
            if (index + 1) % 25 == 0:
                print(f"  {index + 1}/{checkouts} checkouts per variant", flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def machine() -> str:
    """CPU model, cores, memory, OS and Python of this machine."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )


def revision() -> str:
    """The commit measured, and whether the work tree differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=False).stdout.strip()

    changed = " (with uncommitted changes)" if git("status", "--porcelain") else ""
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{changed}"


def report(runs: Sequence[Variant], checkouts: int, started: dt.datetime) -> str:
    """The Markdown page written to bench/results/."""
    baseline = next(run for run in runs if run.name == "sdk-disabled")
    rows = []
    for metric, pick in (("initiate (client round trip)", "initiate_s"), ("saga (accepted → COMPLETED)", "saga_s")):
        base_median = statistics.median(getattr(baseline, pick))
        for run in runs:
            values: list[float] = getattr(run, pick)
            median = statistics.median(values)
            rows.append(
                f"| {metric} | {run.name} | {ms(median)} | {ms(percentile(values, 0.95))} | "
                f"{ms(percentile(values, 0.99))} | {ms(statistics.fmean(values))} | "
                f"{(median / base_median - 1) * 100:+.1f} % |"
            )
    return "\n".join(
        [
            "# Tracing overhead on checkout latency",
            "",
            f"Measured {started:%Y-%m-%d %H:%M} UTC by "
            f"`uv run python bench/tracing_overhead.py --checkouts {checkouts}` at commit {revision()}.",
            "",
            f"Machine: {machine()}. The local stack (PostgreSQL, Kafka, Jaeger) on the same machine.",
            "",
            f"Three isolated instances of the platform side by side, {checkouts} sequential checkouts each (after "
            f"{WARMUP} warm-up), round-robin over the instances so that all see the same moments of the machine; one "
            "line of quantity 1, card `tok_visa`, every saga COMPLETED. Milliseconds.",
            "",
            "| measure | variant | median | p95 | p99 | mean | median vs SDK off |",
            "|---|---|---:|---:|---:|---:|---:|",
            *rows,
            "",
            "- `ratio-1.0`: `OTEL_TRACES_SAMPLER=parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG=1.0`, spans "
            "exported over OTLP/HTTP to the stack's Jaeger (batch span processor defaults).",
            "- `ratio-0.0`: the same with `OTEL_TRACES_SAMPLER_ARG=0.0`: SDK and instrumentations installed, nothing "
            "sampled.",
            "- `sdk-disabled`: `OTEL_SDK_DISABLED=true`: the OpenTelemetry API only (context still carried in "
            "headers).",
            "- `initiate`: the client's `POST /api/checkout/initiate` round trip. `saga`: "
            "`gateway.checkouts.created_at` → `orchestrator.sagas.updated_at` of COMPLETED, both stamped by the "
            "services (seven Kafka hops, four outbox relays, a transaction per hop); completion is watched in the "
            "database, not over HTTP, so no status request adds (traced) load.",
            "- One sample per checkout; the figures are those of this machine at that time, for comparison between "
            "the variants, not a capacity statement.",
            "",
        ]
    )


@contextlib.contextmanager
def instances(runs: Sequence[Variant], stack: Stack) -> Iterator[None]:
    """Start an isolated platform per variant (stock seeded); stop and purge them all at the end."""
    postgres = stack.postgres.env()["DATABASE_URL"]
    kafka = stack.kafka.env()["KAFKA_BOOTSTRAP_SERVERS"]
    with contextlib.ExitStack() as running:
        for run in runs:
            print(f"starting the {run.name} instance …", flush=True)
            run.platform = running.enter_context(launched(stack, postgres, kafka, otel=run.otel))
            seed_stock(run.platform, {SKU: ((WARMUP + 1_000) * 2, 1_000)})
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write the results page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    parser.add_argument("--checkouts", type=int, default=200, help="sequential checkouts per variant (default 200)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results page (default {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    stack = Stack()
    unhealthy = [c.name for c in stack.select(("postgres", "kafka", "jaeger")) if not c.healthy()]
    if unhealthy:
        print(f"the local stack is not healthy ({', '.join(unhealthy)}): run `make up` first", file=sys.stderr)
        return 1
    runs = variants(stack.jaeger.env()["OTEL_EXPORTER_OTLP_ENDPOINT"])
    started = dt.datetime.now(dt.UTC)
    with instances(runs, stack):
        print(f"{args.checkouts} checkouts per variant, round-robin over {', '.join(r.name for r in runs)}", flush=True)
        asyncio.run(measure(runs, args.checkouts))
    page = report(runs, args.checkouts, started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(page)
    print(page)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
