"""Alembic environment of the order service; run it through ``python -m checkout_order migrate``."""

from checkout_kit.migrations import run_migrations
from checkout_order.storage.tables import metadata

run_migrations(metadata)
