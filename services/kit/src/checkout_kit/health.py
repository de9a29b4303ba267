"""Probes and metrics endpoints: ``/livez``, ``/readyz``, ``/metrics``.

- ``/livez`` answers 200 while the process can serve HTTP at all; it checks no dependency, so a
  database outage never makes Kubernetes restart every replica at once.
- ``/readyz`` runs each configured check (database ``SELECT 1``, Kafka metadata, a background
  component's health) concurrently, each bounded by a short timeout, and answers 503 naming the
  checks that failed. It also answers 503 before startup finished and once shutdown began, so
  traffic drains away from a stopping pod.
- ``/metrics`` serves the app's registry in the Prometheus text format, or OpenMetrics when the
  scraper asks for it (``Accept: application/openmetrics-text``), which is what carries exemplars.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

Check = Callable[[], Awaitable[object]]
"""An async callable that returns when the dependency is usable and raises when it is not."""

DEFAULT_CHECK_TIMEOUT_S: Final = 2.0
"""Upper bound of one check: a readiness probe must answer well within the kubelet's timeout."""
_MAX_REASON_CHARS: Final = 300


@dataclass
class Readiness:
    """What ``/readyz`` checks, and whether the service is draining."""

    checks: Mapping[str, Check]
    """Named checks, e.g. ``database`` and ``kafka``."""
    timeout_s: float = DEFAULT_CHECK_TIMEOUT_S
    """Time each check may take before it counts as failed."""
    draining: bool = field(default=False)
    """Set when shutdown begins: the service finishes in-flight work but takes no new traffic."""

    async def probe(self) -> tuple[bool, dict[str, str]]:
        """Run every check concurrently; return (all passed, per-check outcome)."""
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._run(self.checks[name]) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        return all(outcome == "ok" for outcome in outcomes), results

    async def _run(self, check: Check) -> str:
        try:
            async with asyncio.timeout(self.timeout_s):
                await check()
        except TimeoutError:
            return f"failed: no answer within {self.timeout_s:g}s"
        except Exception as error:  # a probe reports every failure, it never raises
            reason = f"failed: {type(error).__name__}: {error}"
            return reason[:_MAX_REASON_CHARS]
        return "ok"


def readiness_of(request: Request) -> Readiness | None:
    """The readiness the app's lifespan installed, or None while starting."""
    readiness = getattr(request.app.state, "readiness", None)
    return readiness if isinstance(readiness, Readiness) else None


def health_router(registry: CollectorRegistry) -> APIRouter:
    """The probe and metrics routes, serving ``registry`` on ``/metrics``."""
    router = APIRouter(tags=["health"])

    @router.get("/livez", include_in_schema=False)
    async def livez() -> dict[str, str]:
        """The process is alive and its event loop answers."""
        return {"status": "alive"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Every dependency this service needs answers, and the service is not shutting down."""
        readiness = readiness_of(request)
        if readiness is None:
            return JSONResponse({"status": "starting", "checks": {}}, status_code=503)
        ready, results = await readiness.probe()
        if readiness.draining:
            return JSONResponse({"status": "draining", "checks": results}, status_code=503)
        failed = sorted(name for name, outcome in results.items() if outcome != "ok")
        if not ready:
            return JSONResponse({"status": "unready", "failed": failed, "checks": results}, status_code=503)
        return JSONResponse({"status": "ready", "checks": results})

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """The registry in the exposition format the scraper accepts."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(content=encoder(registry), media_type=content_type)

    return router
