"""The platform's fault matrix: each fault injected under a steady checkout load, then the invariants.

A row (:func:`run_row`): start the load, let it settle, inject the fault (which returns once the
fault is over and whatever a kubelet would restart is restarted), keep the load on a little longer,
stop it, wait — bounded — for every accepted saga to be terminal, wait for every consumer group's
lag and every outbox's backlog to reach 0, then run the invariant checker over the row's sagas and
record the row in the ledger. Recovery time: from the moment the fault hit (a crash) or was lifted
(a network fault, a stopped broker) to the first checkout *offered after that moment* completing.

Faults reach the shared stack's Kafka and PostgreSQL processes (SIGKILL, SIGSTOP, immediate
shutdown) and the instance's services (SIGKILL, failpoints); network faults go through toxiproxy
proxies that the instance's services use for every Kafka and PostgreSQL connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata
from chaos_ledger import FaultRow, record_fault
from chaos_load import LoadReport, SteadyLoad
from saga_platform import DEADLINE_BUDGET_S, SagaPlatform, checkout_body
from toxiproxy_api import Toxiproxy

from checkout_invariants import check
from checkout_stack.components.platform_services import ServicesError
from checkout_stack.processes import ManagedProcess
from checkout_stack.settings import SERVICE_NAMES
from checkout_stack.stack import Stack

TERMINAL: Final = ("COMPLETED", "FAILED")
CONSUMERS: Final = {
    "checkout-orchestrator": "checkout-events",
    "inventory": "inventory-command",
    "payment": "payment-command",
    "order": "order-command",
}
"""Each consuming service → the topic its group reads (the group is ``<prefix>.<service>``)."""
KAFKA_PROXY: Final = "chaos-kafka"
POSTGRES_PROXY: Final = "chaos-postgres"
DUPLICATES: Final = ("double-charge", "double-refund", "completed-without-one-order")
"""The checker's violations that mean an effect happened twice."""
RESTART_DELAY_S: Final = 2.0
"""How long a crashed process stays down before it is started again (a kubelet's first back-off)."""
SERVER_START_TIMEOUT_S: Final = 600.0
"""How long a restarted Kafka or PostgreSQL may take to be healthy. A broker that fails to come up in
time is stopped again by the stack, which would take every later test down with it: after a SIGKILL it
replays its logs and waits out its own stale registration, minutes on a loaded 2-core machine."""


def _restart_server(chaos: Chaos, name: str) -> None:
    patient = Stack(chaos.shared.settings.model_copy(update={"start_timeout_s": SERVER_START_TIMEOUT_S}))
    patient.up([name])


@dataclass(frozen=True)
class Timing:
    """How long each phase of a row lasts."""

    rate: float = 2.0
    """Checkouts offered a second."""
    settle_s: float = 4.0
    """Load before the fault."""
    after_s: float = 8.0
    """Load after the fault is over."""
    drain_s: float = 180.0
    """Longest wait for every accepted saga to be terminal (then the rest count as stuck)."""
    lag_s: float = 90.0
    """Longest wait for consumer lag and outbox backlog to reach 0."""


@dataclass
class Chaos:
    """What a fault can reach: the instance, the shared stack, toxiproxy."""

    platform: SagaPlatform
    shared: Stack
    toxiproxy: Toxiproxy
    row_started: dict[str, dict[int, int]]
    """Per topic: partition → end offset when the row began (the replay fault rewinds to it)."""


Inject = Callable[[Chaos], float]
"""Injects a fault and returns when it is over; returns the wall time recovery is measured from."""


@dataclass(frozen=True)
class Fault:
    """A row of the matrix."""

    label: str
    inject: Inject
    short: bool = False
    """Part of the short form (``make test``); the full form (``make chaos``) runs every row."""


# --- the faults -----------------------------------------------------------------------------------


def _wait_dead(process: ManagedProcess, pid: int, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} (pid {pid}) still alive {timeout_s:.0f} s after the signal")
        time.sleep(0.05)
    del process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0: read its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def kill_service(service: str) -> Inject:
    """SIGKILL the service's process group, then start it again after :data:`RESTART_DELAY_S`."""

    def inject(chaos: Chaos) -> float:
        chaos.platform.kill_service(service)
        hit = time.time()
        time.sleep(RESTART_DELAY_S)
        chaos.platform.start_again(service)
        return hit

    return inject


def failpoint(service: str, point: str, hit: int) -> Inject:
    """Run ``service`` with ``FAILPOINTS=<point>=kill@<hit>`` until it SIGKILLs itself there, then without."""

    def inject(chaos: Chaos) -> float:
        try:
            try:
                chaos.platform.set_env(service, {"FAILPOINTS": f"{point}=kill@{hit}"})
            except ServicesError as error:
                # Under load the armed process may reach its failpoint before the launcher saw it ready.
                if f"failpoint {point} reached" not in str(error):
                    raise
            else:
                services = chaos.platform.stack.services
                pid = services.process(services.by_name(service)).pid()
                deadline = time.monotonic() + 60
                while pid is not None and _alive(pid):
                    assert time.monotonic() < deadline, f"{service} never reached {point} {hit} times in 60 s"
                    time.sleep(0.05)
            hit_at = time.time()
            time.sleep(RESTART_DELAY_S)
        finally:
            # Disarmed whatever happened: an armed service would die again in every later row.
            chaos.platform.set_env(service, {"FAILPOINTS": None})
        return hit_at

    return inject


def _kafka_process(chaos: Chaos) -> tuple[ManagedProcess, int]:
    process = chaos.shared.kafka.process()
    pid = process.pid()
    assert pid is not None, "the stack's Kafka is not running"
    return process, pid


def kafka_kill(chaos: Chaos) -> float:
    """SIGKILL the broker; start it again (log recovery included) after the restart delay."""
    process, pid = _kafka_process(chaos)
    os.killpg(pid, signal.SIGKILL)
    _wait_dead(process, pid, "Kafka")
    hit = time.time()
    time.sleep(RESTART_DELAY_S)
    _restart_server(chaos, "kafka")
    return hit


def kafka_stop(seconds: float) -> Inject:
    """SIGSTOP the broker for ``seconds`` (longer than the consumers' session timeout), then SIGCONT."""

    def inject(chaos: Chaos) -> float:
        _, pid = _kafka_process(chaos)
        os.killpg(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.killpg(pid, signal.SIGCONT)
        return time.time()

    return inject


def postgres_immediate_restart(chaos: Chaos) -> float:
    """``pg_ctl stop -m immediate`` (SIGQUIT to the postmaster: no checkpoint, crash recovery at start)."""
    process = chaos.shared.postgres.process()
    pid = process.pid()
    assert pid is not None, "the stack's PostgreSQL is not running"
    os.kill(pid, signal.SIGQUIT)
    _wait_dead(process, pid, "PostgreSQL")
    hit = time.time()
    time.sleep(RESTART_DELAY_S)
    _restart_server(chaos, "postgres")
    return hit


def toxic(
    kind: str,
    attributes: Mapping[str, Any],
    seconds: float,
    proxies: tuple[str, ...],
    streams: tuple[str, ...] = ("upstream", "downstream"),
) -> Inject:
    """A toxiproxy toxic on the instance's Kafka and/or PostgreSQL connections for ``seconds``."""

    def inject(chaos: Chaos) -> float:
        with chaos.toxiproxy.toxic(list(proxies), kind, attributes, streams):
            time.sleep(seconds)
        return time.time()

    return inject


def replay(chaos: Chaos) -> float:
    """Stop every consumer, rewind its group to where the row began, start them: every message again."""
    platform = chaos.platform
    for service in CONSUMERS:
        platform.stop_service(service)
    asyncio.run(_rewind(platform, chaos.row_started))
    platform.start_again(*CONSUMERS)
    return time.time()


def duplicate(chaos: Chaos) -> float:
    """Produce every record of the row so far on each consumed topic a second time (same key, value, headers)."""
    asyncio.run(_duplicate(chaos.platform, chaos.row_started))
    return time.time()


PLATFORM_FAULTS: Final = (
    Fault("SIGKILL checkout-orchestrator", kill_service("checkout-orchestrator"), short=True),
    Fault("SIGKILL gateway-bff", kill_service("gateway-bff")),
    Fault("SIGKILL inventory", kill_service("inventory")),
    Fault("SIGKILL payment", kill_service("payment"), short=True),
    Fault("SIGKILL order", kill_service("order")),
    Fault(
        "failpoint: payment killed after DB commit, before offset commit",
        failpoint("payment", "consumer.after-db-commit", 12),
        short=True,
    ),
    Fault(
        "failpoint: orchestrator killed after DB commit, before offset commit",
        failpoint("checkout-orchestrator", "consumer.after-db-commit", 30),
    ),
    Fault(
        "failpoint: orchestrator's outbox relay killed after publish, before marking sent",
        failpoint("checkout-orchestrator", "outbox.after-publish", 20),
        short=True,
    ),
    Fault(
        "failpoint: gateway's outbox relay killed after publish, before marking sent",
        failpoint("gateway-bff", "outbox.after-publish", 10),
    ),
    Fault(
        "failpoint: inventory's outbox relay killed after publish, before marking sent",
        failpoint("inventory", "outbox.after-publish", 10),
    ),
    Fault("Kafka broker SIGKILL, restarted", kafka_kill, short=True),
    Fault("Kafka broker SIGSTOP 15 s (session timeout 10 s)", kafka_stop(15)),
    Fault("PostgreSQL immediate shutdown, restarted", postgres_immediate_restart, short=True),
    Fault(
        "toxiproxy: +200 ms latency to Kafka and PostgreSQL for 20 s",
        toxic("latency", {"latency": 200, "jitter": 0}, 20, (KAFKA_PROXY, POSTGRES_PROXY), ("downstream",)),
    ),
    Fault(
        "toxiproxy: connections to Kafka and PostgreSQL reset for 10 s",
        toxic("reset_peer", {"timeout": 0}, 10, (KAFKA_PROXY, POSTGRES_PROXY)),
        short=True,
    ),
    Fault(
        "toxiproxy: Kafka blackholed for 30 s",
        toxic("timeout", {"timeout": 0}, 30, (KAFKA_PROXY,)),
    ),
    Fault(
        "toxiproxy: PostgreSQL blackholed for 30 s",
        toxic("timeout", {"timeout": 0}, 30, (POSTGRES_PROXY,)),
    ),
    Fault("replay: every consumer group rewound to the row's start", replay, short=True),
    Fault("duplicates: every record of the row produced again", duplicate),
)


# --- a row ----------------------------------------------------------------------------------------


def row_sku(index: int) -> str:
    """The SKU row ``index`` sells (one per row, so each row's stock is its own)."""
    return f"CHAOS-{index:02d}"


def run_row(chaos: Chaos, fault: Fault, sku: str, stock_before: Mapping[str, int], timing: Timing) -> FaultRow:
    """Run one row (see the module docstring) and record it; the caller asserts ``row.holds``."""
    platform = chaos.platform
    platform.start_again(*SERVICE_NAMES)  # whatever an earlier row left down
    chaos.row_started.clear()
    chaos.row_started.update(asyncio.run(_end_offsets(platform)))
    bodies = [checkout_body({sku: 1}, customer=f"cust_chaos_{n}") for n in range(9)]
    bodies.append(checkout_body({sku: 1}, card="tok_chargeDeclined", customer="cust_chaos_declined"))

    load = SteadyLoad(platform.bff_url, timing.rate, bodies)
    with load:
        time.sleep(timing.settle_s)
        fault_began = time.time()
        recovered_from = fault.inject(chaos)
        fault_over = time.time()
        time.sleep(timing.after_s)
    report = load.report
    platform.started.extend(report.saga_ids)

    asyncio.run(_wait_terminal(platform.dsn, report.saga_ids, timing.drain_s))
    lag, backlog = asyncio.run(_wait_drained(platform, timing.lag_s))
    states = asyncio.run(_states(platform.dsn, report.saga_ids))  # after the drain: the final word
    in_flight = asyncio.run(_in_flight(platform.dsn, report.saga_ids, fault_began, fault_over))
    checked = asyncio.run(
        check(
            platform.dsn,
            stock_before=stock_before,
            deadline_budget=dt.timedelta(seconds=DEADLINE_BUDGET_S),
            saga_ids=report.saga_ids,
        )
    )
    lost = sum(1 for saga_id in report.saga_ids if saga_id not in states)
    stuck = sum(1 for state in states.values() if state not in TERMINAL)
    duplicated = sum(1 for v in checked.violations if v.invariant in DUPLICATES)
    stock_ok = not any(v.invariant in ("stock-not-conserved", "reserved-mismatch") for v in checked.violations)
    recovery = asyncio.run(_recovery_s(platform.dsn, report, recovered_from))
    outcomes = ", ".join(f"{state} {n}" for state, n in sorted(_count(states).items()))
    detail = [f"{len(report.accepted)} accepted ({outcomes}), {report.refused} refused, {report.retried} retries"]
    if report.errors:
        detail.append(f"refusals: {'; '.join(report.errors[:2])}")
    if lag:
        detail.append(f"lag left: {lag}")
    if backlog:
        detail.append(f"outbox backlog left: {backlog}")
    if not checked.ok:
        detail.append(checked.summary())
    row = FaultRow(
        fault=fault.label,
        load=f"{timing.rate:g} checkouts/s",
        in_flight=in_flight,
        started=len(report.accepted),
        lost=lost,
        duplicated=duplicated,
        stuck=stuck,
        stock_conserved=stock_ok,
        lag_drained=not lag and not backlog,
        recovery_s=recovery,
        holds=lost == 0 and stuck == 0 and checked.ok and not lag and not backlog and recovery is not None,
        detail="; ".join(detail),
    )
    record_fault(row)
    return row


def _count(states: Mapping[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return counts


async def _states(dsn: str, saga_ids: list[str]) -> dict[str, str]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT saga_id::text AS id, state FROM orchestrator.sagas WHERE saga_id = ANY($1::uuid[])", saga_ids
        )
    finally:
        await connection.close()
    return {row["id"]: row["state"] for row in rows}


async def _in_flight(dsn: str, saga_ids: list[str], began: float, over: float) -> int:
    """Sagas the fault caught: started before it was over, not finished before it began."""
    connection = await asyncpg.connect(dsn)
    try:
        count = await connection.fetchval(
            "SELECT count(*) FROM orchestrator.sagas WHERE saga_id = ANY($1::uuid[]) "
            "AND created_at < to_timestamp($3) AND (finished_at IS NULL OR finished_at > to_timestamp($2))",
            saga_ids,
            began,
            over,
        )
    finally:
        await connection.close()
    return int(count)


async def _wait_terminal(dsn: str, saga_ids: list[str], timeout_s: float) -> dict[str, str]:
    """Poll until every saga is terminal or ``timeout_s`` passed; the states as last read."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            states = await _states(dsn, saga_ids)
        except (OSError, asyncpg.PostgresError):
            states = {}  # PostgreSQL still restarting: ask again
        if (len(states) == len(saga_ids) and all(s in TERMINAL for s in states.values())) or (
            time.monotonic() > deadline
        ):
            return states
        await asyncio.sleep(0.5)


async def _recovery_s(dsn: str, report: LoadReport, since: float) -> float | None:
    """From ``since`` to the first completion of a checkout offered at or after it."""
    after = [a.saga_id for a in report.accepted if a.offered_at >= since]
    if not after:
        return None
    connection = await asyncpg.connect(dsn)
    try:
        first = await connection.fetchval(
            "SELECT min(finished_at) FROM orchestrator.sagas WHERE saga_id = ANY($1::uuid[]) AND state = 'COMPLETED'",
            after,
        )
    finally:
        await connection.close()
    return None if first is None else round(first.timestamp() - since, 2)


# --- Kafka: offsets, lag, replay, duplicates ------------------------------------------------------


def _topics(platform: SagaPlatform) -> list[str]:
    return [platform.topic(topic) for topic in CONSUMERS.values()]


async def _end_offsets(platform: SagaPlatform) -> dict[str, dict[int, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=platform.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        count = platform.settings.topic_partitions
        partitions = [TopicPartition(topic, p) for topic in _topics(platform) for p in range(count)]
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    offsets: dict[str, dict[int, int]] = {}
    for tp, end in ends.items():
        offsets.setdefault(tp.topic, {})[tp.partition] = int(end)
    return offsets


async def _lag(platform: SagaPlatform) -> dict[str, int]:
    """Per consumer group: end offsets minus committed offsets, summed over its partitions."""
    ends = await _end_offsets(platform)
    admin = AIOKafkaAdminClient(bootstrap_servers=platform.bootstrap_servers)
    await admin.start()
    try:
        lag: dict[str, int] = {}
        for service, topic in CONSUMERS.items():
            group = f"{platform.prefix}.{service}"
            committed = await admin.list_consumer_group_offsets(group)
            behind = 0
            for partition, end in ends[platform.topic(topic)].items():
                meta = committed.get(TopicPartition(platform.topic(topic), partition))
                behind += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
            if behind:
                lag[group] = behind
    finally:
        await admin.close()
    return lag


async def _backlog(dsn: str) -> dict[str, int]:
    """Per schema with an outbox: rows not yet published."""
    connection = await asyncpg.connect(dsn)
    try:
        schemas = [
            r["table_schema"]
            for r in await connection.fetch(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
            )
        ]
        backlog = {}
        for schema in schemas:
            # Schema names come from the catalogue, quoted: nothing here is user input.
            n = await connection.fetchval(f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL')  # noqa: S608
            if n:
                backlog[schema] = int(n)
    finally:
        await connection.close()
    return backlog


async def _wait_drained(platform: SagaPlatform, timeout_s: float) -> tuple[dict[str, int], dict[str, int]]:
    """Poll until lag and outbox backlog are 0 or ``timeout_s`` passed; what is left."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag, backlog = await _lag(platform), await _backlog(platform.dsn)
        if (not lag and not backlog) or time.monotonic() > deadline:
            return lag, backlog
        await asyncio.sleep(1)


async def _rewind(platform: SagaPlatform, to: Mapping[str, Mapping[int, int]]) -> None:
    """Commit each (now empty) group's offsets back to ``to``."""
    for service, topic in CONSUMERS.items():
        name = platform.topic(topic)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=platform.bootstrap_servers,
            group_id=f"{platform.prefix}.{service}",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(name, p) for p in to[name]]
            consumer.assign(partitions)
            await consumer.commit({tp: OffsetAndMetadata(to[name][tp.partition], "") for tp in partitions})
        finally:
            await consumer.stop()


async def _duplicate(platform: SagaPlatform, since: Mapping[str, Mapping[int, int]]) -> None:
    """Copy every record from ``since`` to the end of each consumed topic onto the topic again."""
    ends = await _end_offsets(platform)
    consumer = AIOKafkaConsumer(bootstrap_servers=platform.bootstrap_servers, enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=platform.bootstrap_servers, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        for topic, partitions in since.items():
            for partition, start in partitions.items():
                end = ends[topic][partition]
                if end <= start:
                    continue
                tp = TopicPartition(topic, partition)
                consumer.assign([tp])
                consumer.seek(tp, start)
                copied = start
                while copied < end:
                    batch = await consumer.getmany(tp, timeout_ms=2_000)
                    records = batch.get(tp, [])
                    if not records:
                        raise AssertionError(f"{topic}[{partition}]: no records between {copied} and {end}")
                    for record in records:
                        if record.offset >= end:
                            break
                        await producer.send_and_wait(
                            topic, record.value, key=record.key, headers=list(record.headers), partition=partition
                        )
                    copied = records[-1].offset + 1
    finally:
        await producer.stop()
        await consumer.stop()
