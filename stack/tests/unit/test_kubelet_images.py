"""What a container of one of our images finds, read from the image's real Dockerfile."""

from __future__ import annotations

from pathlib import Path

import pytest

from checkout_stack.kubelet.images import ImageError, LocalImage, load_image
from checkout_stack.settings import REPO_ROOT

SERVICES = ["gateway-bff", "checkout-orchestrator", "inventory", "payment", "order", "cart"]
IMAGES = [*SERVICES, "checkout-operator"]
DIGEST = "sha256:" + "0123456789abcdef" * 4
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
REFERENCES = [
    "checkout-platform/{name}",
    "checkout-platform/{name}:0.1.0",
    "registry.example.com:5000/team/checkout-platform/{name}:0.1.0",
    f"checkout-platform/{{name}}@{DIGEST}",
    f"ghcr.io/acme/checkout-platform/{{name}}:0.1.0@{DIGEST}",
]


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A stand-in for the workspace venv: ``executable`` only needs ``bin/python`` to exist."""
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    return python.parent.parent


@pytest.fixture
def helm(tmp_path: Path) -> Path:
    binary = tmp_path / "tools" / "helm"
    binary.parent.mkdir(parents=True)
    binary.touch()
    return binary


def _load(image: str, venv: Path, tools: dict[str, Path] | None = None, repo_root: Path = REPO_ROOT) -> LocalImage:
    return load_image(image, repo_root=repo_root, venv=venv, tools=tools or {}, host_path=HOST_PATH)


def _fake_repo(tmp_path: Path, dockerfile: str, name: str = "demo") -> Path:
    repo = tmp_path / "repo"
    (repo / "services" / name).mkdir(parents=True)
    (repo / "services" / name / "Dockerfile").write_text(dockerfile)
    return repo


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("name", IMAGES)
def test_every_image_of_ours_runs_the_workspace_python_from_its_final_stage(
    name: str, reference: str, venv: Path, helm: Path
) -> None:
    image = _load(reference.format(name=name), venv, {"helm": helm})

    assert image.name == name
    expected_dockerfile = REPO_ROOT / ("checkout-operator" if name == "checkout-operator" else f"services/{name}")
    assert image.dockerfile == expected_dockerfile / "Dockerfile"
    assert image.workdir == "/app"
    assert image.env["PYTHONUNBUFFERED"] == "1"
    assert image.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert image.env["PATH"] == f"{venv}/bin:{HOST_PATH}"
    assert image.executable("python") == str(venv / "bin" / "python")
    assert image.local_path("/app/.venv/bin/python") == str(venv / "bin" / "python")
    # The builder stage's ENV is not in the runtime image.
    assert "UV_PROJECT_ENVIRONMENT" not in image.env


def test_operator_image_maps_the_chart_and_helm_onto_this_checkout(venv: Path, helm: Path) -> None:
    image = _load("checkout-platform/checkout-operator:0.1.0", venv, {"helm": helm})
    chart = REPO_ROOT / "charts" / "checkout-service"

    assert image.local_path("/app/charts/checkout-service") == str(chart)
    assert image.local_path("/app/charts/checkout-service/values.yaml") == str(chart / "values.yaml")
    assert (chart / "values.yaml").is_file()
    assert image.executable("/usr/local/bin/helm") == str(helm)
    # Only whole path components match.
    assert image.local_path("/app/charts/checkout-service-old") == "/app/charts/checkout-service-old"
    assert image.local_path("/srv/data") == "/srv/data"


def test_operator_image_without_a_local_helm_build_is_refused_naming_the_tool(venv: Path) -> None:
    with pytest.raises(ImageError, match="'helm'"):
        _load("checkout-platform/checkout-operator:0.1.0", venv, {})


@pytest.mark.parametrize(
    "image",
    [
        "nginx:1.27",
        "ghcr.io/x/checkout-platform-evil/order",
        "ghcr.io/x/evil-checkout-platform/order",
        "checkout-platform/order/extra",
        "checkout-platform/Order",
    ],
)
def test_an_image_that_is_not_ours_is_refused(image: str, venv: Path) -> None:
    with pytest.raises(ImageError, match="not a checkout-platform image"):
        _load(image, venv)


def test_a_name_without_a_dockerfile_is_refused(venv: Path) -> None:
    with pytest.raises(ImageError, match="no Dockerfile builds checkout-platform/kit"):
        _load("checkout-platform/kit:0.1.0", venv)


def test_env_with_continuations_quotes_and_comments_between_instructions(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(
        tmp_path,
        """\
# syntax=docker/dockerfile:1
FROM python:3.11-slim

  # an indented comment
ENV A=1 \\
    B="two words" \\
    C=x=y

ENV D=4
env A=overridden
""",
    )
    image = _load("checkout-platform/demo", venv, repo_root=repo)

    assert image.env == {"A": "overridden", "B": "two words", "C": "x=y", "D": "4"}


def test_a_comment_line_inside_a_continuation_is_dropped(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(tmp_path, "FROM python:3.11-slim\nENV A=1 \\\n    # why B\n    B=2\n")

    assert _load("checkout-platform/demo", venv, repo_root=repo).env == {"A": "1", "B": "2"}


def test_only_the_final_stage_counts(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(
        tmp_path,
        """\
FROM python:3.11-slim AS builder
ENV BUILDER_ONLY=1
WORKDIR /src
COPY config/ /etc/builder/
FROM python:3.11-slim
ENV RUNTIME=1
""",
    )
    image = _load("checkout-platform/demo", venv, repo_root=repo)

    assert image.env == {"RUNTIME": "1"}
    assert image.workdir == "/"
    assert image.local_path("/etc/builder/x") == "/etc/builder/x"


def test_copy_from_the_build_context_maps_back_to_the_repository(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(
        tmp_path,
        "FROM python:3.11-slim\nCOPY --chown=10001:10001 config/ /etc/demo/\nENV DEMO__CONFIG=/etc/demo/app.toml\n",
    )
    image = _load("checkout-platform/demo", venv, repo_root=repo)

    assert image.local_path("/etc/demo/app.toml") == str(repo / "config" / "app.toml")
    assert image.env["DEMO__CONFIG"] == str(repo / "config" / "app.toml")


def test_copy_of_a_file_into_a_directory_keeps_its_name(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(tmp_path, "FROM python:3.11-slim\nCOPY settings.toml /etc/demo/\n")
    (repo / "settings.toml").touch()
    image = _load("checkout-platform/demo", venv, repo_root=repo)

    assert image.local_path("/etc/demo/settings.toml") == str(repo / "settings.toml")


def test_braced_path_reference_expands_to_the_host_path(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(tmp_path, "FROM python:3.11-slim\nENV PATH=/app/.venv/bin:${PATH}\n")

    assert _load("checkout-platform/demo", venv, repo_root=repo).env["PATH"] == f"{venv}/bin:{HOST_PATH}"


def test_env_in_the_legacy_space_form_is_refused(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(tmp_path, "FROM python:3.11-slim\nENV GREETING hello\n")

    with pytest.raises(ImageError, match="KEY=value"):
        _load("checkout-platform/demo", venv, repo_root=repo)


def test_a_dockerfile_without_from_is_refused(tmp_path: Path, venv: Path) -> None:
    repo = _fake_repo(tmp_path, "ENV A=1\n")

    with pytest.raises(ImageError, match="has no FROM"):
        _load("checkout-platform/demo", venv, repo_root=repo)


def test_executable_falls_back_to_the_bare_name_when_nothing_provides_it(venv: Path) -> None:
    image = _load("checkout-platform/order", venv)

    assert image.executable("no-such-program-anywhere") == "no-such-program-anywhere"
