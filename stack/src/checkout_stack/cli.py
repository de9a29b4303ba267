"""``checkout-stack``: install, start, stop and inspect the local stack (the Makefile's verbs)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from checkout_stack.components.base import Status
from checkout_stack.components.platform_services import SERVICES
from checkout_stack.console import console
from checkout_stack.demo import (
    CHECKOUT_SERVICES,
    DEMO,
    DemoError,
    cluster_of,
    platform_env,
    platform_running,
    run_demo,
    run_demo_checkout,
    service_urls,
    stop_platform,
)
from checkout_stack.processes import memory_by_process
from checkout_stack.smoke import run_smoke
from checkout_stack.stack import Stack
from checkout_stack.trace_view import LATEST_CHECKOUT_RULE, TraceViewError, show_trace


def _table(title: str, rows: list[Status], memory: dict[str, int]) -> Table:
    table = Table(title=title)
    for column in ("component", "version", "address", "process", "health", "memory"):
        table.add_column(column, justify="right" if column == "memory" else "left")
    for row in rows:
        rss = memory.get(row.name)
        if row.detail == "missing":
            health = "[yellow]missing[/yellow]"
        else:
            health = "[green]healthy[/green]" if row.healthy else "[red]unhealthy[/red]"
        table.add_row(
            row.name,
            row.version,
            row.address,
            "[green]running[/green]" if row.running else "[dim]stopped[/dim]",
            health,
            f"{rss / 2**20:.0f} MiB" if rss else "",
        )
    return table


def _status(stack: Stack, check: bool, names: list[str] | None = None) -> int:
    memory = memory_by_process(stack.settings.run_dir)
    console.print(_table("CheckoutPlatform local stack", stack.statuses(), memory))
    console.print(f"resident memory of the stack: {sum(memory.values()) / 2**20:.0f} MiB")
    console.print(f"logs: {stack.settings.logs_dir}")
    checked = [row for c in stack.select(names or []) if c is not stack.services for row in c.statuses()]
    if names and stack.services.name in names:
        return _services_status(stack, check)
    return 1 if check and not all(r.healthy for r in checked) else 0


def _services_status(stack: Stack, check: bool) -> int:
    """The services' table; with ``check``, 1 unless every service that can run is healthy."""
    rows = stack.services.statuses()
    console.print(_table("CheckoutPlatform services", rows, memory_by_process(stack.settings.run_dir)))
    missing = [row.name for row in rows if row.detail == "missing"]
    if missing:
        console.print(f"not built yet (skipped): {', '.join(missing)}")
    console.print(
        f'logs: {stack.settings.logs_dir}/<service>.log; `eval "$(make -s env)"` exports BFF_URL and the rest'
    )
    present = [row for row in rows if row.detail != "missing"]
    return 1 if check and not (present and all(row.healthy for row in present)) else 0


def _services(stack: Stack, action: str, names: list[str]) -> int:
    """`checkout-stack services up|down|status [NAME...]`."""
    if names:
        try:
            services = stack.settings.services.model_validate(
                {**stack.settings.services.model_dump(), "enabled": names}
            )
        except ValidationError as error:
            raise SystemExit(f"checkout-stack services: {error.errors()[0]['msg']}") from error
        stack = Stack(stack.settings.model_copy(update={"services": services}))
    if action == "up":
        agent_pid = platform_running(stack)
        if agent_pid is not None:
            # The other half of demo._make_way: one copy of the services at a time on 8100-8106.
            raise SystemExit(
                f"checkout-stack services up: the platform `make demo` installed is running (node agent pid "
                f"{agent_pid}) and its Services answer on the ports these services take; stop its processes with "
                "`uv run checkout-stack demo down` (the CheckoutPlatform and its data stay; `make demo` brings them "
                "back), then run this again"
            )
        stack.up([stack.services.name])
        return _services_status(stack, check=True)
    if action == "down":
        stack.down([stack.services.name])
        left = [line for line in stack.leftover_processes() if any(f" -m {s.package}" in line for s in SERVICES)]
        if left:
            console.print("[red]service processes still running:[/red]\n" + "\n".join(left))
            return 1
        return 0
    return _services_status(stack, check=False)


def _test(stack: Stack, pytest_args: list[str]) -> int:
    """Bring the stack up, run pytest, and stop again whatever this command started."""
    started = stack.up()
    try:
        command = [sys.executable, "-m", "pytest", *pytest_args]
        console.print(f"$ {shlex.join(command)}")
        return subprocess.run(command, check=False).returncode
    finally:
        if started:
            stack.down([c.name for c in started])
        if len(started) == len(stack.components):
            leftovers = stack.leftover_processes()
            if leftovers:
                console.print("[red]processes left behind:[/red]\n" + "\n".join(leftovers))


def _demo_checkout(stack: Stack) -> int:
    """`checkout-stack demo-checkout`: one checkout against the demo's platform if it runs, else `make services`."""
    try:
        if platform_running(stack) is not None:
            agent = DEMO.agent(stack.settings.run_dir)
            urls = service_urls(cluster_of(stack), DEMO, agent)
            logs = f"{agent.state_dir}/pods/{DEMO.namespace}_*/"
        elif stack.services.healthy():
            urls = {name: stack.services.url(stack.services.by_name(name)) for name in CHECKOUT_SERVICES}
            logs = f"{stack.settings.logs_dir}/<service>.log"
        else:
            raise SystemExit(
                "demo checkout: neither the demo's platform nor `make services` is running; `make demo` installs "
                "and starts the platform, `make services` starts the services alone (`checkout-stack services "
                "status` shows which one is not ready)"
            )
        saga_id = run_demo_checkout(urls, logs=logs)
    except DemoError as error:
        raise SystemExit(f"demo checkout: {error}") from error
    console.print(f"`curl {urls['gateway-bff']}/api/checkout/{saga_id}`; `make trace SAGA={saga_id}` shows its trace")
    return 0


def _env(stack: Stack) -> int:
    """`checkout-stack env`: the stack's exports; while the demo's platform runs, its Services' URLs instead."""
    values = stack.env()
    served = platform_env(stack)
    if served:
        for service in SERVICES:  # the launcher's addresses: nothing answers there while the platform runs
            values.pop(service.url_variable, None)
    values.update(served)
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def _trace(stack: Stack, saga_id: str | None, trace_id: str | None, svg: Path | None) -> int:
    """`checkout-stack trace`: the waterfall on stdout, the SVG in the run directory (or ``svg``)."""
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    try:
        show_trace(
            stack.jaeger.query_url, stack.settings.run_dir, out, saga_id=saga_id, trace_id=trace_id, svg_path=svg
        )
    except TraceViewError as error:
        raise SystemExit(f"checkout-stack trace: {error}") from error
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="checkout-stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("setup", "install every component (idempotent; cached by version)"),
        ("up", "start the stack (installs what is missing first)"),
        ("down", "stop the stack; data stays in the run directory"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("components", nargs="*", help="only these components (default: all)")
    status = commands.add_parser("status", help="each component's version, address and health")
    status.add_argument("--check", action="store_true", help="exit 1 unless everything is healthy")
    services = commands.add_parser("services", help="the six platform services against the stack (not in plain up)")
    services.add_argument("action", choices=("up", "down", "status"), help="start, stop or show them")
    services.add_argument("names", nargs="*", help="only these services (default: every one that is built)")
    commands.add_parser(
        "env", help="print export lines that reach the running stack (and the demo's platform, when it runs)"
    )
    commands.add_parser("smoke", help="a round trip through every component, printing what it did")
    demo = commands.add_parser(
        "demo",
        help="`make demo`: up, a round trip, helm install + kubectl apply of the platform, a checkout and its trace",
        description=(
            "up: the stack up and a round trip through it, the node agent, `helm upgrade --install` of the operator "
            "chart, `kubectl apply` of a CheckoutPlatform, Ready, every Deployment's processes, one checkout through "
            "the gateway's Service, its saga timeline and trace waterfall, and where to look; idempotent. down: stop "
            "the platform's processes (the node agent); the CheckoutPlatform, the release and the data stay."
        ),
    )
    demo.add_argument("action", nargs="?", choices=("up", "down"), default="up", help="default: up")
    commands.add_parser(
        "demo-checkout",
        help="stock two SKUs, run one checkout through the gateway, print its saga (the demo's platform, "
        "else `make services`)",
    )
    trace = commands.add_parser(
        "trace",
        help="the latest checkout's trace (or a saga's, or a trace id's) as a waterfall and an SVG file",
        description=(
            "Render one trace from Jaeger's query API as a waterfall: one line per span, indented under its "
            "parent, with service, start offset and duration in ms and a bar on a common time axis; error spans "
            "are marked, and so are spans that start before their parent (clock skew: shown as measured). "
            f"Without an id it shows the latest checkout: {LATEST_CHECKOUT_RULE}."
        ),
    )
    which = trace.add_mutually_exclusive_group()
    which.add_argument(
        "--saga-id",
        metavar="ID",
        help="the trace with a span tagged checkout.saga.id=ID (of checkout-orchestrator, else gateway-bff)",
    )
    which.add_argument("--trace-id", metavar="ID", help="this trace (32 hex digits)")
    trace.add_argument(
        "--svg", type=Path, metavar="PATH", help="where to write the SVG (default: .run/traces/<trace-id>.svg)"
    )
    test = commands.add_parser("test", help="up, pytest [ARGS], then stop what this started")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    stack = Stack()
    if args.command == "setup":
        stack.setup(args.components)
    elif args.command == "up":
        stack.up(args.components)
        return _status(stack, check=True, names=args.components)
    elif args.command == "down":
        stack.down(args.components)
    elif args.command == "status":
        return _status(stack, args.check)
    elif args.command == "services":
        return _services(stack, args.action, args.names)
    elif args.command == "env":
        return _env(stack)
    elif args.command == "smoke":
        run_smoke(stack)
    elif args.command == "demo":
        if args.action == "down":
            stop_platform(stack)
        else:
            run_demo(stack)
    elif args.command == "demo-checkout":
        return _demo_checkout(stack)
    elif args.command == "trace":
        return _trace(stack, args.saga_id, args.trace_id, args.svg)
    elif args.command == "test":
        return _test(stack, [a for a in args.pytest_args if a != "--"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
