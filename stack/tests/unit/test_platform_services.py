"""The services launcher without running anything: selection, configuration, discovery, env."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from checkout_stack import cli
from checkout_stack.components.platform_services import SERVICES, probe_packages
from checkout_stack.settings import ServicesSettings, StackSettings
from checkout_stack.stack import Stack


@pytest.fixture(autouse=True)
def default_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the defaults: a stack moved to other ports by the environment must not leak in."""
    for name in [n for n in os.environ if n.startswith("CHECKOUT_STACK_")]:
        monkeypatch.delenv(name)


def test_a_plain_up_status_and_test_leave_the_services_out() -> None:
    stack = Stack()
    assert stack.services not in stack.select([])
    assert stack.services not in stack.components
    assert stack.select(["services"]) == [stack.services]
    assert [c.name for c in stack.select(["kafka", "services", "postgres"])] == ["postgres", "kafka", "services"]


def test_env_exports_every_service_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("CHECKOUT_STACK_SERVICES__GATEWAY_PORT", "9100")
    env = Stack(StackSettings()).env()
    assert env["BFF_URL"] == "http://127.0.0.1:9100"
    assert {key: env[key] for key in ("ORCHESTRATOR_URL", "INVENTORY_URL", "PAYMENT_URL", "ORDER_URL", "CART_URL")} == {
        "ORCHESTRATOR_URL": "http://127.0.0.1:8101",
        "INVENTORY_URL": "http://127.0.0.1:8102",
        "PAYMENT_URL": "http://127.0.0.1:8103",
        "ORDER_URL": "http://127.0.0.1:8104",
        "CART_URL": "http://127.0.0.1:8106",
    }


def test_each_service_gets_the_stack_addresses_and_its_port(tmp_path: Path) -> None:
    stack = Stack(StackSettings(run_dir=tmp_path, services=ServicesSettings(cart_port=9106, database="checkout")))
    (tmp_path / "secrets").mkdir()
    stack.postgres.password_file.write_text("pw")
    env = stack.services.service_env(stack.services.by_name("gateway-bff"))
    assert env["HTTP__PORT"] == "8100"
    assert env["KAFKA__TOPIC_PREFIX"] == "checkout"
    assert env["KAFKA__BOOTSTRAP_SERVERS"] == "127.0.0.1:19092"
    assert env["DATABASE__URL"] == "postgresql://postgres:pw@127.0.0.1:15432/checkout"
    assert env["UPSTREAMS__ORCHESTRATOR_URL"] == "http://127.0.0.1:8101"
    assert env["UPSTREAMS__CART_URL"] == "http://127.0.0.1:9106"
    assert "DATABASE__SCHEMA" not in env, "each service keeps its own default schema"


def test_extra_env_reaches_only_its_service_and_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    monkeypatch.setenv(
        "CHECKOUT_STACK_SERVICES__EXTRA_ENV",
        '{"checkout-orchestrator": {"SAGA__STEP_TIMEOUT_S": "2", "LOG_LEVEL": "DEBUG"}}',
    )
    (tmp_path / "secrets").mkdir()
    stack = Stack(StackSettings())
    stack.postgres.password_file.write_text("pw")
    orchestrator = stack.services.service_env(stack.services.by_name("checkout-orchestrator"))
    assert orchestrator["SAGA__STEP_TIMEOUT_S"] == "2"
    assert orchestrator["LOG_LEVEL"] == "DEBUG", "applied over the launcher's own values"
    assert orchestrator["HTTP__PORT"] == "8101"
    gateway = stack.services.service_env(stack.services.by_name("gateway-bff"))
    assert "SAGA__STEP_TIMEOUT_S" not in gateway
    assert gateway["LOG_LEVEL"] == "INFO"


def test_unknown_service_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown service\(s\) orchestrator; known: gateway-bff"):
        ServicesSettings(extra_env={"orchestrator": {"SAGA__STEP_TIMEOUT_S": "2"}})
    with pytest.raises(ValidationError, match=r"unknown service\(s\) gateway; known: gateway-bff"):
        ServicesSettings(enabled=["gateway"])
    with pytest.raises(SystemExit, match="unknown service"):
        cli.main(["services", "status", "gateway"])


def test_packages_that_cannot_run_are_found_missing() -> None:
    found = probe_packages(
        sys.executable, ["checkout_gateway", "checkout_cart", "checkout_kit", "checkout_nonexistent"]
    )
    assert found["checkout_gateway"].runnable
    assert found["checkout_gateway"].migrations
    assert found["checkout_cart"].runnable
    assert not found["checkout_kit"].runnable, "a library without __main__ is not a service"
    assert not found["checkout_nonexistent"].runnable


def test_services_status_of_stopped_services(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    for index, service in enumerate(SERVICES):
        monkeypatch.setenv(f"CHECKOUT_STACK_SERVICES__{service.port_setting.upper()}", str(1 + index))
    assert cli.main(["services", "status"]) == 0
    err = capsys.readouterr().err
    assert "gateway-bff" in err
    assert "stopped" in err


def test_services_down_with_names_stops_only_those(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHECKOUT_STACK_RUN_DIR", str(tmp_path))
    stopped: list[str] = []
    monkeypatch.setattr("checkout_stack.processes.ManagedProcess.stop", lambda process: stopped.append(process.name))
    assert cli.main(["services", "down", "cart"]) == 0
    assert stopped == ["cart"]
    stopped.clear()
    assert cli.main(["services", "down"]) == 0
    assert sorted(stopped) == sorted(service.name for service in SERVICES)
