"""Querying Prometheus' HTTP API with bounded polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

Sample = dict[str, Any]


class MetricNotFoundError(AssertionError):
    """The expected samples did not show up in time."""


class PrometheusQuery:
    """A small client of ``/api/v1/query``."""

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, expr: str) -> list[Sample]:
        """Evaluate an instant query; return its vector (metric labels and value)."""
        response = httpx.get(f"{self.base_url}/api/v1/query", params={"query": expr}, timeout=self.timeout_s)
        response.raise_for_status()
        body = response.json()
        if body.get("status") != "success":
            raise ValueError(f"query {expr!r} failed: {body.get('error')}")
        return list(body["data"]["result"])

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        *,
        timeout_s: float = 60.0,
    ) -> list[Sample]:
        """Poll ``expr`` until ``predicate`` holds for its result."""
        deadline = time.monotonic() + timeout_s
        result: list[Sample] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(1.0)
        raise MetricNotFoundError(f"{expr!r} did not satisfy the check within {timeout_s:.0f}s; last: {result}")
