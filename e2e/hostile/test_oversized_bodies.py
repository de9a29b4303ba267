"""Bodies above a service's limit get 413 with a detail, declared or chunked; slow ones hold nothing up.

Every service runs the kit's body limit (``HTTP__MAX_BODY_BYTES``). A declared oversized body is
refused before routing, whatever the route; a chunked one (no Content-Length) is counted while the
route reads it, so it is refused by every route that reads a body. Routes that read no body never
buffer one: they answer without it (no 5xx), and the service keeps serving. Clients that declare a
body and never finish sending it each hold one request open, and nothing else: the next client is served.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from typing import Final

import httpx
import pytest
from chaos_ledger import record_check
from saga_platform import SagaPlatform, checkout_body

pytestmark = pytest.mark.integration

HUGE: Final = 1024 * 1024
"""Far above any service's limit (64 KiB by default)."""
CHUNK: Final = 16 * 1024
LIMIT_DETAIL: Final = re.compile(r"request body larger than (\d+) bytes")

BODY_ROUTES: Final = [
    ("gateway-bff", "POST", "/api/checkout/initiate"),
    ("gateway-bff", "POST", "/api/carts"),
    ("cart", "POST", "/carts"),
    ("inventory", "PUT", "/inventory/HOSTILE-OVERSIZED"),
]
"""Routes that read a JSON body: refused declared and chunked."""
READ_ONLY: Final = [
    ("checkout-orchestrator", "POST", "/sagas"),
    ("payment", "POST", "/payments"),
    ("order", "POST", "/orders"),
]
"""Services without a body-reading route: a declared oversized body is refused before routing."""


def chunked(total: int) -> Iterator[bytes]:
    """``total`` bytes in chunks: httpx sends an iterator with ``Transfer-Encoding: chunked``."""
    sent = 0
    while sent < total:
        size = min(CHUNK, total - sent)
        sent += size
        yield b" " * size


def refused_with_detail(response: httpx.Response) -> int:
    """The limit a 413's detail names; fails unless the answer is a 413 saying why."""
    assert response.status_code == 413, f"{response.status_code} {response.text[:200]}"
    match = LIMIT_DETAIL.search(response.json()["detail"])
    assert match, response.text
    return int(match.group(1))


@pytest.mark.parametrize(("service", "method", "path"), BODY_ROUTES, ids=[f"{s} {m} {p}" for s, m, p in BODY_ROUTES])
def test_a_body_above_the_limit_is_refused_declared_or_chunked(
    platform: SagaPlatform, service: str, method: str, path: str
) -> None:
    with httpx.Client(base_url=platform.url(service), timeout=30) as http:
        headers = {"content-type": "application/json"}
        declared = http.request(method, path, content=b" " * HUGE, headers=headers)
        limit = refused_with_detail(declared)
        streamed = http.request(method, path, content=chunked(HUGE), headers=headers)
        assert refused_with_detail(streamed) == limit
        # The boundary: one byte over is refused while streaming; exactly the limit is read (and then
        # refused as JSON, not as a size).
        over = http.request(method, path, content=chunked(limit + 1), headers=headers)
        assert refused_with_detail(over) == limit
        at_limit = http.request(method, path, content=chunked(limit), headers=headers)
        assert at_limit.status_code in (400, 422), f"{at_limit.status_code} {at_limit.text[:200]}"
        # Still serving: a good request right after.
        if service == "gateway-bff" and path.endswith("initiate"):
            after = http.post(path, json=checkout_body({"HOSTILE-OK": 1}))
            assert after.status_code == 202, after.text
            platform.started.append(after.json()["saga_id"])
        else:
            assert http.get("/readyz").status_code == 200
    record_check(
        "hostile-input",
        f"oversized body {service} {method} {path}",
        f"413 '{declared.json()['detail']}' declared (1 MiB), chunked (1 MiB and limit+1); "
        f"exactly {limit} bytes read ({at_limit.status_code})",
        passed=True,
    )


@pytest.mark.parametrize(("service", "method", "path"), READ_ONLY, ids=[f"{s} {m} {p}" for s, m, p in READ_ONLY])
def test_services_without_body_routes_refuse_declared_bodies_and_never_read_chunked_ones(
    platform: SagaPlatform, service: str, method: str, path: str
) -> None:
    with httpx.Client(base_url=platform.url(service), timeout=30) as http:
        declared = http.request(method, path, content=b" " * HUGE, headers={"content-type": "application/json"})
        limit = refused_with_detail(declared)
        streamed = http.request(method, path, content=chunked(HUGE), headers={"content-type": "application/json"})
        assert 400 <= streamed.status_code < 500, f"{streamed.status_code} {streamed.text[:200]}"
        assert http.get("/readyz").status_code == 200
    record_check(
        "hostile-input",
        f"oversized body {service} {method} {path}",
        f"413 '{declared.json()['detail']}' declared (1 MiB); chunked 1 MiB answered {streamed.status_code} "
        f"unread (no body route); limit {limit} bytes",
        passed=True,
    )


SLOW_CLIENTS: Final = 200
"""Connections that declare a body and never finish sending it."""


@pytest.mark.parametrize("service", ["gateway-bff", "cart", "inventory"])
def test_clients_that_never_finish_their_body_do_not_stop_others_being_served(
    platform: SagaPlatform, rss: Callable[[str], int], service: str
) -> None:
    """Slow-body clients each hold a request open; everyone else is still answered, and memory stays flat."""
    url = httpx.URL(platform.url(service))
    path = {"gateway-bff": "/api/carts", "cart": "/carts", "inventory": "/inventory/HOSTILE-SLOW"}[service]
    method = "PUT" if service == "inventory" else "POST"
    before = rss(service)
    held: list[socket.socket] = []
    try:
        for _ in range(SLOW_CLIENTS):
            conn = socket.create_connection((url.host, url.port), timeout=10)
            conn.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
                'Content-Length: 60000\r\n\r\n{"customer_id": '.encode()
            )
            held.append(conn)
        with httpx.Client(base_url=str(url), timeout=15) as http:
            served = http.get("/readyz")
            body = (
                {"available": 1, "unit_price_minor": 1, "currency": "EUR"}
                if service == "inventory"
                else {"customer_id": "cust_slow", "currency": "EUR"}
            )
            written = http.request(method, path, json=body)
        during = rss(service)
    finally:
        for conn in held:
            conn.close()
    growth = during - before
    record_check(
        "hostile-input",
        f"slow bodies {service}: {SLOW_CLIENTS} connections holding an unfinished {method} {path}",
        f"others served (readyz {served.status_code}, {method} {written.status_code}); "
        f"RSS +{growth / 1024 / 1024:.1f} MiB",
        passed=served.status_code == 200 and written.status_code in (200, 201) and growth < 64 * 1024 * 1024,
    )
    assert served.status_code == 200, served.text
    assert written.status_code in (200, 201), written.text
    assert growth < 64 * 1024 * 1024, f"RSS grew {growth / 1024 / 1024:.1f} MiB with {SLOW_CLIENTS} slow clients"
