"""Alembic environment of the inventory service; run it through ``python -m checkout_inventory migrate``."""

from checkout_inventory.storage.tables import metadata
from checkout_kit.migrations import run_migrations

run_migrations(metadata)
