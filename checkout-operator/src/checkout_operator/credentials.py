"""Kubernetes Secrets: the admin credentials the operator reads, the service credentials it owns.

A service's password is generated once and kept in ``<platform>-<service>-database`` (owned by the
platform, so it goes with it); every later pass reuses it, and the database reconciler resets the
role's password to it, which repairs a password changed by hand. The Secret also carries the
service's libpq URL, read by the Deployment with a ``secretKeyRef`` — never a ConfigMap, never the CR.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from checkout_operator.spec import PostgresSpec, ServiceDatabase

PASSWORD_KEY: Final = "password"  # noqa: S105 - the key name inside the Secret
PASSWORD_BYTES: Final = 32
FIELD_MANAGER: Final = "checkout-operator"


class CredentialsError(RuntimeError):
    """A Secret the spec names is missing or incomplete; ``reason`` is the condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Credentials:
    """A user name and its password (the password stays out of ``repr``)."""

    username: str
    password: str = field(repr=False)
    generated: bool = False
    """The password was made by this call: the Secret was missing or had none (deleted by hand, say)."""


def _decode(data: Mapping[str, bytes | str] | None, key: str) -> str | None:
    raw = (data or {}).get(key)
    return None if raw is None else base64.b64decode(raw).decode()


async def read_admin(api: client.ApiClient, namespace: str, postgres: PostgresSpec) -> Credentials:
    """The admin user and password from ``spec.postgres.adminSecretRef``."""
    ref = postgres.admin_secret_ref
    core = client.CoreV1Api(api)
    try:
        secret = await asyncio.to_thread(core.read_namespaced_secret, ref.name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise CredentialsError(
                "AdminSecretMissing",
                f"Secret {namespace}/{ref.name} (spec.postgres.adminSecretRef) does not exist; create it with keys "
                f"{ref.username_key!r} and {ref.password_key!r}",
            ) from exc
        if exc.status == 403:
            raise CredentialsError(
                "AdminSecretForbidden", f"the operator may not read Secret {namespace}/{ref.name}: {exc.reason}"
            ) from exc
        raise
    username = _decode(secret.data, ref.username_key)
    password = _decode(secret.data, ref.password_key)
    missing = [key for key, value in ((ref.username_key, username), (ref.password_key, password)) if value is None]
    if missing:
        raise CredentialsError(
            "AdminSecretIncomplete",
            f"Secret {namespace}/{ref.name} (spec.postgres.adminSecretRef) has no key {', '.join(map(repr, missing))}",
        )
    return Credentials(username or "", password or "")


def database_url(postgres: PostgresSpec, database: ServiceDatabase, password: str) -> str:
    """The service's libpq URL (``DATABASE__URL``)."""
    host = f"[{postgres.host}]" if ":" in postgres.host and not postgres.host.startswith("[") else postgres.host
    return (
        f"postgresql://{quote(database.role, safe='')}:{quote(password, safe='')}@{host}:{postgres.port}/"
        f"{quote(postgres.database, safe='')}"
    )


async def ensure_service_secret(
    api: client.ApiClient,
    namespace: str,
    owner_reference: dict[str, Any],
    labels: dict[str, str],
    postgres: PostgresSpec,
    database: ServiceDatabase,
) -> Credentials:
    """Create or update the service's Secret; return the role's credentials (the password is kept).

    A Secret deleted by hand comes back with a new password (the old one cannot be read back from the
    role); ``generated`` says so, and the caller rolls the service's Pods, which hold the old one.
    """
    core = client.CoreV1Api(api)
    password: str | None = None
    try:
        existing = await asyncio.to_thread(core.read_namespaced_secret, database.secret_name, namespace)
        password = _decode(existing.data, PASSWORD_KEY)
    except ApiException as exc:
        if exc.status != 404:
            raise
    generated = not password
    if not password:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": database.secret_name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference],
        },
        "type": "Opaque",
        "stringData": {
            "username": database.role,
            PASSWORD_KEY: password,
            "schema": database.schema,
            "url": database_url(postgres, database, password),
        },
    }
    await asyncio.to_thread(
        core.patch_namespaced_secret,
        database.secret_name,
        namespace,
        body,
        field_manager=FIELD_MANAGER,
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    return Credentials(database.role, password, generated=generated)
