"""The per-client rate limit and input validation, through the real gateway served over TCP.

The gateway runs under uvicorn on an ephemeral port (its lifespan on the real PostgreSQL and Kafka),
so the client address the limiter keys on is the real socket's peer. Limits are set so that refill
during a test is negligible (0.01 tokens a second): what passes and what is refused does not depend
on how fast the machine is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from chaos_ledger import record_check
from gateway_harness import serve_in_thread

from checkout_gateway.config import GatewaySettings, RateLimitSettings
from checkout_gateway.main import create_app
from checkout_kit.runtime import uvicorn_config

pytestmark = pytest.mark.integration

BODY = {
    "customer_id": "cust_rl",
    "items": [{"sku": "SKU-A", "quantity": 1}],
    "currency": "EUR",
    "payment_token": "tok_visa",
}
SettingsFor = Callable[..., GatewaySettings]
SLOW = 0.01
"""Tokens a second: nothing refills within a test."""


@contextmanager
def gateway(
    settings_for: SettingsFor,
    rate_limit: RateLimitSettings,
    *,
    proxy_headers: bool = True,
    production_config: bool = False,
) -> Iterator[httpx.Client]:
    """The gateway served by uvicorn on an ephemeral port: uvicorn's defaults, or the kit's production config."""
    settings = settings_for().model_copy(update={"rate_limit": rate_limit})
    app = create_app(settings)
    config = uvicorn_config(app, settings) if production_config else uvicorn.Config(app, lifespan="on")
    config.host, config.port, config.loop, config.log_level = "127.0.0.1", 0, "asyncio", "warning"
    if not production_config:
        config.proxy_headers = proxy_headers
    with serve_in_thread(app, config=config) as url, httpx.Client(base_url=url, timeout=15) as client:
        yield client


def test_a_client_past_its_burst_gets_429_with_retry_after_and_detail(settings_for: SettingsFor) -> None:
    with gateway(settings_for, RateLimitSettings(requests_per_s=SLOW, burst=3)) as client:
        accepted = [client.post("/api/checkout/initiate", json=BODY) for _ in range(3)]
        refused = client.post("/api/checkout/initiate", json=BODY)
        probes = {path: client.get(path).status_code for path in ("/livez", "/readyz", "/metrics")}
        metrics = client.get("/metrics").text

    assert [response.status_code for response in accepted] == [202] * 3, [r.text for r in accepted]
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["content-type"] == "application/json"
    assert refused.json()["detail"].startswith("too many requests from 127.0.0.1: at most 0.01 a second")
    assert probes == {"/livez": 200, "/readyz": 200, "/metrics": 200}  # never limited
    assert 'checkout_gateway_rate_limited_requests_total{method="POST"} 1.0' in metrics
    record_check(
        "privilege",
        "gateway-bff: a client past its burst (3 writes, 0.01/s)",
        f"429 with Retry-After {refused.headers['retry-after']} s and a JSON detail; probes and /metrics still 200",
        passed=True,
    )


def test_invalid_input_is_422_with_detail_and_counts_against_the_limit(settings_for: SettingsFor) -> None:
    with gateway(settings_for, RateLimitSettings(requests_per_s=SLOW, burst=2)) as client:
        invalid = [
            client.post("/api/checkout/initiate", json={**BODY, "items": []}),
            client.post("/api/checkout/initiate", content=b"{nope", headers={"content-type": "application/json"}),
        ]
        flood = client.post("/api/checkout/initiate", json={**BODY, "currency": "euros"})

    assert [response.status_code for response in invalid] == [422, 422]
    assert all(response.json()["detail"] for response in invalid)
    assert flood.status_code == 429  # garbage is not free: it spends the client's tokens too
    record_check(
        "privilege",
        "gateway-bff: invalid bodies (empty items, malformed JSON)",
        "422 with detail; a flood of them is limited like any write (429)",
        passed=True,
    )


def test_reads_cost_their_own_share_and_clients_named_by_a_trusted_header_are_apart(
    settings_for: SettingsFor,
) -> None:
    status = f"/api/checkout/{uuid.uuid4()}"  # unknown to the orchestrator: 404, after the limiter
    limit = RateLimitSettings(requests_per_s=SLOW, burst=1, read_cost=0.5, client_header="X-Forwarded-For")
    with gateway(settings_for, limit) as client:
        first = [client.get(status, headers={"X-Forwarded-For": "203.0.113.1"}).status_code for _ in range(3)]
        other = client.get(status, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.2"}).status_code

    assert first == [404, 404, 429]  # two reads at half a token each, then none left
    assert other == 404  # the last address, appended by the trusted proxy, is another client


def test_without_a_configured_header_a_forged_one_does_not_make_a_new_client(settings_for: SettingsFor) -> None:
    status = f"/api/checkout/{uuid.uuid4()}"
    limit = RateLimitSettings(requests_per_s=SLOW, burst=1, read_cost=1)
    with gateway(settings_for, limit, proxy_headers=False) as client:
        codes = [
            client.get(status, headers={"X-Forwarded-For": f"203.0.113.{index}"}).status_code for index in range(3)
        ]

    assert codes == [404, 429, 429]
    record_check(
        "privilege",
        "gateway-bff: limiter keyed on the peer address; a forged X-Forwarded-For is ignored unless configured",
        "forged headers share the peer's bucket (429); a configured trusted header separates clients",
        passed=True,
    )


def test_the_production_server_config_does_not_let_a_localhost_peer_forge_its_address(
    settings_for: SettingsFor,
) -> None:
    """On the local platform every peer is 127.0.0.1 (the node agent's Service proxies), and in a cluster a
    sidecar proxy would be too: a client could then pick a fresh bucket per request by forging the header."""
    status = f"/api/checkout/{uuid.uuid4()}"
    limit = RateLimitSettings(requests_per_s=SLOW, burst=1, read_cost=1)
    with gateway(settings_for, limit, production_config=True) as client:
        codes = [
            client.get(status, headers={"X-Forwarded-For": f"203.0.113.{index}"}).status_code for index in range(3)
        ]
    forged = codes != [404, 429, 429]
    record_check(
        "privilege",
        "gateway-bff under the kit's uvicorn config: forged X-Forwarded-For from a 127.0.0.1 peer",
        f"trusted: every forged address got a fresh bucket ({codes})"
        if forged
        else "ignored: the forged addresses share the peer's bucket (429)",
        passed=not forged,
    )
    assert codes == [404, 429, 429]


def test_the_limit_can_be_switched_off(settings_for: SettingsFor) -> None:
    status = f"/api/checkout/{uuid.uuid4()}"
    with gateway(settings_for, RateLimitSettings(enabled=False, requests_per_s=SLOW, burst=1, read_cost=1)) as client:
        codes = {client.get(status).status_code for _ in range(5)}

    assert codes == {404}
