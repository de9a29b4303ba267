"""Last: `deletionPolicy: Delete` and `kubectl delete` — topics, schemas, roles, Secrets and workloads all go."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest
from deployed import DeployedPlatform, topics

pytestmark = pytest.mark.integration


async def _leftovers(dsn: str, schemas: list[str], roles: list[str]) -> tuple[list[str], list[str]]:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        found_schemas = await connection.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1::text[])", schemas
        )
        found_roles = await connection.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[])", roles)
    finally:
        await connection.close()
    return [r["nspname"] for r in found_schemas], [r["rolname"] for r in found_roles]


def test_deleting_the_platform_removes_everything_it_made(platform: DeployedPlatform) -> None:
    services = platform.resource()["status"]["services"]
    schemas = [s["schema"] for s in services]
    roles = [s["role"] for s in services]
    secrets = [s["databaseSecret"] for s in services]
    began = time.monotonic()
    platform.patch({"spec": {"deletionPolicy": "Delete"}})
    platform.wait_ready()
    platform.cluster.run("-n", platform.namespace, "delete", "checkoutplatform", platform.name, "--timeout=120s")
    deleted = time.monotonic() - began
    assert platform.cluster.platform(platform.namespace, platform.name) is None
    assert topics(platform.target.host.kafka_bootstrap, platform.prefix) == {}
    assert asyncio.run(_leftovers(platform.dsn, schemas, roles)) == ([], [])
    deadline = time.monotonic() + 60
    while True:
        left = {
            kind: [o["metadata"]["name"] for o in platform.cluster.list(kind, platform.namespace)]
            for kind in ("deployments", "services", "configmaps", "secrets", "pods")
        }
        left["configmaps"] = [n for n in left["configmaps"] if n != "kube-root-ca.crt"]
        left["secrets"] = [n for n in left["secrets"] if n in secrets]
        processes = platform.target.processes(platform.namespace)
        if not any(left.values()) and not processes:
            break
        assert time.monotonic() < deadline, f"left behind after 60 s: {left}, processes {sorted(processes or {})}"
        time.sleep(1)
    platform.record("delete with deletionPolicy: Delete", "topics, schemas, roles, Secrets, workloads gone", deleted)
