"""The order service's settings: its own defaults, and the environment overriding them."""

from __future__ import annotations

import pytest

from checkout_order.config import OrderSettings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE__SCHEMA", "HTTP__PORT", "SERVICE_NAME", "REJECTED_CUSTOMERS"):
        monkeypatch.delenv(name, raising=False)
    settings = OrderSettings()
    assert (settings.service_name, settings.database.db_schema, settings.http.port) == ("order", "orders", 8104)
    assert settings.rejected_customers == {"cust_order_fail"}


def test_rejected_customers_come_from_the_environment_as_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REJECTED_CUSTOMERS", '["cust_a", "cust_b"]')
    assert OrderSettings().rejected_customers == {"cust_a", "cust_b"}
