"""The services the gateway calls over HTTP (orchestrator, cart): clients, timeouts, failures.

One ``httpx.AsyncClient`` per upstream, opened when the app starts (a component of its
lifespan) and closed when it stops, so connections are pooled and reused. Every call is bounded
(connect and answer timeouts from :class:`~checkout_gateway.config.UpstreamSettings`); a
connection that fails to open is retried (nothing was sent, so it is safe for every method).
Whatever goes wrong on the way becomes an :class:`UpstreamError` carrying the status the
client gets and a detail saying which upstream failed and how:

- 503 Service Unavailable: the upstream cannot be reached (refused, unresolvable, connect timeout),
  or answered 503 itself; with ``Retry-After``;
- 504 Gateway Timeout: it accepted the request but did not answer in time;
- 502 Bad Gateway: it answered something unusable (a broken response, a 5xx, a malformed body).

The W3C trace context of the current span goes along, so the upstream's spans join the trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from checkout_gateway.config import UpstreamSettings
from checkout_kit.telemetry import inject_trace_headers

log = logging.getLogger(__name__)

ORCHESTRATOR: Final = "orchestrator"
CART: Final = "cart"
RETRY_AFTER_S: Final = 1
"""What a 503 tells the client to wait before trying again."""
UPSTREAM_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    httpx.codes.BAD_GATEWAY.value: {"description": "An upstream service answered something unusable"},
    httpx.codes.SERVICE_UNAVAILABLE.value: {"description": "An upstream service cannot be reached"},
    httpx.codes.GATEWAY_TIMEOUT.value: {"description": "An upstream service did not answer in time"},
}
"""The OpenAPI description of what :class:`UpstreamError` answers, for routes that call upstreams."""


class UpstreamError(Exception):
    """An upstream could not give a usable answer; ``status_code`` is what the client gets."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


async def upstream_error_response(_request: Request, error: Exception) -> JSONResponse:
    """The exception handler turning :class:`UpstreamError` into its response."""
    assert isinstance(error, UpstreamError)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if error.status_code == httpx.codes.SERVICE_UNAVAILABLE else None
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=headers)


def unusable_answer(upstream: str, response: httpx.Response) -> UpstreamError:
    """The error for an upstream answer the gateway cannot pass on (a 5xx, or one it did not expect)."""
    status = response.status_code
    client_status = (
        httpx.codes.SERVICE_UNAVAILABLE if status == httpx.codes.SERVICE_UNAVAILABLE else httpx.codes.BAD_GATEWAY
    )
    return UpstreamError(client_status, f"the {upstream} service answered {status} {response.reason_phrase}".rstrip())


class Upstreams:
    """The gateway's HTTP clients; a component of the app (started and stopped by its lifespan)."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, base_url: str) -> httpx.AsyncClient:
        settings = self.settings
        limits = httpx.Limits(max_connections=settings.max_connections, max_keepalive_connections=20)
        return httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            transport=httpx.AsyncHTTPTransport(retries=settings.connect_retries, limits=limits),
            follow_redirects=False,
        )

    async def start(self) -> None:
        """Open the clients (connections are made on first use)."""
        self._clients = {
            ORCHESTRATOR: self._client(self.settings.orchestrator_url),
            CART: self._client(self.settings.cart_url),
        }

    async def stop(self, grace_s: float | None = None) -> None:
        """Close the clients and their pooled connections."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    async def call(
        self,
        upstream: str,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request to ``upstream``; raise :class:`UpstreamError` if no answer came back."""
        client = self._clients.get(upstream)
        if client is None:
            raise UpstreamError(
                httpx.codes.SERVICE_UNAVAILABLE, f"the gateway is not serving ({upstream} client closed)"
            )
        sent_headers = {**inject_trace_headers(), **(headers or {})}
        try:
            return await client.request(method, path, content=content, headers=sent_headers, params=params)
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:
            log.warning("%s unreachable at %s: %s", upstream, client.base_url, error)
            raise UpstreamError(
                httpx.codes.SERVICE_UNAVAILABLE,
                f"the {upstream} service is unavailable (cannot connect to {client.base_url}): "
                f"{type(error).__name__}; try again shortly",
            ) from error
        except httpx.TimeoutException as error:
            log.warning("%s did not answer %s %s within %ss", upstream, method, path, self.settings.timeout_s)
            raise UpstreamError(
                httpx.codes.GATEWAY_TIMEOUT,
                f"the {upstream} service did not answer within {self.settings.timeout_s:g}s",
            ) from error
        except httpx.TransportError as error:
            log.warning("%s failed on %s %s: %r", upstream, method, path, error)
            raise UpstreamError(
                httpx.codes.BAD_GATEWAY, f"the {upstream} service failed to answer: {type(error).__name__}: {error}"
            ) from error
