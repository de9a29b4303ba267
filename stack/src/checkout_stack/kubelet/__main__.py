"""``python -m checkout_stack.kubelet --namespace NS [...]``: run the node agent in the foreground.

It serves the given namespaces of the stack's control plane until SIGTERM or SIGINT, then stops
every Pod it runs (SIGTERM, the Pod's grace period, SIGKILL) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from checkout_stack.kubelet.agent import AgentConfig, NodeAgent
from checkout_stack.processes import OWNER_VARIABLE
from checkout_stack.settings import REPO_ROOT
from checkout_stack.stack import Stack


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m checkout_stack.kubelet", description=__doc__)
    parser.add_argument("--namespace", action="append", required=True, help="a namespace to serve (repeatable)")
    parser.add_argument("--state-dir", type=Path, required=True, help="where state.json, Pod logs and dirs go")
    parser.add_argument(
        "--prefer-service-ports", action="store_true", help="give a Service's proxy its own port number when free"
    )
    parser.add_argument("--no-scrape", action="store_true", help="do not register Pods with the stack's Prometheus")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe is noise
    stack = Stack()
    settings = AgentConfig(
        kubeconfig=stack.kubernetes.kubeconfig,
        namespaces=list(args.namespace),
        state_dir=args.state_dir.resolve(),
        repo_root=REPO_ROOT,
        venv=REPO_ROOT / ".venv",
        tools={"helm": stack.kubernetes.tool("helm")},
        base_env={
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            OWNER_VARIABLE: str(stack.settings.run_dir),
        },
        prefer_service_ports=args.prefer_service_ports,
    )
    agent = NodeAgent(settings, None if args.no_scrape else stack.prometheus)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await agent.run(stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
