"""Alembic environment of the cart service; run it through ``python -m checkout_cart migrate``."""

from checkout_cart.storage.tables import metadata
from checkout_kit.migrations import run_migrations

run_migrations(metadata)
