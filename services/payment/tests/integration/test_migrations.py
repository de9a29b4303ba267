"""The migrations build exactly the tables the code declares (``alembic check``), via the service's CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from asyncio.subprocess import PIPE

import pytest
from pydantic import SecretStr

from checkout_kit.db import create_engine
from checkout_kit.migrations import current_and_head, model_drift
from checkout_payment.config import PaymentDatabaseSettings
from checkout_payment.main import MIGRATIONS
from checkout_payment.storage.tables import metadata

pytestmark = pytest.mark.integration


async def test_the_migrated_schema_matches_the_models(postgres_dsn: str, schema: str) -> None:
    engine = create_engine(PaymentDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema))
    try:
        assert await model_drift(engine, metadata, schema) == []
    finally:
        await engine.dispose()


async def test_the_command_line_migrates_a_new_schema(postgres_dsn: str, new_schema) -> None:
    schema = new_schema()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE__", "HTTP__", "KAFKA__"))}
    env.update({"DATABASE__URL": postgres_dsn, "DATABASE__SCHEMA": schema})

    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "checkout_payment", "migrate", env=env, stdout=PIPE, stderr=PIPE
    )
    stdout, stderr = await asyncio.wait_for(migrate.communicate(), 120)

    assert migrate.returncode == 0, stderr.decode()
    assert "migrated: revision 0001" in stdout.decode()
    engine = create_engine(PaymentDatabaseSettings(url=SecretStr(postgres_dsn), schema=schema))
    try:
        assert (await current_and_head(engine, MIGRATIONS, schema)).at_head
    finally:
        await engine.dispose()
