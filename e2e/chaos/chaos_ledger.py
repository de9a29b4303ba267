"""The reliability ledger: every fault row, hostile-input check and privilege check a run measured.

Tests append one JSON line per result to the ledger file; ``reliability.py`` renders the last
``make chaos`` run's ledger into ``RELIABILITY.md``. The file is ``$CHAOS_LEDGER`` when set (``make
chaos`` sets a fresh one per run), else ``.run/chaos/ledger.jsonl`` (appended across runs, so a
``make test`` leaves a trail too). Writing is append-only and line-atomic: several suites of one run
may write to the same file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from checkout_stack.settings import REPO_ROOT

DEFAULT_LEDGER: Final = REPO_ROOT / ".run" / "chaos" / "ledger.jsonl"
Section = Literal["hostile-input", "privilege"]


def ledger_path() -> Path:
    """Where results go: ``$CHAOS_LEDGER`` or ``.run/chaos/ledger.jsonl``."""
    configured = os.environ.get("CHAOS_LEDGER")
    return Path(configured) if configured else DEFAULT_LEDGER


@dataclass
class FaultRow:
    """One row of the fault matrix: a fault injected under load and what the invariant checker found after."""

    fault: str
    """What was done, e.g. ``SIGKILL payment``, ``Kafka SIGSTOP 15 s``, ``toxiproxy 200 ms latency to PostgreSQL``."""
    load: str
    """The load during it, e.g. ``4 checkouts/s`` (or ``none``)."""
    in_flight: int
    """Sagas the fault caught: started before it was over (for a crash: before the restart was ready),
    not finished before it began."""
    started: int
    """Sagas the run started (the checker's population for this row)."""
    lost: int
    """Accepted checkouts with no saga, or a saga that never reached a terminal state within the budget."""
    duplicated: int
    """Double charges, double refunds, orders beyond one per saga."""
    stuck: int
    """Sagas non-terminal past their deadline budget."""
    stock_conserved: bool
    lag_drained: bool
    """Every consumer group's lag back to 0 after recovery."""
    recovery_s: float | None
    """From the fault's end (or injection, for a crash) to the first checkout completing end to end again."""
    holds: bool
    """Whether the row holds: nothing lost, duplicated or stuck, stock conserved, lag drained."""
    detail: str = ""
    """Outcome counts, violations, anything worth reading next to the row."""
    group: str = "platform"
    """``platform`` (the services, Kafka, PostgreSQL, the network) or ``operator`` (the control plane)."""
    at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))


def record_fault(row: FaultRow) -> None:
    """Append a fault row."""
    _append({"kind": "fault", **asdict(row)})


def record_check(section: Section, check: str, outcome: str, *, passed: bool, detail: str = "") -> None:
    """Append a hostile-input or privilege result, e.g. ``("privilege", "inventory role reads payment.charges",
    "denied: permission denied for schema payment", passed=True)``."""
    _append(
        {
            "kind": "check",
            "section": section,
            "check": check,
            "outcome": outcome,
            "passed": passed,
            "detail": detail,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
    )


def read_ledger(path: Path | None = None) -> list[dict[str, Any]]:
    """Every entry of a ledger file (missing file: none)."""
    source = path or ledger_path()
    if not source.exists():
        return []
    return [json.loads(line) for line in source.read_text().splitlines() if line.strip()]


def _append(entry: dict[str, Any]) -> None:
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    # One write() of one line with O_APPEND: lines from concurrent writers do not interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
