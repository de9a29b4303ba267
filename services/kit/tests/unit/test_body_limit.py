"""Request bodies above the limit are refused with 413, declared or not; smaller ones pass."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from checkout_kit.body_limit import BodyLimitMiddleware

LIMIT = 1_024


class Note(BaseModel):
    text: str


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def app(calls: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/notes")
    async def post_note(note: Note) -> dict[str, int]:
        calls.append("notes")
        return {"length": len(note.text)}

    async def raw(request: Request) -> PlainTextResponse:
        body = await request.body()  # a plain Starlette route: no FastAPI body handling
        calls.append("raw")
        return PlainTextResponse(str(len(body)))

    app.add_route("/raw", raw, methods=["POST"])
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=LIMIT)
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


def _note(total_bytes: int) -> bytes:
    """A JSON note whose encoding is exactly ``total_bytes`` long."""
    overhead = len(b'{"text":""}')
    return b'{"text":"' + b"x" * (total_bytes - overhead) + b'"}'


async def _chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_body_at_the_limit_is_accepted(client: httpx.AsyncClient, calls: list[str]) -> None:
    response = await client.post("/notes", content=_note(LIMIT), headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert calls == ["notes"]


async def test_declared_oversized_body_is_refused_before_the_app_runs(
    client: httpx.AsyncClient, calls: list[str]
) -> None:
    response = await client.post("/notes", content=_note(LIMIT + 1), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body larger than {LIMIT} bytes"}
    assert calls == []


async def test_chunked_oversized_body_is_refused(client: httpx.AsyncClient, calls: list[str]) -> None:
    request = client.build_request(
        "POST", "/notes", content=_chunks(_note(LIMIT * 3)), headers={"content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    response = await client.send(request)
    assert response.status_code == 413
    assert "larger than 1024 bytes" in response.json()["detail"]
    assert calls == []


async def test_chunked_body_within_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    request = client.build_request(
        "POST", "/notes", content=_chunks(_note(LIMIT - 10)), headers={"content-type": "application/json"}
    )
    response = await client.send(request)
    assert response.status_code == 200, response.text
    assert response.json() == {"length": LIMIT - 10 - len(b'{"text":""}')}


async def test_chunked_oversized_body_to_a_plain_route_is_refused(client: httpx.AsyncClient, calls: list[str]) -> None:
    response = await client.post("/raw", content=_chunks(b"y" * (LIMIT + 1)))
    assert response.status_code == 413
    assert calls == []


async def test_validation_errors_stay_422_with_field_detail(client: httpx.AsyncClient) -> None:
    response = await client.post("/notes", json={"text": 5})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "text"]
