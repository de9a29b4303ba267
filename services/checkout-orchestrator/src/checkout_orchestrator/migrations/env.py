"""Alembic environment of the orchestrator; run it through ``python -m checkout_orchestrator migrate``."""

from checkout_kit.migrations import run_migrations
from checkout_orchestrator.storage.tables import metadata

run_migrations(metadata)
