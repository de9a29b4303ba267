"""A Service's port on 127.0.0.1: TCP connections spread over the ready Pods behind it (what kube-proxy does)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket

log = logging.getLogger(__name__)

COPY_CHUNK = 64 * 1024


def bind_port(preferred: int | None) -> socket.socket:
    """A listening socket on 127.0.0.1: ``preferred`` if it is free, else any free port."""
    for port in ([preferred] if preferred else []) + [0]:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(256)
        sock.setblocking(False)
        return sock
    raise OSError("no free port on 127.0.0.1")


class ServiceProxy:
    """One Service port: accepts on a local port, connects each client to the next ready backend.

    Backends are ``127.0.0.1:<port>`` of the Pods' containers; :meth:`set_backends` replaces them
    as Pods come, go and change readiness. A connection made while no backend is ready is closed at
    once (a client sees a refused or reset connection, as with a Service without endpoints).
    """

    def __init__(self, key: str, preferred_port: int | None = None) -> None:
        self.key = key
        self._socket = bind_port(preferred_port)
        self.port: int = self._socket.getsockname()[1]
        self._backends: list[int] = []
        self._cycle: itertools.cycle[int] = itertools.cycle([])
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    @property
    def backends(self) -> list[int]:
        """The local ports connections go to."""
        return list(self._backends)

    def set_backends(self, ports: list[int]) -> None:
        """Route new connections to these local ports (existing connections are left alone)."""
        ports = sorted(ports)
        if ports != self._backends:
            self._backends = ports
            self._cycle = itertools.cycle(ports)

    async def start(self) -> None:
        """Start accepting."""
        self._server = await asyncio.start_server(self._handle, sock=self._socket)

    async def close(self) -> None:
        """Stop accepting and drop open connections."""
        if self._server is not None:
            self._server.close()
        # Open connections first: from Python 3.12.1 wait_closed() waits for every client to leave.
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            upstream = await self._connect()
            if upstream is None:
                return
            up_reader, up_writer = upstream
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                up_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._connections.discard(task)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        # Try each backend once, starting with the next in turn: one that just went away is skipped.
        for _ in range(len(self._backends)):
            port = next(self._cycle)
            try:
                return await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                log.debug("%s: backend 127.0.0.1:%d refused", self.key, port)
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()
