"""Long-running server processes: started detached, tracked by pid file, stopped as a group.

Each process runs in a session of its own (so its whole process group can be signalled),
writes stdout and stderr to ``<run_dir>/logs/<name>.log``, and records its pid in
``<run_dir>/pids/<name>.pid`` together with its start time, so a recycled pid is never
mistaken for ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OWNER_VARIABLE = "CHECKOUT_STACK_OWNER"
"""Set in every managed process's environment (and so inherited by its children) to the run
directory, so that leftovers can be found even when their command line says nothing about us."""


def _stat_fields(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def owned_processes(run_dir: Path) -> list[str]:
    """Live processes (``pid: command line``) started by the stack that uses ``run_dir``.

    A process is ours if its environment carries the owner marker or if it descends from one
    that does (PostgreSQL's children overwrite their environment with their title and leave the
    process group, so neither check alone would find them).
    """
    marker = f"{OWNER_VARIABLE}={run_dir}".encode()
    parents: dict[int, int] = {}
    owned: set[int] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(proc.name)
        if fields is None or fields[0] == "Z":  # a zombie waiting to be reaped holds nothing
            continue
        parents[int(proc.name)] = int(fields[1])
        try:
            if marker in (proc / "environ").read_bytes().split(b"\0"):
                owned.add(int(proc.name))
        except OSError:
            continue

    def descends_from_owned(pid: int) -> bool:
        seen = set()
        while pid in parents and pid not in seen:
            if pid in owned:
                return True
            seen.add(pid)
            pid = parents[pid]
        return False

    found = []
    for pid in sorted(parents):
        if descends_from_owned(pid):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            found.append(f"{pid}: {' '.join(a.decode(errors='replace') for a in argv).strip()[:160]}")
    return found


class ProcessError(RuntimeError):
    """A managed process failed to start or stop."""


def _start_time(pid: int) -> str | None:
    """Return the kernel's start time of ``pid`` (field 22 of /proc/<pid>/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it follow the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        return None
    return fields[19]


def tail(path: Path, lines: int = 25) -> str:
    """Return the last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


@dataclass
class ManagedProcess:
    """One server process of the stack."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None
    """Run as this user (PostgreSQL refuses to run as root); only honoured when we are root."""
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 30.0

    @property
    def log_path(self) -> Path:
        """Where stdout and stderr go."""
        return self.run_dir / "logs" / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        """Where the pid and its start time are recorded."""
        return self.run_dir / "pids" / f"{self.name}.pid"

    def pid(self) -> int | None:
        """Return the pid if the recorded process is still alive."""
        try:
            pid_text, started = self.pid_path.read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        return pid if _start_time(pid) == started else None

    def running(self) -> bool:
        """Whether the process is alive."""
        return self.pid() is not None

    def start(self) -> int:
        """Start the process unless it already runs; return its pid."""
        existing = self.pid()
        if existing is not None:
            return existing
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, OWNER_VARIABLE: str(self.run_dir)}
        user = self.user if self.user and os.geteuid() == 0 else None
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                env=env,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        started = _start_time(process.pid)
        if started is None:
            raise ProcessError(f"{self.name} exited at once; see {self.log_path}:\n{tail(self.log_path)}")
        self.pid_path.write_text(f"{process.pid} {started}\n")
        return process.pid

    def stop(self) -> bool:
        """Stop the process group gracefully, then forcibly; return whether it was running."""
        pid = self.pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            return False
        self._signal_group(pid, self.stop_signal)
        deadline = time.monotonic() + self.stop_timeout_s
        while time.monotonic() < deadline and self._group_alive(pid):
            time.sleep(0.1)
        if self._group_alive(pid):
            self._signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._group_alive(pid):
                time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text.rsplit(")", 1)[1].split()
            # fields[0] is the state, fields[2] the process group id.
            if fields[2] == str(pgid) and fields[0] != "Z":
                return True
        return False


def validate(argv: Sequence[str], *, tool: str, subject: Path) -> None:
    """Run a configuration checker (``promtool check config``, ``jaeger validate``); raise with its words."""
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode:
        raise ProcessError(f"{tool} rejected {subject}:\n{(result.stdout + result.stderr).strip()}")


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    process: ManagedProcess | None = None,
    interval_s: float = 0.25,
) -> None:
    """Poll ``check`` until it is true; fail with the process log if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - not ready yet is any error while starting
            pass
        if process is not None and not process.running():
            raise ProcessError(
                f"{process.name} exited while waiting for {what}; last lines of "
                f"{process.log_path}:\n{tail(process.log_path)}"
            )
        if time.monotonic() > deadline:
            log_hint = ""
            if process is not None:
                log_hint = f"; last lines of {process.log_path}:\n{tail(process.log_path)}"
            raise ProcessError(f"timed out after {timeout_s:.0f}s waiting for {what}{log_hint}")
        time.sleep(interval_s)


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of every process in a process group, in bytes."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[2] != str(pgid):
                continue
            status = (stat.parent / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def memory_by_process(run_dir: Path) -> dict[str, int]:
    """Resident memory of each running managed process (by name), in bytes."""
    memory = {}
    for pid_file in sorted((run_dir / "pids").glob("*.pid")):
        process = ManagedProcess(pid_file.stem, [], run_dir)
        pid = process.pid()
        if pid is not None:
            memory[process.name] = group_rss_bytes(pid)
    return memory
