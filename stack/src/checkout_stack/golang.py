"""Building Go programs with the machine's Go toolchain into a cache entry."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from checkout_stack.cache import CacheEntry


class GoBuildError(RuntimeError):
    """The Go toolchain is missing or a build failed."""


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise GoBuildError("the Go toolchain is not installed: install Go 1.24 or newer and retry")
    return go


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **(extra or {})}
    env.setdefault("GOTOOLCHAIN", "local")
    env["GOFLAGS"] = "-buildvcs=false -mod=readonly"
    env["CGO_ENABLED"] = "0"
    return env


def _run(argv: Sequence[str], cwd: Path | None, log: Path, env: dict[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        result = subprocess.run(argv, cwd=cwd, env=_env(env), stdout=out, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()[-30:]
        raise GoBuildError(f"`{' '.join(argv)}` failed (exit {result.returncode}); see {log}:\n" + "\n".join(lines))


def module_source(module: str, version: str) -> Path:
    """Download ``module@vVERSION`` into the module cache (if needed) and return its folder."""
    result = subprocess.run(
        [_go(), "mod", "download", "-json", f"{module}@v{version}"],
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        raise GoBuildError(f"go mod download {module}@v{version} failed: {result.stdout}{result.stderr}")
    return Path(json.loads(result.stdout)["Dir"])


def build(
    entry: CacheEntry,
    *,
    module_dir: Path,
    packages: Sequence[str],
    ldflags: str = "-s -w",
    log: Path,
) -> None:
    """Build ``packages`` of the wrapper module at ``module_dir`` into ``entry.bin``."""
    entry.begin()
    entry.bin.mkdir()
    argv = [_go(), "build", "-pgo=off", "-trimpath", f"-ldflags={ldflags}", "-o", f"{entry.bin}/", *packages]
    _run(argv, module_dir, log)
    entry.finish()


def install(
    entry: CacheEntry,
    *,
    packages: Sequence[str],
    version: str,
    ldflags: str = "-s -w",
    log: Path,
) -> None:
    """``go install pkg@vVERSION …`` into ``entry.bin`` (for modules without replace directives)."""
    entry.begin()
    entry.bin.mkdir()
    argv = [_go(), "install", "-pgo=off", "-trimpath", f"-ldflags={ldflags}", *(f"{p}@v{version}" for p in packages)]
    _run(argv, None, log, {"GOBIN": str(entry.bin)})
    entry.finish()
