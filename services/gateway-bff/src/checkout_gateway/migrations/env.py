"""Alembic environment of the gateway; run it through ``python -m checkout_gateway migrate``."""

from checkout_gateway.storage.tables import metadata
from checkout_kit.migrations import run_migrations

run_migrations(metadata)
