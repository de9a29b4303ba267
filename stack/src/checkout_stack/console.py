"""What the stack prints: one line per step with elapsed time, on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 132)


@contextmanager
def step(what: str) -> Iterator[None]:
    """Print ``what`` and, when it ends, how long it took (or that it failed)."""
    started = time.monotonic()
    console.print(f"[bold]→[/bold] {what} …")
    try:
        yield
    except BaseException:
        console.print(f"[red]✗[/red] {what} failed after {time.monotonic() - started:.1f}s")
        raise
    console.print(f"[green]✓[/green] {what} ({time.monotonic() - started:.1f}s)")


def info(message: str) -> None:
    """Print an indented detail line."""
    console.print(f"  {message}")
