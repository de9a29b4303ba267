"""A Service's local port spreads TCP connections over its backends, on real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from checkout_stack.kubelet.proxy import ServiceProxy, bind_port

TIMEOUT_S = 5.0
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _serve(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    return server, port


def _replying(ident: bytes) -> Handler:
    """A backend that answers every connection with its own id, then closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(ident)
        await writer.drain()
        writer.close()

    return handle


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _ask(port: int) -> bytes:
    """Connect, and read until the other side closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()


@pytest.fixture
async def backends() -> AsyncIterator[dict[bytes, int]]:
    """Two running backends: id → port."""
    servers = {ident: await _serve(_replying(ident)) for ident in (b"pod-a", b"pod-b")}
    yield {ident: port for ident, (_, port) in servers.items()}
    for server, _ in servers.values():
        server.close()
        await server.wait_closed()


@pytest.fixture
async def proxy() -> AsyncIterator[ServiceProxy]:
    service = ServiceProxy("shop/shop-cart:8106")
    await service.start()
    yield service
    await service.close()


async def test_connections_go_round_robin_over_the_backends(proxy: ServiceProxy, backends: dict[bytes, int]) -> None:
    proxy.set_backends(list(backends.values()))

    answers = [await _ask(proxy.port) for _ in range(6)]

    assert Counter(answers) == {b"pod-a": 3, b"pod-b": 3}
    assert all(first != second for first, second in itertools.pairwise(answers))


async def test_data_flows_both_ways_beyond_one_chunk(proxy: ServiceProxy) -> None:
    server, port = await _serve(_echo)
    proxy.set_backends([port])
    payload = bytes(range(256)) * 1024  # 256 KiB: several copy chunks each way

    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    echoed = await asyncio.wait_for(reader.read(), TIMEOUT_S)
    writer.close()
    server.close()
    await server.wait_closed()

    assert echoed == payload


async def test_without_backends_a_connection_is_closed_at_once(proxy: ServiceProxy) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)

    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()


async def test_a_backend_that_is_down_is_skipped(proxy: ServiceProxy, backends: dict[bytes, int]) -> None:
    proxy.set_backends([_free_port(), backends[b"pod-a"]])

    answers = [await _ask(proxy.port) for _ in range(4)]

    assert answers == [b"pod-a"] * 4


async def test_when_every_backend_is_down_the_connection_is_closed(proxy: ServiceProxy) -> None:
    proxy.set_backends([_free_port(), _free_port()])

    assert await _ask(proxy.port) == b""


async def test_new_backends_take_the_next_connections(proxy: ServiceProxy, backends: dict[bytes, int]) -> None:
    proxy.set_backends(list(backends.values()))
    proxy.set_backends([backends[b"pod-b"]])

    assert proxy.backends == [backends[b"pod-b"]]
    assert [await _ask(proxy.port) for _ in range(3)] == [b"pod-b"] * 3


async def test_close_stops_accepting(backends: dict[bytes, int]) -> None:
    proxy = ServiceProxy("shop/shop-cart:8106")
    await proxy.start()
    proxy.set_backends(list(backends.values()))
    assert await _ask(proxy.port) in backends

    await proxy.close()

    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", proxy.port)


async def test_close_drops_open_connections_promptly() -> None:
    server, port = await _serve(_echo)
    proxy = ServiceProxy("shop/shop-cart:8106")
    await proxy.start()
    proxy.set_backends([port])
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), TIMEOUT_S) == b"ping"

    # The client still holds its connection open: close() must not wait for it to leave.
    await asyncio.wait_for(proxy.close(), TIMEOUT_S)

    assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
    writer.close()
    server.close()
    await server.wait_closed()


async def test_proxy_listens_on_its_preferred_port_and_says_so() -> None:
    preferred = _free_port()
    proxy = ServiceProxy("shop/shop-cart:8106", preferred)
    await proxy.start()
    try:
        assert proxy.port == preferred
        assert proxy.address == f"127.0.0.1:{preferred}"
    finally:
        await proxy.close()


def test_bind_port_gives_the_preferred_port_when_free() -> None:
    preferred = _free_port()

    with bind_port(preferred) as sock:
        assert sock.getsockname() == ("127.0.0.1", preferred)


def test_bind_port_gives_another_port_when_the_preferred_one_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        preferred: int = taken.getsockname()[1]

        with bind_port(preferred) as sock:
            host, port = sock.getsockname()

    assert host == "127.0.0.1"
    assert port not in (preferred, 0)


def test_bind_port_without_preference_gives_a_listening_socket() -> None:
    with bind_port(None) as sock, socket.create_connection(sock.getsockname(), timeout=TIMEOUT_S):
        pass
