"""Request rate per client: a token bucket per client key, as ASGI middleware in front of the API.

A client is its TCP peer address, or — only when ``RATE_LIMIT__CLIENT_HEADER`` names one — the
address a trusted proxy in front of the gateway put in that header (for ``X-Forwarded-For``, the
last entry: the one the nearest proxy appended; the entries before it are the client's own words).
Each client's bucket holds up to ``burst`` tokens and refills at ``requests_per_s``; a write (any
method but ``GET``/``HEAD``/``OPTIONS``) costs one token, a read ``read_cost``. A request that finds
too few tokens is answered ``429`` with ``Retry-After`` (whole seconds until it would pass) and a JSON
``detail``, before it reaches the app. The probes and ``/metrics`` are never limited: a kubelet or
Prometheus must not be throttled by traffic from the same address.

Memory is bounded: buckets are kept in least-recently-used order and a bucket idle long enough to be
full again is dropped (a fresh bucket is the same thing); past ``max_clients`` the least recently
used bucket goes too (that client merely gets a fresh burst).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from checkout_gateway.config import RateLimitSettings

UNLIMITED_PATHS: Final = frozenset({"/livez", "/readyz", "/metrics"})
"""Probes and metrics: never limited."""

READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that cost ``read_cost`` instead of a whole token."""


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True)
class Decision:
    """Whether a request may pass and, if not, how long until it would."""

    allowed: bool
    retry_after_s: float = 0.0


class TokenBuckets:
    """One token bucket per client key, bounded in number; ``clock`` is monotonic seconds."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: float,
        max_clients: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate_per_s <= 0 or burst <= 0 or max_clients < 1:
            raise ValueError("rate_per_s and burst must be positive and max_clients at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    @property
    def refill_s(self) -> float:
        """Time an empty bucket takes to be full again (after it, an idle bucket is forgotten)."""
        return self.burst / self.rate_per_s

    def take(self, key: str, cost: float = 1.0) -> Decision:
        """Take ``cost`` tokens from ``key``'s bucket if it holds them."""
        now = self._clock()
        self._forget_idle(now)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(tokens=self.burst, updated=now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate_per_s)
            bucket.updated = now
        self._buckets[key] = bucket  # most recently used last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return Decision(allowed=True)
        return Decision(allowed=False, retry_after_s=(cost - bucket.tokens) / self.rate_per_s)

    def _forget_idle(self, now: float) -> None:
        # Least recently used first: stop at the first bucket that may not be full yet.
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if now - oldest.updated < self.refill_s:
                return
            del self._buckets[key]


def client_key(scope: Scope, header: str | None) -> str:
    """The client a request counts against: the trusted header's last address, else the peer."""
    if header:
        value = Headers(scope=scope).get(header)
        if value:
            last = value.rsplit(",", 1)[-1].strip()
            if last:
                return last
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Answers ``429`` to a client past its rate; everything else goes on to the app unchanged."""

    def __init__(self, app: ASGIApp, *, settings: RateLimitSettings, registry: CollectorRegistry) -> None:
        self.app = app
        self.settings = settings
        self.buckets = TokenBuckets(
            rate_per_s=settings.requests_per_s, burst=settings.burst, max_clients=settings.max_clients
        )
        self.limited = Counter(
            "checkout_gateway_rate_limited_requests",
            "Requests refused with 429 because their client exceeded its request rate.",
            ["method"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        cost = self.settings.read_cost if method in READ_METHODS else 1.0
        key = client_key(scope, self.settings.client_header)
        decision = self.buckets.take(key, cost)
        if decision.allowed:
            await self.app(scope, receive, send)
            return
        self.limited.labels(method=method).inc()
        retry_after = max(1, math.ceil(decision.retry_after_s))
        response = JSONResponse(
            status_code=429,
            headers={"Retry-After": str(retry_after)},
            content={
                "detail": (
                    f"too many requests from {key}: at most {self.settings.requests_per_s:g} a second"
                    f" (bursts of {self.settings.burst:g}); retry after {retry_after} s"
                )
            },
        )
        await response(scope, receive, send)
