"""What `make env` and `make status` tell a user, without a running stack."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from checkout_stack import cli
from checkout_stack.settings import StackSettings
from checkout_stack.stack import Stack

REQUIRED = {
    "KUBECONFIG",
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "TRACES_QUERY_URL",
    "PROMETHEUS_URL",
    "TOXIPROXY_URL",
    "PATH",
}


def test_env_prints_shell_exports_for_every_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["env"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    exported = {}
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "export"
        key, _, value = words[1].partition("=")
        exported[key] = value
    assert set(exported) >= REQUIRED
    settings = StackSettings()
    assert exported["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{settings.kafka.port}"
    assert exported["DATABASE_URL"].startswith("postgresql://postgres:")
    assert exported["DATABASE_URL"].endswith(f"@127.0.0.1:{settings.postgres.port}/postgres")


def test_ports_follow_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_KAFKA__PORT", "29092")
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    stack = Stack(StackSettings())
    env = stack.env()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:29092"
    assert env["KUBECONFIG"] == str(tmp_path / "kubeconfig")


def test_status_of_a_stopped_stack_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Unused ports and an empty run directory: nothing of ours is there.
    for index, variable in enumerate(
        (
            "POSTGRES__PORT",
            "KAFKA__PORT",
            "KUBERNETES__APISERVER_PORT",
            "JAEGER__QUERY_PORT",
            "PROMETHEUS__PORT",
            "TOXIPROXY__PORT",
        )
    ):
        monkeypatch.setenv(f"CHECKOUT_STACK_{variable}", str(1 + index))
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    assert cli.main(["status", "--check"]) == 1
    err = capsys.readouterr().err
    assert "stopped" in err
    assert "kube-apiserver" in err


def test_unknown_component_is_refused_with_the_known_names() -> None:
    with pytest.raises(SystemExit, match=r"unknown component.*known: postgres, kafka"):
        Stack().select(["kafak"])
