"""Version-keyed cache entries: ``<cache_dir>/<name>-<version>-<recipe digest>/``.

An entry counts only once its ``.complete`` stamp exists, so an interrupted build is redone
rather than half-used. The recipe digest covers the files that define the build (a wrapper
module's go.mod/go.sum, a pom.xml), so editing them re-keys the entry.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


def recipe_digest(files: Iterable[Path], *extra: str) -> str:
    """Return a short digest of the given files' contents and extra strings."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:10]


@dataclass(frozen=True)
class CacheEntry:
    """One installed component at one version."""

    root: Path
    name: str
    version: str
    digest: str = ""

    @property
    def path(self) -> Path:
        """Folder holding the component's files."""
        suffix = f"-{self.digest}" if self.digest else ""
        return self.root / f"{self.name}-{self.version}{suffix}"

    @property
    def bin(self) -> Path:
        """Conventional folder for the entry's executables."""
        return self.path / "bin"

    @property
    def complete(self) -> bool:
        """Whether a previous install finished."""
        return (self.path / ".complete").exists()

    def begin(self) -> Path:
        """Start a fresh install: remove leftovers of an interrupted one."""
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        return self.path

    def finish(self) -> None:
        """Mark the install complete."""
        (self.path / ".complete").write_text(f"{self.name} {self.version} {self.digest}\n")
