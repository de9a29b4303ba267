"""The payment service's settings: its own defaults, and the environment overriding them."""

from __future__ import annotations

import pytest

from checkout_payment.config import PaymentSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE__SCHEMA", "HTTP__PORT", "SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    settings = PaymentSettings()
    assert (settings.service_name, settings.database.db_schema, settings.http.port) == ("payment", "payment", 8103)


def test_the_environment_overrides_nested_blocks_without_losing_the_service_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE__URL", "postgresql://u:p@db:5432/checkout")
    monkeypatch.delenv("DATABASE__SCHEMA", raising=False)
    monkeypatch.setenv("HTTP__PORT", "9103")
    settings = PaymentSettings()
    assert settings.database.db_schema == "payment"
    assert settings.http.port == 9103
