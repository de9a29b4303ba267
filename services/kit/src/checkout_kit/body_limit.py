"""Refuse request bodies larger than a limit with 413, whether or not the client declared the size.

A declared ``Content-Length`` above the limit is refused before the application runs. A body
sent without one (``Transfer-Encoding: chunked``) or one longer than declared is counted while
the application reads it: the read that crosses the limit raises :class:`PayloadTooLargeError`,
an ``HTTPException`` FastAPI passes through untouched (it wraps other body-read errors in 400),
so the client gets a 413 and the application never sees the oversized body.
"""

from __future__ import annotations

import json
from typing import Final

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATUS: Final = 413


class PayloadTooLargeError(HTTPException):
    """The request body is larger than the service accepts."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=STATUS, detail=f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """Pure ASGI middleware bounding the size of request bodies."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a declared oversized body at once; count an undeclared one as it is read."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, self.max_body_bytes)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise PayloadTooLargeError(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLargeError:
            # Raised where no exception handler turned it into a response (e.g. a plain
            # Starlette route reading the body itself): answer here if nothing was sent yet.
            if response_started:
                raise
            await _refuse(send, self.max_body_bytes)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": f"request body larger than {limit} bytes"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": STATUS,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
