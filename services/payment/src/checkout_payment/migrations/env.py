"""Alembic environment of the payment service; run it through ``python -m checkout_payment migrate``."""

from checkout_kit.migrations import run_migrations
from checkout_payment.storage.tables import metadata

run_migrations(metadata)
