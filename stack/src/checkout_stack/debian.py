"""Installing Debian packages with apt-get (only what is missing; root needed only then)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path


class DebianError(RuntimeError):
    """A package could not be installed."""


def missing(packages: Sequence[str]) -> list[str]:
    """Return the packages of ``packages`` that dpkg does not report as installed."""
    absent = []
    for package in packages:
        result = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.stdout.strip() != "installed":
            absent.append(package)
    return absent


def ensure(packages: Sequence[str], log: Path) -> list[str]:
    """Install whichever of ``packages`` are missing; return what was installed."""
    absent = missing(packages)
    if not absent:
        return []
    if os.geteuid() != 0:
        raise DebianError(f"missing Debian packages {' '.join(absent)}: run `sudo apt-get install {' '.join(absent)}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        for argv in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", *absent],
        ):
            out.write(f"\n$ {' '.join(argv)}\n".encode())
            out.flush()
            if subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                raise DebianError(f"`{' '.join(argv)}` failed; see {log}")
    return absent
