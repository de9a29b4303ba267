"""toxiproxy is real: a proxy created over its API passes bytes, and its toxics change the traffic."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.integration


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        # The reset_peer toxic tears the proxy's upstream connection down too.
        with contextlib.suppress(ConnectionError):
            while data := self.request.recv(65536):
                self.request.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[int]:
    """A TCP echo server on an ephemeral loopback port; yields the port."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def proxy(toxiproxy_url: str, echo_server: int) -> Iterator[tuple[str, int]]:
    """A proxy on an ephemeral port in front of the echo server; yields its name and port."""
    name = f"echo-{uuid.uuid4().hex[:10]}"
    response = httpx.post(
        f"{toxiproxy_url}/proxies",
        json={"name": name, "listen": "127.0.0.1:0", "upstream": f"127.0.0.1:{echo_server}"},
        timeout=5,
    )
    assert response.status_code == 201, response.text
    port = int(response.json()["listen"].rsplit(":", 1)[1])
    yield name, port
    httpx.delete(f"{toxiproxy_url}/proxies/{name}", timeout=5)


def _round_trip(port: int, payload: bytes) -> tuple[bytes, float]:
    """Send ``payload`` through the proxy; return what came back and how long it took."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        started = time.monotonic()
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
        return received, time.monotonic() - started


def _add_toxic(toxiproxy_url: str, proxy: str, toxic: dict[str, object]) -> str:
    response = httpx.post(f"{toxiproxy_url}/proxies/{proxy}/toxics", json=toxic, timeout=5)
    assert response.status_code == 200, response.text
    return str(response.json()["name"])


def test_bytes_pass_through_the_proxy(proxy: tuple[str, int]) -> None:
    _, port = proxy
    payload = uuid.uuid4().bytes * 64
    received, _ = _round_trip(port, payload)
    assert received == payload


def test_latency_toxic_delays_traffic(toxiproxy_url: str, proxy: tuple[str, int]) -> None:
    # Only the lower bound is asserted: the toxic guarantees it, whatever the machine's load.
    name, port = proxy
    toxic = _add_toxic(
        toxiproxy_url,
        name,
        {
            "type": "latency",
            "stream": "downstream",
            "attributes": {"latency": 600, "jitter": 0},
        },
    )
    received, delayed = _round_trip(port, b"ping")
    assert received == b"ping"
    assert delayed >= 0.55

    assert httpx.delete(f"{toxiproxy_url}/proxies/{name}/toxics/{toxic}", timeout=5).status_code == 204
    assert httpx.get(f"{toxiproxy_url}/proxies/{name}/toxics", timeout=5).json() == []
    received, _ = _round_trip(port, b"pong")
    assert received == b"pong"


def test_reset_peer_toxic_resets_connections(toxiproxy_url: str, proxy: tuple[str, int]) -> None:
    name, port = proxy
    _add_toxic(
        toxiproxy_url,
        name,
        {
            "type": "reset_peer",
            "stream": "upstream",
            "attributes": {"timeout": 0},
        },
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"ping")
        with pytest.raises(ConnectionResetError):
            conn.recv(64)


def test_deleted_proxy_stops_listening(toxiproxy_url: str, proxy: tuple[str, int]) -> None:
    name, port = proxy
    assert httpx.delete(f"{toxiproxy_url}/proxies/{name}", timeout=5).status_code == 204
    assert httpx.get(f"{toxiproxy_url}/proxies/{name}", timeout=5).status_code == 404
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
