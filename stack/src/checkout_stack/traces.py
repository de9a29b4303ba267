"""Reading traces back from the trace backend's query API (Jaeger's HTTP API)."""

from __future__ import annotations

import time
from typing import Any

import httpx


class TraceNotFoundError(AssertionError):
    """The trace did not show up in time."""


class TraceQuery:
    """A small client of ``/api/traces`` with bounded polling."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """Return the trace (Jaeger's JSON: spans, processes) or None if unknown."""
        response = httpx.get(f"{self.base_url}/api/traces/{trace_id}", timeout=self.timeout_s)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json().get("data") or []
        return data[0] if data else None

    def traces(self, service: str, limit: int = 20) -> list[dict[str, Any]]:
        """Recent traces that have a span of ``service``."""
        response = httpx.get(
            f"{self.base_url}/api/traces", params={"service": service, "limit": limit}, timeout=self.timeout_s
        )
        if response.status_code == 404:
            return []
        response.raise_for_status()
        return list(response.json().get("data") or [])

    def wait_for_trace(self, trace_id: str, *, min_spans: int = 1, timeout_s: float = 30.0) -> dict[str, Any]:
        """Poll until the trace has at least ``min_spans`` spans."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while time.monotonic() < deadline:
            trace = self.trace(trace_id)
            seen = len(trace["spans"]) if trace else 0
            if trace and seen >= min_spans:
                return trace
            time.sleep(0.5)
        raise TraceNotFoundError(f"trace {trace_id} has {seen} of {min_spans} spans after {timeout_s:.0f}s")
