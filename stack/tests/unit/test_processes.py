"""Managed processes start detached, survive their parent, and stop with their whole group."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from checkout_stack.processes import ManagedProcess, ProcessError, wait_until

# A parent that starts a child in the same process group, then ignores SIGTERM:
# stopping must still leave neither behind.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_start_is_idempotent_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    process = ManagedProcess("stubborn", [sys.executable, "-c", STUBBORN], tmp_path, stop_timeout_s=1)
    pid = process.start()
    assert process.start() == pid
    wait_until(lambda: process.log_path.read_text().strip().split("\n")[-1].isdigit(), what="child pid", timeout_s=10)
    child = int(process.log_path.read_text().strip().split("\n")[-1])
    assert _alive(pid)
    assert _alive(child)

    assert process.stop() is True
    assert not _alive(pid)
    assert not _alive(child)
    assert not process.pid_path.exists()
    assert process.stop() is False


def test_recycled_pid_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    process = ManagedProcess("ghost", ["true"], tmp_path)
    process.pid_path.parent.mkdir(parents=True)
    # Our own pid with a start time that is not ours: must read as "not running".
    process.pid_path.write_text(f"{os.getpid()} 1\n")
    assert process.pid() is None
    assert process.stop() is False


def test_wait_until_reports_a_dead_process_with_its_log(tmp_path: Path) -> None:
    process = ManagedProcess(
        "crasher",
        [sys.executable, "-c", "import sys, time; time.sleep(0.3); print('bad config'); sys.exit(3)"],
        tmp_path,
    )
    process.start()
    with pytest.raises(ProcessError, match="bad config"):
        wait_until(lambda: False, what="never", timeout_s=30, process=process)


def test_wait_until_times_out_with_a_message(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ProcessError, match="timed out after 1s waiting for the impossible"):
        wait_until(lambda: False, what="the impossible", timeout_s=1, interval_s=0.1)
    assert time.monotonic() - started < 10


def test_stop_signal_is_configurable(tmp_path: Path) -> None:
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: (print('got SIGINT', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    process = ManagedProcess("polite", [sys.executable, "-c", script], tmp_path, stop_signal=signal.SIGINT)
    process.start()
    wait_until(lambda: "ready" in process.log_path.read_text(), what="ready", timeout_s=10)
    process.stop()
    assert "got SIGINT" in process.log_path.read_text()
