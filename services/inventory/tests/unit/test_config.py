"""The inventory's settings: its own defaults, and the environment overriding them."""

from __future__ import annotations

import pytest

from checkout_inventory.config import InventorySettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE__SCHEMA", "HTTP__PORT", "SERVICE_NAME", "MAX_LINES_PER_RESERVATION"):
        monkeypatch.delenv(name, raising=False)
    settings = InventorySettings()
    assert settings.service_name == "inventory"
    assert settings.database.db_schema == "inventory"
    assert settings.http.port == 8102
    assert settings.max_lines_per_reservation == 100


def test_the_environment_overrides_nested_blocks_without_losing_the_service_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE__URL", "postgresql://u:p@db:5432/checkout")
    monkeypatch.setenv("HTTP__HOST", "10.1.2.3")
    monkeypatch.delenv("DATABASE__SCHEMA", raising=False)
    monkeypatch.delenv("HTTP__PORT", raising=False)
    settings = InventorySettings()
    assert settings.database.db_schema == "inventory"
    assert settings.http.port == 8102
    assert settings.database.url.get_secret_value() == "postgresql://u:p@db:5432/checkout"
