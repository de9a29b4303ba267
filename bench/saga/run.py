"""Saga throughput and latency: the highest open-loop rate each engine sustains within the latency budget.

Every target (:mod:`target`) runs on the same local stack, one after the other in the same run, driven by
the same open-loop generator (:mod:`loadgen`):

- ``checkout-http``: the platform, checkouts through the gateway over HTTP (:mod:`checkout_target`);
- ``checkout-kafka``: the platform, ``CheckoutInitiated`` produced straight to Kafka (no HTTP entry);
- ``floor``: the same Kafka hops and PostgreSQL transactions per saga with no business logic, plain
  aiokafka + asyncpg (:mod:`floor`);
- ``dbos``: the same checkout saga (reserve -> charge -> order, with compensation) as a DBOS durable
  workflow on the same PostgreSQL (:mod:`dbos_peer`).

For each, the rate ramps geometrically until the engine saturates (sagas left unfinished, errors over 1 %,
completions falling behind, or p99 over 10 s); a step passes when every saga ends, p99 of the saga's latency
is under 250 ms and fewer than 0.1 % of arrivals fail. The step between the best passing rate and the first
failing one is tried once more (a bisection), then the best passing rate is held for a measured window and
reported with:

- sagas/s completed; p50/p95/p99/p99.9 latency from the engine's own timestamps (saga created -> finished)
  and from the client's view (request sent -> saga finished: includes the entry point);
- CPU ms per saga of each process (user + system of its process group, from /proc);
- PostgreSQL commits per saga (``pg_stat_database.xact_commit`` of the target's database);
- Kafka records per saga (end offsets of the target's topics);
- the target's consistency verdict after the run (the platform's invariant checker, ...).

    uv run --group bench python bench/saga/run.py                      # every target
    uv run --group bench python bench/saga/run.py --targets checkout-kafka floor --step-s 10 --hold-s 20

Needs the local stack (``make up``). Writes ``bench/results/saga.json`` and ``saga.md`` (``--out`` elsewhere).
Nothing here is asserted; the numbers are recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import json
import os
import platform as host
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT: Final = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "e2e" / "saga"))
sys.path.insert(0, str(Path(__file__).parent))

from loadgen import StepResult, open_loop  # noqa: E402
from target import Outcome, Target  # noqa: E402

from checkout_stack.stack import Stack  # noqa: E402

RESULTS: Final = ROOT / "bench" / "results"
P99_BUDGET_S: Final = 0.250
ERROR_BUDGET: Final = 0.001
CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
QUANTILES: Final = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("p99.9", 0.999))
TARGETS: Final = ("checkout-http", "checkout-kafka", "floor", "dbos")

Launcher = Callable[[Stack], contextlib.AbstractContextManager[Target]]


def launcher(name: str) -> Launcher:
    """The context manager that starts target ``name`` on the shared stack (imported only when chosen)."""
    if name.startswith("checkout-"):
        module = importlib.import_module("checkout_target")
        mode = name.removeprefix("checkout-")
        return lambda stack: module.launch(stack, mode)
    module = importlib.import_module({"floor": "floor", "dbos": "dbos_peer"}[name])
    launch: Launcher = module.launch
    return launch


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of every live process in a process group (and its reaped children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[2] == str(pgid):
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


def server_cpu_seconds() -> dict[str, float]:
    """User + system CPU of the shared servers: every ``postgres`` process and the Kafka broker's JVM.

    The postmaster's count includes its reaped backends. Whole servers: anything else using them counts too.
    """
    totals = {"postgres": 0.0, "kafka": 0.0}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            comm = (proc / "comm").read_text().strip()
            if comm == "postgres":
                key = "postgres"
            elif comm == "java" and b"kafka" in (proc / "cmdline").read_bytes():
                key = "kafka"
            else:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        totals[key] += sum(int(v) for v in fields[11:15]) / CLK_TCK
    return totals


@dataclass
class Readings:
    """Counters read before and after a step."""

    cpu: dict[str, float]
    commits: int
    records: int
    servers: dict[str, float]


class Probe:
    """Reads a target's counters: CPU per process, database commits, Kafka records."""

    def __init__(self, target: Target, bootstrap_servers: str) -> None:
        self.target = target
        self.bootstrap_servers = bootstrap_servers

    async def read(self) -> Readings:
        cpu = {name: group_cpu_seconds(pgid) for name, pgid in self.target.pgids().items()}
        connection = await asyncpg.connect(self.target.dsn)
        try:
            await connection.execute("SELECT pg_stat_clear_snapshot()")
            commits = int(
                await connection.fetchval(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = $1", self.target.database
                )
            )
        finally:
            await connection.close()
        return Readings(cpu, commits, await self._records(), server_cpu_seconds())

    async def _records(self) -> int:
        """Records ever written to the target's topics: the sum of every partition's end offset."""
        if self.target.topic_prefix is None:
            return 0
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers)
        await admin.start()
        await consumer.start()
        try:
            prefix = f"{self.target.topic_prefix}."
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            described = await admin.describe_topics(names)
            partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
            ends = await consumer.end_offsets(partitions)
            return int(sum(ends.values()))
        finally:
            await consumer.stop()
            await admin.close()


async def settle(target: Target, ids: list[str], timeout_s: float) -> list[Outcome]:
    """The sagas' outcomes once every one is terminal (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcomes = await target.outcomes(ids)
        if sum(1 for o in outcomes if o.terminal) == len(ids) or time.monotonic() > deadline:
            return outcomes
        await asyncio.sleep(0.25)


def summarize(step: StepResult, outcomes: list[Outcome], before: Readings, after: Readings) -> dict[str, Any]:
    """One step's numbers."""
    sent = {a.saga_id: a.sent for a in step.accepted}
    finished = [o for o in outcomes if o.terminal and o.finished_at is not None]
    saga_latency = [(o.finished_at - o.created_at).total_seconds() for o in finished if o.finished_at]
    client_latency = [
        o.finished_at.timestamp() - sent[o.saga_id] for o in finished if o.finished_at and o.saga_id in sent
    ]
    completed = sum(1 for o in finished if o.state == "COMPLETED")
    n = max(1, len(step.accepted))
    # Throughput: completions over the time from the first arrival to the last saga's end (a backlog that
    # drains after the step counts against it).
    last_end = max((o.finished_at.timestamp() for o in finished if o.finished_at), default=0.0)
    first_sent = min((a.sent for a in step.arrivals), default=0.0)
    span_s = max(step.duration_s, last_end - first_sent)
    errors = len(step.errors) + (len(step.accepted) - len(finished))
    return {
        "rate": step.rate,
        "duration_s": step.duration_s,
        "arrivals": len(step.arrivals),
        "completed": completed,
        "failed": sum(1 for o in finished if o.state == "FAILED"),
        "not_terminal": len(step.accepted) - len(finished),
        "entry_errors": len(step.errors),
        "error_rate": errors / max(1, len(step.arrivals)),
        "sagas_per_s": round(completed / span_s, 2),
        "generator_max_lateness_ms": round(step.max_lateness_s * 1000, 1),
        "saga_ms": {q: round(percentile(saga_latency, p) * 1000, 1) for q, p in QUANTILES},
        "client_ms": {q: round(percentile(client_latency, p) * 1000, 1) for q, p in QUANTILES},
        "cpu_ms_per_saga": {k: round((after.cpu[k] - before.cpu.get(k, 0.0)) * 1000 / n, 2) for k in after.cpu},
        "server_cpu_ms_per_saga": {
            k: round((after.servers[k] - before.servers.get(k, 0.0)) * 1000 / n, 2) for k in after.servers
        },
        "commits_per_saga": round((after.commits - before.commits) / n, 2),
        "kafka_records_per_saga": round((after.records - before.records) / n, 2),
        "first_errors": [a.error for a in step.errors[:3]],
    }


def saturated(summary: dict[str, Any]) -> bool:
    """Past capacity: sagas left unfinished, over 1 % errors, p99 over 10 s, or completions falling behind."""
    return bool(
        summary["not_terminal"] > 0
        or summary["error_rate"] > 0.01
        or summary["saga_ms"]["p99"] > 10_000
        or not keeps_up(summary)
    )


def keeps_up(summary: dict[str, Any]) -> bool:
    """Completions kept pace with arrivals (within 5 %), whatever the latency."""
    return bool(summary["sagas_per_s"] >= 0.95 * summary["rate"] and summary["error_rate"] < 0.01)


def passes(summary: dict[str, Any]) -> bool:
    """Within the budget: every saga ended, p99 under 250 ms, fewer than 0.1 % errors."""
    return bool(
        summary["not_terminal"] == 0
        and summary["saga_ms"]["p99"] < P99_BUDGET_S * 1000
        and summary["error_rate"] < ERROR_BUDGET
    )


@dataclass
class Ramp:
    """How the rate climbs: from ``start`` times ``factor`` per step up to ``ceiling``; ``step_s``/``hold_s`` long."""

    start: float
    factor: float
    ceiling: float
    step_s: float
    hold_s: float
    drain_s: float = 120.0

    def rates(self) -> Iterator[float]:
        rate = self.start
        while rate <= self.ceiling:
            yield round(rate, 1)
            rate *= self.factor


class Session:
    """One target under the generator."""

    def __init__(self, target: Target, bootstrap_servers: str, ramp: Ramp) -> None:
        self.target = target
        self.probe = Probe(target, bootstrap_servers)
        self.ramp = ramp
        self.index = 0
        self.started: list[str] = []

    async def step(self, rate: float, duration_s: float, *, keep: bool = True) -> dict[str, Any]:
        before = await self.probe.read()
        step = await open_loop(self.target.start, rate=rate, duration_s=duration_s, first_index=self.index)
        ids = [a.saga_id for a in step.accepted if a.saga_id]
        self.index += len(step.arrivals) + 1
        self.started += ids
        outcomes = await settle(self.target, ids, timeout_s=self.ramp.drain_s)
        after = await self.probe.read()
        summary = summarize(step, outcomes, before, after)
        summary["passed"] = passes(summary)
        if keep:
            print(f"  {self.target.name}: " + _line(summary), flush=True)
        await asyncio.sleep(2)  # let the engine drain its queues between steps
        return summary

    async def run(self) -> dict[str, Any]:
        await self.target.open()
        try:
            return await self._run()
        finally:
            await self.target.close()

    async def _run(self) -> dict[str, Any]:
        await self.step(rate=min(5.0, self.ramp.start), duration_s=5, keep=False)  # warm-up, not kept
        steps: list[dict[str, Any]] = []
        best: float | None = None
        first_failing: float | None = None
        for rate in self.ramp.rates():
            summary = await self.step(rate, self.ramp.step_s)
            steps.append(summary)
            if summary["passed"]:
                best = rate
            elif first_failing is None:
                first_failing = rate
            if saturated(summary):
                break  # past capacity: higher rates only queue
        if best is not None and first_failing is not None:
            middle = round((best + first_failing) / 2, 1)
            if best < middle < first_failing:
                summary = await self.step(middle, self.ramp.step_s)
                steps.append(summary)
                if summary["passed"]:
                    best = middle
        hold: dict[str, Any] | None = None
        if best is not None:
            hold = await self.step(best, self.ramp.hold_s)
            print(f"  {self.target.name} hold: " + _line(hold), flush=True)
        capacity = max((s["rate"] for s in steps if keeps_up(s)), default=None)
        return {
            "target": self.target.name,
            "entry": self.target.entry,
            "steps": sorted(steps, key=lambda s: s["rate"]),
            "sustained_rate": best if hold and hold["passed"] else None,
            "best_step_rate": best,
            "capacity_rate": capacity,
            "hold": hold,
            "verdict": await self.target.verdict(self.started),
        }


def measure(stack: Stack, names: Sequence[str], ramp: Ramp) -> list[dict[str, Any]]:
    """Each target in turn: launched, measured, removed."""
    bootstrap = stack.env()["KAFKA_BOOTSTRAP_SERVERS"]
    results = []
    for name in names:
        print(f"{name}: launching", flush=True)
        began = time.monotonic()
        with launcher(name)(stack) as target:
            print(f"{name}: ready in {time.monotonic() - began:.1f} s ({target.entry})", flush=True)
            results.append(asyncio.run(Session(target, bootstrap, ramp).run()))
    return results


def shown_step(result: dict[str, Any]) -> dict[str, Any] | None:
    """The step a reader compares: the hold if it passed, else the best passing step, else the slowest step."""
    if result["hold"] and result["hold"]["passed"]:
        return dict(result["hold"])
    passing = [s for s in result["steps"] if s["passed"]]
    if passing:
        return dict(max(passing, key=lambda s: s["rate"]))
    slowest = min(result["steps"], key=lambda s: s["rate"], default=None)
    return None if slowest is None else dict(slowest)


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader compares: sustained rate, the shown step's latency and cost, the peak throughput."""
    shown = shown_step(result)
    if shown is None:
        return {"target": result["target"]}
    return {
        "target": result["target"],
        "sustained_rate": result["sustained_rate"],
        "best_passing_step": result["best_step_rate"],
        "peak_sagas_per_s": max(s["sagas_per_s"] for s in result["steps"]),
        "capacity_rate": result["capacity_rate"],
        "shown_rate": shown["rate"],
        "shown_passed": shown["passed"],
        "sagas_per_s": shown["sagas_per_s"],
        "p50_ms": shown["saga_ms"]["p50"],
        "p99_ms": shown["saga_ms"]["p99"],
        "client_p99_ms": shown["client_ms"]["p99"],
        "cpu_ms_per_saga": round(sum(shown["cpu_ms_per_saga"].values()), 1),
        "server_cpu_ms_per_saga": shown.get("server_cpu_ms_per_saga", {}),
        "commits_per_saga": shown["commits_per_saga"],
        "kafka_records_per_saga": shown["kafka_records_per_saga"],
    }


def ratios(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Ours over the floor's and over DBOS's.

    Peak completed sagas/s (any latency) always; the sustained rates when both sustained one within the budget.
    """
    heads = {r["target"]: headline(r) for r in results}
    out: dict[str, Any] = {}
    for ours in ("checkout-kafka", "checkout-http"):
        for peer in ("floor", "dbos"):
            a, b = heads.get(ours, {}), heads.get(peer, {})
            if a.get("peak_sagas_per_s") and b.get("peak_sagas_per_s"):
                out[f"peak {ours}/{peer}"] = round(a["peak_sagas_per_s"] / b["peak_sagas_per_s"], 3)
            if a.get("sustained_rate") and b.get("sustained_rate"):
                out[f"sustained {ours}/{peer}"] = round(a["sustained_rate"] / b["sustained_rate"], 3)
    return out


def machine() -> dict[str, Any]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        host.processor(),
    )  # fmt: skip
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(memory_kib / 2**20, 1),
            "kernel": host.release(), "python": host.python_version()}  # fmt: skip


def report(results: Sequence[dict[str, Any]], ramp: Ramp) -> dict[str, Any]:
    return {
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "budget": {"p99_ms": P99_BUDGET_S * 1000, "error_rate": ERROR_BUDGET},
        "ramp": ramp.__dict__,
        "headline": [headline(r) for r in results],
        "ratios": ratios(results),
        "targets": list(results),
    }


TABLE_HEAD: Final = (
    "| offered | completed sagas/s | saga p50 / p95 / p99 / p99.9 ms | client p50 / p99 ms | errors | verdict |\n"
    "|---:|---:|---|---|---:|---|"
)


def headline_table(headline: Sequence[dict[str, Any]], ratios: dict[str, Any]) -> list[str]:
    """One row per engine (:func:`headline`), then the ratios: for ``saga.md`` and ``make bench``'s summary."""
    lines = [
        "| engine | sustained sagas/s (p99 < 250 ms) | latency and cost at | p50 ms | p99 ms | client p99 ms | "
        "CPU ms/saga | PostgreSQL + Kafka CPU ms/saga | commits/saga | records/saga | peak sagas/s, any latency |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for h in headline:
        if "shown_rate" not in h:
            lines.append(f"| {h['target']} | — | | | | | | | | | |")
            continue
        sustained = f"{h['sustained_rate']}" if h["sustained_rate"] else "none"
        lines.append(
            f"| {h['target']} | {sustained} | {step_label(h)} | {h['p50_ms']} | {h['p99_ms']} | {h['client_p99_ms']} | "
            f"{h['cpu_ms_per_saga']} | {servers(h.get('server_cpu_ms_per_saga', {}))} | {h['commits_per_saga']} | "
            f"{h['kafka_records_per_saga']} | {h['peak_sagas_per_s']} |"
        )
    if ratios:
        lines += ["", "Ratios: " + ", ".join(f"{k} = {v}" for k, v in ratios.items()) + "."]
    return lines


def markdown(data: dict[str, Any]) -> str:
    m = data["machine"]
    lines = [
        "# Saga throughput: the platform, the floor and DBOS",
        "",
        f"Recorded by `bench/saga/run.py` at {data['recorded_at']} on {m['cpus']} CPUs ({m['cpu_model']}), "
        f"{m['memory_gib']} GiB; the engines, Kafka, PostgreSQL and the Kubernetes control plane share the "
        "machine. Open loop; a step passes with every saga terminal, p99 saga latency < 250 ms and errors "
        "< 0.1 %; the best passing rate is then held.",
        "",
    ]
    lines += headline_table(data["headline"], data["ratios"])
    for result in data["targets"]:
        lines += ["", f"## {result['target']} ({result['entry']})", "", TABLE_HEAD]
        lines += [_row(s) for s in result["steps"]]
        if result["hold"]:
            lines += ["", f"Held {result['hold']['duration_s']:.0f} s:", "", _row(result["hold"], header=True)]
        processes = sorted({k for s in result["steps"] for k in s["cpu_ms_per_saga"]})
        lines += [
            "",
            "| offered | " + " | ".join(processes) + " | total CPU ms | PostgreSQL + Kafka CPU ms "
            "| commits | records |",
            "|---:|" + "---:|" * (len(processes) + 4),
        ]
        for s in result["steps"]:
            cpu = s["cpu_ms_per_saga"]
            lines.append(
                f"| {s['rate']}/s | " + " | ".join(str(cpu.get(p, "")) for p in processes)
                + f" | {sum(cpu.values()):.1f} | {servers(s.get('server_cpu_ms_per_saga', {}))} "
                + f"| {s['commits_per_saga']} | {s['kafka_records_per_saga']} |"
            )  # fmt: skip
        lines += ["", f"Consistency after the run: {result['verdict']}."]
    return "\n".join(lines) + "\n"


def step_label(h: dict[str, Any]) -> str:
    """Which step the row's latency and cost come from."""
    if h["sustained_rate"]:
        return f"held at {h['shown_rate']}/s"
    if h["shown_passed"]:
        return f"step {h['shown_rate']}/s passed, its hold did not"
    return f"{h['shown_rate']}/s, over budget"


def servers(cpu: dict[str, float]) -> str:
    """``postgres 12.3 + kafka 4.5``."""
    return " + ".join(f"{name} {ms}" for name, ms in cpu.items()) or "—"


def _line(s: dict[str, Any]) -> str:
    return (
        f"{s['rate']:6.1f}/s: {s['sagas_per_s']:6.1f} sagas/s, saga p50 {s['saga_ms']['p50']} p99 "
        f"{s['saga_ms']['p99']} ms, client p99 {s['client_ms']['p99']} ms, errors {s['error_rate']:.2%}, "
        f"late {s['generator_max_lateness_ms']} ms, CPU {sum(s['cpu_ms_per_saga'].values()):.1f} ms/saga "
        f"(servers {servers(s['server_cpu_ms_per_saga'])}) "
        f"-> {'pass' if s['passed'] else 'FAIL'}"
    )


def _row(s: dict[str, Any], header: bool = False) -> str:
    q = s["saga_ms"]
    c = s["client_ms"]
    row = (
        f"| {s['rate']}/s | {s['sagas_per_s']:.1f} | {q['p50']} / {q['p95']} / {q['p99']} / {q['p99.9']} "
        f"| {c['p50']} / {c['p99']} | {s['error_rate']:.2%} | {'pass' if s['passed'] else 'over budget'} |"
    )
    return f"{TABLE_HEAD}\n{row}" if header else row


def write(data: dict[str, Any], out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(markdown(data))
    return out.with_suffix(".md")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--start-rate", type=float, default=5)
    parser.add_argument("--factor", type=float, default=1.6, help="rate multiplier per step")
    parser.add_argument("--max-rate", type=float, default=2000)
    parser.add_argument("--step-s", type=float, default=15)
    parser.add_argument("--hold-s", type=float, default=45)
    parser.add_argument("--out", type=Path, default=RESULTS / "saga")
    args = parser.parse_args(argv)
    ramp = Ramp(args.start_rate, args.factor, args.max_rate, args.step_s, args.hold_s)
    data = report(measure(Stack(), args.targets, ramp), ramp)
    print(f"written to {write(data, args.out)}")


if __name__ == "__main__":
    main()
