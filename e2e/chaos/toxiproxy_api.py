"""The few calls of toxiproxy's HTTP API the fault matrix makes: proxies, and toxics on them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

BOTH_WAYS: Final = ("upstream", "downstream")


@dataclass(frozen=True)
class Proxy:
    """One proxy: clients connect to ``listen``, toxiproxy connects on to ``upstream``."""

    name: str
    listen: str
    upstream: str


class Toxiproxy:
    """A client of one toxiproxy server (``TOXIPROXY_URL``)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=10)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def ensure(self, proxy: Proxy) -> None:
        """Create the proxy, replacing one of the same name (and its toxics) left by an earlier run."""
        self.http.delete(f"/proxies/{proxy.name}")  # 404 when absent: fine
        response = self.http.post(
            "/proxies", json={"name": proxy.name, "listen": proxy.listen, "upstream": proxy.upstream, "enabled": True}
        )
        if response.status_code != 201:
            raise RuntimeError(f"toxiproxy: creating {proxy}: {response.status_code} {response.text}")

    def remove(self, name: str) -> None:
        """Delete a proxy (its connections close)."""
        self.http.delete(f"/proxies/{name}")

    def add_toxic(self, proxy: str, name: str, kind: str, attributes: Mapping[str, Any], stream: str) -> None:
        """Add a toxic (``latency``, ``reset_peer``, ``timeout`` …) to one direction of a proxy."""
        body = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": dict(attributes)}
        response = self.http.post(f"/proxies/{proxy}/toxics", json=body)
        if response.status_code != 200:
            raise RuntimeError(f"toxiproxy: adding {kind} to {proxy}: {response.status_code} {response.text}")

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic (404 ignored: it may be gone already)."""
        response = self.http.delete(f"/proxies/{proxy}/toxics/{name}")
        if response.status_code not in (204, 404):
            raise RuntimeError(f"toxiproxy: removing {name} from {proxy}: {response.status_code} {response.text}")

    @contextlib.contextmanager
    def toxic(
        self, proxies: list[str], kind: str, attributes: Mapping[str, Any], streams: tuple[str, ...] = BOTH_WAYS
    ) -> Iterator[None]:
        """The toxic on ``streams`` of every proxy for the ``with`` block; removed whatever happens."""
        added: list[tuple[str, str]] = []
        try:
            for proxy in proxies:
                for stream in streams:
                    name = f"chaos-{kind}-{stream}"
                    self.add_toxic(proxy, name, kind, attributes, stream)
                    added.append((proxy, name))
            yield
        finally:
            for proxy, name in added:
                self.remove_toxic(proxy, name)
