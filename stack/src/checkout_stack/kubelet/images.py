"""What an image of ours carries, read from its Dockerfile, mapped onto this checkout.

An image ``checkout-platform/<name>`` is built from ``services/<name>/Dockerfile`` (or
``checkout-operator/Dockerfile``). Its final stage says what a container of it finds: the ``ENV``
lines, the ``WORKDIR``, and the files ``COPY`` puts in place. Here the workspace's virtual
environment stands for ``/app/.venv`` (``uv sync`` installed every workspace package into it), a
``COPY <source> <destination>`` from the build context maps ``<destination>`` back to
``<source>`` in the repository, and a ``COPY --from=<stage>`` of a Go tool maps to the stack's own
build of that tool. Reading the Dockerfile (rather than keeping a list here) means the local run
cannot drift from what the image would hold.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_PATTERN = re.compile(r"^(?:[^/]+/)*checkout-platform/(?P<name>[a-z0-9-]+)(?::[^@]+)?(?:@sha256:[0-9a-f]+)?$")
"""``[registry/…/]checkout-platform/<name>[:tag][@digest]``."""


class ImageError(RuntimeError):
    """The image is not one of ours, or its Dockerfile cannot be read."""


@dataclass(frozen=True)
class LocalImage:
    """The final stage of one image's Dockerfile, seen from this checkout."""

    name: str
    dockerfile: Path
    env: Mapping[str, str] = field(default_factory=dict)
    """The image's ``ENV``, with container paths already mapped."""
    workdir: str = "/"
    paths: Mapping[str, Path] = field(default_factory=dict)
    """Container path → local path, longest first."""

    def local_path(self, value: str) -> str:
        """``value`` with a leading container path replaced by its local counterpart."""
        for container_path, local in self.paths.items():
            if value == container_path or value.startswith(container_path + "/"):
                return str(local) + value[len(container_path) :]
        return value

    def executable(self, argv0: str) -> str:
        """The local program for a command's first word (``python`` is the workspace's Python)."""
        mapped = self.local_path(argv0)
        if mapped != argv0:
            return mapped
        for directory in self.env.get("PATH", "").split(":"):
            candidate = Path(directory) / argv0
            if directory and candidate.exists():
                return str(candidate)
        return argv0


def dockerfile_for(name: str, repo_root: Path) -> Path:
    """The Dockerfile an image ``checkout-platform/<name>`` is built from."""
    candidates = [repo_root / "services" / name / "Dockerfile", repo_root / name / "Dockerfile"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ImageError(f"no Dockerfile builds checkout-platform/{name} (looked at {', '.join(map(str, candidates))})")


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every instruction, line continuations joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        # Comment and empty lines are dropped, also inside a continuation (as Docker's parser does).
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    result = []
    for line in joined:
        instruction, _, rest = line.partition(" ")
        result.append((instruction.upper(), rest.strip()))
    return result


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    instructions = _instructions(dockerfile)
    starts = [index for index, (instruction, _) in enumerate(instructions) if instruction == "FROM"]
    if not starts:
        raise ImageError(f"{dockerfile} has no FROM")
    return instructions[starts[-1] + 1 :]


def _env_pairs(arguments: str) -> dict[str, str]:
    pairs = {}
    for word in shlex.split(arguments):
        key, sep, value = word.partition("=")
        if not sep:
            raise ImageError(f"ENV {arguments!r}: only the KEY=value form is understood")
        pairs[key] = value
    return pairs


def load_image(image: str, *, repo_root: Path, venv: Path, tools: Mapping[str, Path], host_path: str) -> LocalImage:
    """The :class:`LocalImage` for an image reference, or :class:`ImageError` if it is not ours.

    ``tools`` maps a Go tool's file name (``helm``) to the stack's build of it; ``host_path`` is
    what ``$PATH`` expands to in the image's ``ENV PATH=…:$PATH``.
    """
    match = IMAGE_PATTERN.match(image)
    if match is None:
        raise ImageError(f"{image!r} is not a checkout-platform image; this node only runs those")
    name = match["name"]
    dockerfile = dockerfile_for(name, repo_root)
    paths: dict[str, Path] = {"/app/.venv": venv}
    raw_env: dict[str, str] = {}
    workdir = "/"
    for instruction, arguments in _final_stage(dockerfile):
        if instruction == "ENV":
            raw_env.update(_env_pairs(arguments))
        elif instruction == "WORKDIR":
            workdir = arguments
        elif instruction == "COPY":
            words = arguments.split()
            from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
            sources_and_destination = [w for w in words if not w.startswith("--")]
            *sources, destination = sources_and_destination
            if from_stage is None:
                if len(sources) == 1:
                    source = repo_root / sources[0].rstrip("/")
                    target = destination.rstrip("/") or "/"
                    if destination.endswith("/") and not sources[0].endswith("/") and not source.is_dir():
                        target = f"{target}/{source.name}"  # a file copied into a directory keeps its name
                    paths[target] = source
            elif not destination.startswith("/app/.venv"):
                tool = Path(destination).name
                if tool not in tools:
                    raise ImageError(
                        f"{dockerfile}: COPY --from={from_stage} {destination}: no local build of {tool!r}"
                    )
                paths[destination.rstrip("/")] = tools[tool]
    ordered = dict(sorted(paths.items(), key=lambda item: len(item[0]), reverse=True))
    local = LocalImage(name, dockerfile, {}, workdir, ordered)
    env = {}
    for key, value in raw_env.items():
        if key == "PATH":
            expanded = value.replace("${PATH}", host_path).replace("$PATH", host_path)
            value = ":".join(local.local_path(part) for part in expanded.split(":"))
        env[key] = local.local_path(value)
    return LocalImage(name, dockerfile, env, workdir, ordered)
