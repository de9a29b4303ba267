"""What `make env` and `make status` tell a user, without a running stack."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from checkout_stack import cli
from checkout_stack.processes import ManagedProcess
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


# --- the demo's platform: its node agent ----------------------------------------------------------


@pytest.fixture
def node_agent(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[ManagedProcess]:
    """A stand-in for `make demo`'s node agent: a process named ``kubelet`` whose command line names the module."""
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    sleeper = "import time; time.sleep(60)"
    agent = ManagedProcess("kubelet", [sys.executable, "-c", sleeper, "checkout_stack.kubelet"], tmp_path)
    agent.start()
    state = {
        "pid": agent.pid(),
        "namespaces": ["checkout-system", "checkout"],
        "services": {
            "checkout/checkout-gateway-bff:8100": {"address": "127.0.0.1:8100", "backends": [41000, 41001]},
            "checkout/checkout-inventory:8102": {"address": "127.0.0.1:40102", "backends": [41002]},
            "checkout-system/checkout-operator:8080": {"address": "127.0.0.1:8080", "backends": [41003]},
        },
    }
    (tmp_path / "kubelet").mkdir()
    (tmp_path / "kubelet" / "state.json").write_text(json.dumps(state))
    yield agent
    agent.stop()


def exports(out: str) -> dict[str, str]:
    return dict(shlex.split(line)[1].partition("=")[::2] for line in out.strip().splitlines())


def test_env_points_at_the_platforms_services_while_its_node_agent_runs(
    node_agent: ManagedProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["env"]) == 0
    exported = exports(capsys.readouterr().out)
    assert exported["BFF_URL"] == "http://127.0.0.1:8100"
    assert exported["INVENTORY_URL"] == "http://127.0.0.1:40102"
    assert exported["CHECKOUT_NAMESPACE"] == "checkout"
    assert exported["CHECKOUT_OPERATOR_NAMESPACE"] == "checkout-system"
    # The launcher's addresses of services the platform does not run (the example disables the cart) are left out.
    assert "CART_URL" not in exported
    assert set(exported) >= REQUIRED

    node_agent.stop()
    assert cli.main(["env"]) == 0
    exported = exports(capsys.readouterr().out)
    assert "CHECKOUT_NAMESPACE" not in exported
    assert exported["CART_URL"] == f"http://127.0.0.1:{StackSettings().services.cart_port}"


def test_services_up_refuses_while_the_demos_platform_runs(node_agent: ManagedProcess) -> None:
    with pytest.raises(SystemExit, match=r"node agent pid \d+.*`uv run checkout-stack demo down`"):
        cli.main(["services", "up"])


def test_down_stops_the_node_agent_before_the_stack_and_leaves_nothing(node_agent: ManagedProcess) -> None:
    stack = Stack(StackSettings())
    assert [agent.name for agent in stack.node_agents()] == ["kubelet"]
    stopped: list[tuple[str, bool]] = []
    for component in stack.all_components:

        def stop(name: str = component.name) -> None:
            stopped.append((name, node_agent.running()))

        setattr(component, "stop", stop)  # noqa: B010 - an instance attribute standing in for the method
    stack.down()
    assert [name for name, _ in stopped] == [c.name for c in reversed(stack.all_components)]
    assert not any(agent_running for _, agent_running in stopped), "the agent must be gone before anything stops"
    assert stack.leftover_processes() == []


def test_a_process_that_is_not_a_node_agent_is_not_taken_for_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    other = ManagedProcess("kubelet-lookalike", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path)
    other.start()
    try:
        assert Stack(StackSettings()).node_agents() == []
    finally:
        other.stop()
