"""The gateway's settings keep its own defaults even when part of a block comes from the environment."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from checkout_gateway.config import GatewaySettings
from checkout_gateway.main import MIGRATIONS
from checkout_kit.migrations import script_heads


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().split("__", 1)[0] in {"DATABASE", "KAFKA", "HTTP", "UPSTREAMS", "OUTBOX"}:
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults() -> None:
    settings = GatewaySettings()
    assert settings.service_name == "gateway-bff"
    assert settings.database.db_schema == "gateway"
    assert settings.http.port == 8100
    assert settings.upstreams.orchestrator_url == "http://127.0.0.1:8101"
    assert settings.upstreams.cart_url == "http://127.0.0.1:8106"
    assert settings.upstreams.timeout_s == 5.0


def test_environment_overrides_keep_the_other_defaults(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE__URL", "postgresql://gw:pw@db:5432/checkout")
    clean_env.setenv("UPSTREAMS__ORCHESTRATOR_URL", "http://orchestrator.checkout.svc:8080/")
    clean_env.setenv("UPSTREAMS__TIMEOUT_S", "2.5")
    clean_env.setenv("HTTP__MAX_BODY_BYTES", "4096")
    settings = GatewaySettings()
    assert settings.database.db_schema == "gateway"
    assert settings.http.port == 8100
    assert settings.http.max_body_bytes == 4096
    assert settings.upstreams.orchestrator_url == "http://orchestrator.checkout.svc:8080"
    assert settings.upstreams.cart_url == "http://127.0.0.1:8106"
    assert settings.upstreams.timeout_s == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [("UPSTREAMS__CART_URL", "cart:8106"), ("UPSTREAMS__TIMEOUT_S", "0"), ("UPSTREAMS__CONNECT_RETRIES", "9")],
)
def test_bad_upstream_settings_are_refused(clean_env: pytest.MonkeyPatch, variable: str, value: str) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ValidationError, match="upstreams"):
        GatewaySettings()


def test_migrations_have_one_head() -> None:
    assert script_heads(MIGRATIONS) == ("0001",)


def test_the_rate_limit_is_on_by_default_and_set_by_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("RATE_LIMIT__"):
            clean_env.delenv(name)
    defaults = GatewaySettings().rate_limit
    assert defaults.enabled
    assert (defaults.requests_per_s, defaults.burst, defaults.client_header) == (50.0, 200.0, None)

    clean_env.setenv("RATE_LIMIT__ENABLED", "false")
    clean_env.setenv("RATE_LIMIT__REQUESTS_PER_S", "5")
    clean_env.setenv("RATE_LIMIT__BURST", "10")
    clean_env.setenv("RATE_LIMIT__CLIENT_HEADER", "X-Forwarded-For")
    settings = GatewaySettings().rate_limit
    assert not settings.enabled
    assert (settings.requests_per_s, settings.burst, settings.client_header) == (5.0, 10.0, "X-Forwarded-For")
    assert settings.read_cost == defaults.read_cost

    clean_env.setenv("RATE_LIMIT__REQUESTS_PER_S", "0")
    with pytest.raises(ValidationError, match="requests_per_s"):
        GatewaySettings()
