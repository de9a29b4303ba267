"""Where a saga's CPU goes: py-spy samples every process of a target under a fixed open-loop rate.

    uv run --group bench python bench/saga/profile.py --target checkout-kafka --rate 5 --seconds 30

For each process of the target, py-spy (100 Hz, idle frames dropped) writes collapsed
stacks to ``<out>/<target>/<process>.folded`` (open them with any flame-graph viewer, e.g. speedscope) and
this script prints the functions with the most samples, self and inclusive, as a share of the process's
busy samples. ``--top`` sets how many. Needs the local stack (``make up``) and ptrace rights (root, or
``kernel.yama.ptrace_scope`` 0).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "e2e" / "saga"))
sys.path.insert(0, str(Path(__file__).parent))

from loadgen import open_loop  # noqa: E402
from run import TARGETS, launcher, settle  # noqa: E402
from target import Target  # noqa: E402

from checkout_stack.stack import Stack  # noqa: E402

PY_SPY: Final = Path(sys.executable).parent / "py-spy"


def record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` (and its children) for ``seconds``; collapsed stacks to ``out``."""
    command = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100",
               "--subprocesses", "--format", "raw", "--output", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def top_functions(folded: Path, count: int) -> list[str]:
    """The busiest frames of a collapsed-stack file: self and inclusive share of all samples."""
    self_samples: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        samples = int(n)
        frames = [f.split(" (", 1)[0] + " " + _where(f) for f in stack.split(";")[1:]]  # drop the process frame
        if not frames:
            continue
        total += samples
        self_samples[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    lines = [f"{total} busy samples"]
    lines += [f"  self {100 * n / total:5.1f}%  {frame}" for frame, n in self_samples.most_common(count)]
    lines += [f"  incl {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(count * 2)]
    return lines


def _where(frame: str) -> str:
    """``(site-packages/aiokafka/conn.py:123)`` shortened to the package path."""
    if " (" not in frame:
        return ""
    location = frame.split(" (", 1)[1].rstrip(")")
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in location:
            return "(" + location.split(marker, 1)[1] + ")"
    return "(" + location + ")"


async def load(target: Target, rate: float, seconds: float) -> str:
    await target.open()
    try:
        await open_loop(target.start, rate=min(rate, 5), duration_s=5, first_index=-10_000)  # warm-up
        step = await open_loop(target.start, rate=rate, duration_s=seconds, first_index=0)
        ids = [a.saga_id for a in step.accepted if a.saga_id]
        outcomes = await settle(target, ids, timeout_s=120)
        done = sum(1 for o in outcomes if o.terminal)
        return f"{len(step.arrivals)} started, {done} terminal, {len(step.errors)} refused"
    finally:
        await target.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=TARGETS, default="checkout-kafka")
    parser.add_argument("--rate", type=float, default=5)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=ROOT / ".run" / "profiles")
    args = parser.parse_args(argv)
    out = args.out / args.target
    out.mkdir(parents=True, exist_ok=True)
    with launcher(args.target)(Stack()) as target:
        pids = target.pgids()
        spies = {name: record(pid, args.seconds + 8, out / f"{name}.folded") for name, pid in pids.items()}
        time.sleep(1)
        print(asyncio.run(load(target, args.rate, args.seconds)), flush=True)
        for name, spy in spies.items():
            _, err = spy.communicate()
            if spy.returncode != 0:
                print(f"py-spy on {name} failed: {err.decode()[-500:]}")
    for name in pids:
        folded = out / f"{name}.folded"
        if folded.exists():
            print(f"\n== {name} ({folded})")
            print("\n".join(top_functions(folded, args.top)))


if __name__ == "__main__":
    main()
