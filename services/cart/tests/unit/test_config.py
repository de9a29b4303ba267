"""The cart's settings keep its own defaults even when part of a block comes from the environment."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from checkout_cart.config import CartSettings
from checkout_cart.main import MIGRATIONS
from checkout_kit.migrations import script_heads


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().split("__", 1)[0] in {"DATABASE", "KAFKA", "HTTP"} or name.upper() == "MAX_LINES_PER_CART":
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults() -> None:
    settings = CartSettings()
    assert settings.service_name == "cart"
    assert settings.database.db_schema == "cart"
    assert settings.http.port == 8106
    assert settings.max_lines_per_cart == 100


def test_a_database_url_from_the_environment_keeps_the_cart_schema(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE__URL", "postgresql://cart:pw@db:5432/checkout")
    clean_env.setenv("HTTP__HOST", "0.0.0.0")  # noqa: S104 - a container's listener
    settings = CartSettings()
    assert settings.database.db_schema == "cart"
    assert settings.http.port == 8106
    assert settings.database.sqlalchemy_url() == "postgresql+asyncpg://cart:pw@db:5432/checkout"


def test_environment_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE__SCHEMA", "cart_blue")
    clean_env.setenv("HTTP__PORT", "9106")
    clean_env.setenv("MAX_LINES_PER_CART", "5")
    settings = CartSettings()
    assert (settings.database.db_schema, settings.http.port, settings.max_lines_per_cart) == ("cart_blue", 9106, 5)


def test_line_limit_is_bounded(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MAX_LINES_PER_CART", "0")
    with pytest.raises(ValidationError, match="max_lines_per_cart"):
        CartSettings()


def test_migrations_have_one_head() -> None:
    assert script_heads(MIGRATIONS) == ("0001",)
