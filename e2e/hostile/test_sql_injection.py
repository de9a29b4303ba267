"""SQL-injection strings in every string field of the write endpoints (and the filters of the reads).

Each string goes into one field at a time, the rest of the request valid. A field is safe when every
string is either refused (4xx: the field's pattern does not admit it) or accepted and stored
literally, byte for byte, where it was put. Afterwards, read as the superuser, every table of the
instance's database is still there with no row lost.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from chaos_ledger import record_check
from saga_platform import SagaPlatform, checkout_body

pytestmark = pytest.mark.integration

INJECTIONS: Final = [
    "' OR '1'='1",
    "'; DROP TABLE stock; --",
    "1; SELECT pg_sleep(5)--",
    '" OR ""="',
    "Robert'); DROP TABLE carts;--",
    "' UNION SELECT usename, passwd FROM pg_shadow--",
    "'||(SELECT current_user)||'",
    "'; TRUNCATE inventory.stock, gateway.checkouts CASCADE; --",
    "$$; DROP SCHEMA gateway CASCADE; $$",
    "x' AND 1=CAST((SELECT version()) AS int)--",
]
"""Classic payloads, with spaces: no field's pattern admits them."""
COMPACT_INJECTIONS: Final = [
    "';DROP/**/TABLE/**/checkouts;--",
    "1'OR'1'='1",
    "x');DELETE/**/FROM/**/gateway.checkouts;--",
    "'||pg_sleep(5)||'",
]
"""Payloads without spaces, which free-text printable-ASCII fields (the Idempotency-Key) accept."""
EVERY: Final = INJECTIONS + COMPACT_INJECTIONS

BODY_FIELDS: Final = [
    ("gateway-bff", "POST", "/api/checkout/initiate", ("customer_id",)),
    ("gateway-bff", "POST", "/api/checkout/initiate", ("payment_token",)),
    ("gateway-bff", "POST", "/api/checkout/initiate", ("currency",)),
    ("gateway-bff", "POST", "/api/checkout/initiate", ("items", 0, "sku")),
    ("gateway-bff", "POST", "/api/checkout/initiate", ("cart_id",)),
    ("gateway-bff", "POST", "/api/carts", ("customer_id",)),
    ("gateway-bff", "POST", "/api/carts", ("currency",)),
    ("cart", "POST", "/carts", ("customer_id",)),
    ("cart", "POST", "/carts", ("currency",)),
    ("inventory", "PUT", "/inventory/HOSTILE-SQL", ("currency",)),
]
"""(service, method, path, where in the body) of every string a write takes in its body."""

PATH_FIELDS: Final = [
    ("inventory", "PUT", "/inventory/{}", {"available": 1, "unit_price_minor": 1, "currency": "EUR"}),
    ("inventory", "GET", "/inventory/{}", None),
    ("cart", "PUT", "/carts/{cart}/items/{}", {"quantity": 1}),
    ("cart", "DELETE", "/carts/{cart}/items/{}", None),
    ("cart", "GET", "/carts/{}", None),
    ("gateway-bff", "PUT", "/api/carts/{cart}/items/{}", {"quantity": 1}),
    ("gateway-bff", "GET", "/api/checkout/{}", None),
    ("checkout-orchestrator", "GET", "/sagas/{}", None),
    ("payment", "GET", "/payments/{}", None),
    ("order", "GET", "/orders/{}", None),
]
"""(service, method, path template, body): the string goes into the last path segment, URL-quoted."""

QUERY_FIELDS: Final = [
    ("order", "/orders", "customer_id"),
    ("order", "/orders", "saga_id"),
    ("payment", "/payments", "status"),
    ("payment", "/payments", "saga_id"),
    ("checkout-orchestrator", "/sagas", "status"),
    ("checkout-orchestrator", "/sagas", "state"),
    ("inventory", "/reservations", "status"),
    ("inventory", "/reservations", "saga_id"),
]
"""(service, path, query parameter) of the reads' filters."""

BODIES: Final[dict[str, dict[str, Any]]] = {
    "/api/checkout/initiate": checkout_body({"HOSTILE-OK": 1}, customer="cust_sqli"),
    "/api/carts": {"customer_id": "cust_sqli", "currency": "EUR"},
    "/carts": {"customer_id": "cust_sqli", "currency": "EUR"},
    "/inventory/HOSTILE-SQL": {"available": 5, "unit_price_minor": 100, "currency": "EUR"},
}


def with_value(body: dict[str, Any], where: tuple[str | int, ...], value: str) -> dict[str, Any]:
    """A copy of ``body`` with ``value`` at ``where``."""
    changed = copy.deepcopy(body)
    target: Any = changed
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    return changed


def judged(response: httpx.Response, value: str, stored: Callable[[httpx.Response], bool]) -> str:
    """``refused <status>`` or ``stored literally``; fails on anything else."""
    if 400 <= response.status_code < 500:
        return f"refused {response.status_code}"
    assert response.status_code < 300, f"{value!r}: {response.status_code} {response.text[:300]}"
    assert stored(response), f"{value!r} was accepted ({response.status_code}) but not stored literally"
    return "stored literally"


def summary(outcomes: list[str]) -> str:
    counted: dict[str, int] = {}
    for outcome in outcomes:
        counted[outcome] = counted.get(outcome, 0) + 1
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counted.items()))


@pytest.fixture(scope="module")
def cart_id(platform: SagaPlatform) -> str:
    """A real cart, so item routes reach their SKU and body."""
    response = httpx.post(f"{platform.url('cart')}/carts", json={"customer_id": "cust_sqli", "currency": "EUR"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def tables_before(platform: SagaPlatform, count_tables: Any) -> Any:
    """The row counts before any injection of this module."""
    return count_tables()


@pytest.mark.parametrize(
    ("service", "method", "path", "where"),
    BODY_FIELDS,
    ids=[f"{s} {p} {'.'.join(map(str, w))}" for s, _, p, w in BODY_FIELDS],
)
def test_injections_in_body_fields_are_refused(
    platform: SagaPlatform, tables_before: Any, service: str, method: str, path: str, where: tuple[str | int, ...]
) -> None:
    """Every string field of the write bodies has a pattern: each payload is a 4xx, nothing is stored."""
    outcomes: list[str] = []
    with httpx.Client(base_url=platform.url(service), timeout=15) as http:
        for value in EVERY:
            response = http.request(method, path, json=with_value(BODIES[path], where, value))
            outcomes.append(judged(response, value, lambda _: False))
    record_check(
        "hostile-input",
        f"SQL injection {service} {method} {path} body.{'.'.join(map(str, where))} ({len(EVERY)} strings)",
        summary(outcomes),
        passed=True,
    )


@pytest.mark.parametrize(
    ("service", "method", "template", "body"), PATH_FIELDS, ids=[f"{s} {m} {t}" for s, m, t, _ in PATH_FIELDS]
)
def test_injections_in_path_segments_are_refused(
    platform: SagaPlatform,
    tables_before: Any,
    cart_id: str,
    service: str,
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    outcomes: list[str] = []
    with httpx.Client(base_url=platform.url(service), timeout=15) as http:
        for value in EVERY:
            path = template.replace("{cart}", cart_id).format(quote(value, safe=""))
            response = http.request(method, path, json=body)
            outcomes.append(judged(response, value, lambda _: False))
    record_check(
        "hostile-input",
        f"SQL injection {service} {method} {template} path ({len(EVERY)} strings)",
        summary(outcomes),
        passed=True,
    )


@pytest.mark.parametrize(("service", "path", "name"), QUERY_FIELDS, ids=[f"{s} {p}?{n}" for s, p, n in QUERY_FIELDS])
def test_injections_in_read_filters_are_refused(
    platform: SagaPlatform, tables_before: Any, service: str, path: str, name: str
) -> None:
    outcomes: list[str] = []
    with httpx.Client(base_url=platform.url(service), timeout=15) as http:
        for value in EVERY:
            outcomes.append(judged(http.get(path, params={name: value}), value, lambda _: False))
    record_check(
        "hostile-input",
        f"SQL injection {service} GET {path}?{name} ({len(EVERY)} strings)",
        summary(outcomes),
        passed=True,
    )


async def _idempotency_keys(dsn: str, saga_ids: list[str]) -> dict[str, str | None]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT saga_id, idempotency_key FROM gateway.checkouts WHERE saga_id = ANY($1::uuid[])",
            [uuid.UUID(s) for s in saga_ids],
        )
        return {str(row["saga_id"]): row["idempotency_key"] for row in rows}
    finally:
        await connection.close()


def test_injections_in_the_idempotency_key_are_stored_literally(platform: SagaPlatform, tables_before: Any) -> None:
    """The one free-text field: printable ASCII without spaces. Compact payloads pass and must land verbatim."""
    accepted: dict[str, str] = {}
    outcomes: list[str] = []
    with httpx.Client(base_url=platform.bff_url, timeout=15) as http:
        for value in EVERY:
            response = http.post(
                "/api/checkout/initiate",
                json=checkout_body({"HOSTILE-OK": 1}, customer="cust_sqli_key"),
                headers={"Idempotency-Key": value},
            )
            if response.status_code == 202:
                saga_id = response.json()["saga_id"]
                platform.started.append(saga_id)
                accepted[saga_id] = value
            outcomes.append(judged(response, value, lambda r: r.status_code == 202))
    stored = asyncio.run(_idempotency_keys(platform.dsn, list(accepted)))
    assert stored == accepted, "idempotency keys not stored byte for byte"
    assert set(accepted.values()) == set(COMPACT_INJECTIONS), "the pattern admits exactly the space-free payloads"
    record_check(
        "hostile-input",
        f"SQL injection gateway-bff POST /api/checkout/initiate Idempotency-Key header ({len(EVERY)} strings)",
        summary(outcomes) + "; the accepted ones read back verbatim from gateway.checkouts",
        passed=True,
    )


def test_every_table_is_intact_after_the_injections(
    platform: SagaPlatform, tables_before: Any, count_tables: Any
) -> None:
    """Runs last in this module: no table dropped, none emptied, none lost a row."""
    after = count_tables()
    lost = tables_before.lost(after)
    outcome = (
        f"{len(after.rows)} tables, none dropped or lost a row"
        if not lost
        else f"lost: {', '.join(f'{t} {b}→{a}' for t, (b, a) in lost.items())}"
    )
    record_check("hostile-input", "SQL injection: tables and row counts afterwards", outcome, passed=not lost)
    assert set(after.rows) == set(tables_before.rows), "the set of tables changed"
    assert not lost, outcome
    assert len(after.rows) >= 12, f"expected every service's tables, found {sorted(after.rows)}"
