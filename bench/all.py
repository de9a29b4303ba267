"""``make bench``: every benchmark in one run, recorded under ``bench/results/<date>-<git sha>.*``.

1. The saga benchmark (``saga/run.py``): the platform over HTTP and over Kafka, the floor and DBOS, one after
   the other on the same stack, each ramped to its highest rate within the budget and held there;
2. the operator benchmark (``operator/run.py``): ``kubectl apply`` -> Ready repeated, then N platforms at once.

Writes ``<date>-<sha>.json`` (everything), ``.md`` (the tables) and ``.svg`` (throughput against p99 latency),
copies them to ``latest.*``, and rewrites the README's Performance section (between its ``bench:`` markers)
with the headline table and the plot. ``--full`` runs the long form (longer steps and holds, 10, 50 and 100
platforms, about 40 minutes); the short form (10 platforms) takes about eight minutes on two cores.

    uv run --group bench python bench/all.py            # short form
    uv run --group bench python bench/all.py --full
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Final

ROOT: Final = Path(__file__).resolve().parents[1]
RESULTS: Final = ROOT / "bench" / "results"
README: Final = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
sys.path.insert(0, str(Path(__file__).parent))

from plot import throughput_latency_svg  # noqa: E402


def load(relative: str, name: str) -> ModuleType:
    """Import a bench script by path (``saga/run.py`` and ``operator/run.py`` share the name ``run``)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / relative)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def git_sha() -> str:
    sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, check=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return sha.strip() + ("-dirty" if dirty.stdout.strip() else "")


def operator_table(operator: dict[str, Any]) -> list[str]:
    single = sorted(operator["single"])
    lines = [
        f"Operator, `kubectl apply` -> Ready of one platform ({len(single)} runs): "
        f"p50 {single[len(single) // 2]:.2f} s, p95 {single[min(len(single) - 1, round(0.95 * len(single)))]:.2f} s.",
        "",
        "| platforms at once | apply -> all Ready | operator CPU | peak RSS | edit -> all Ready | delete all |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in operator["bursts"]:
        lines.append(
            f"| {row['platforms']} | {row['apply_to_all_ready_s']:.1f} s | {row['operator_cpu_s_to_ready']:.1f} s "
            f"| {row['operator_peak_rss_mib_end']:.0f} MiB | {row['edit_to_all_ready_s']:.1f} s "
            f"| {row['delete_all_s']:.1f} s |"
        )
    return lines


def summary_markdown(data: dict[str, Any], svg_name: str, run: ModuleType) -> str:
    m = data["saga"]["machine"]
    lines = [
        f"Recorded {data['recorded_at']} at `{data['git_sha']}` by `make bench`{' --full' if data['full'] else ''} "
        f"on {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']}; "
        "Kafka, PostgreSQL and the Kubernetes control plane share the machine with the engines.",
        "",
        *run.headline_table(data["saga"]["headline"], data["saga"]["ratios"]),
        "",
        f"![throughput against p99 latency]({svg_name})",
        "",
        *operator_table(data["operator"]),
    ]
    return "\n".join(lines) + "\n"


def update_readme(section: str) -> None:
    text = README.read_text()
    if START not in text or END not in text:
        print(f"README.md has no {START} ... {END} markers; the Performance section was not updated")
        return
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{section}{END}{tail}")


def publish(data: dict[str, Any], stem: Path, saga_run: ModuleType, *, readme: bool) -> None:
    """Write ``<stem>.json/.md/.svg``, copy them to ``latest.*``, and rewrite the README's Performance section."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    saga = data["saga"]
    title = f"Saga throughput against p99 latency ({data['git_sha']}, {saga['machine']['cpus']} CPUs)"
    stem.with_suffix(".svg").write_text(throughput_latency_svg(saga["targets"], title))
    details = saga_run.markdown(saga)
    stem.with_suffix(".md").write_text(
        "# Benchmarks\n\n" + summary_markdown(data, stem.with_suffix(".svg").name, saga_run) + "\n" + details
    )
    for suffix in (".json", ".md", ".svg"):
        shutil.copyfile(stem.with_suffix(suffix), RESULTS / f"latest{suffix}")
    if readme:
        update_readme(summary_markdown(data, "bench/results/latest.svg", saga_run))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="long steps and holds, 100 platforms")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md as it is")
    parser.add_argument("--render", type=Path, help="only re-render the .md, .svg and README of a recorded .json")
    args = parser.parse_args(argv)
    saga_run = load("saga/run.py", "saga_run")
    if args.render:
        data = json.loads(args.render.read_text())
        data["saga"]["headline"] = [saga_run.headline(r) for r in data["saga"]["targets"]]
        data["saga"]["ratios"] = saga_run.ratios(data["saga"]["targets"])
        publish(data, args.render.with_suffix(""), saga_run, readme=not args.no_readme)
        return
    operator_run = load("operator/run.py", "operator_run")
    from checkout_stack.stack import Stack

    began = time.monotonic()
    if args.full:
        ramp = saga_run.Ramp(start=5, factor=1.5, ceiling=2000, step_s=20, hold_s=60)
        bursts, repeats = [10, 50, 100], 10
    else:
        ramp = saga_run.Ramp(start=5, factor=2.0, ceiling=2000, step_s=8, hold_s=15)
        bursts, repeats = [10], 5
    saga = saga_run.report(saga_run.measure(Stack(), saga_run.TARGETS, ramp), ramp)
    saga_s = time.monotonic() - began
    operator = operator_run.run(bursts, repeats)
    data = {
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "full": args.full,
        "durations_s": {"saga": round(saga_s, 1), "operator": round(time.monotonic() - began - saga_s, 1)},
        "saga": saga,
        "operator": {"repeats": repeats, **operator},
    }
    stem = RESULTS / f"{dt.datetime.now(dt.UTC):%Y-%m-%d}-{data['git_sha']}"
    publish(data, stem, saga_run, readme=not args.no_readme)
    print(f"written {stem}.{{json,md,svg}} and bench/results/latest.* in {time.monotonic() - began:.0f} s")


if __name__ == "__main__":
    main()
