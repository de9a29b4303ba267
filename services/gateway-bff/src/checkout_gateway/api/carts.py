"""``/api/carts…``: the cart service's routes, passed through to its ``/carts…``.

The gateway checks the path (a cart id is a UUID, a SKU matches the SKU pattern), so nothing
but the cart routes can be reached through it, and passes the request body through unread
(bounded by the body limit); the cart service validates it. The cart's status code and body
come back as they are — 404 for an unknown cart, 422 with field detail, 409 for a full cart —
with ``Location`` rewritten to the gateway's path. When the cart service cannot answer, the
client gets 503 (unreachable), 504 (too slow) or 502 (it failed) with a detail saying so.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Final

from fastapi import APIRouter, Path, Request, Response, status

from checkout_gateway.api.deps import UpstreamsDep
from checkout_gateway.api.models import SKU_PATTERN, CartLineBody, NewCartBody, json_body
from checkout_gateway.upstreams import CART, UPSTREAM_RESPONSES, Upstreams, unusable_answer

PREFIX: Final = "/api/carts"
UPSTREAM_PREFIX: Final = "/carts"
PASSED_RESPONSE_HEADERS: Final = ("content-type", "cache-control", "etag", "last-modified")

router = APIRouter(prefix=PREFIX, tags=["carts"], responses=UPSTREAM_RESPONSES)

SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, description="The line's SKU")]

NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {status.HTTP_404_NOT_FOUND: {"description": "No such cart"}}
BODY_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    status.HTTP_400_BAD_REQUEST: {"description": "The body cannot be read as UTF-8 JSON"},
    status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The body is larger than the gateway accepts"},
    status.HTTP_422_UNPROCESSABLE_CONTENT: {"description": "The cart service refused the body (field detail)"},
}
"""What the cart service answers to a bad body, passed through (and the gateway's own body limit)."""


async def _forward(request: Request, upstreams: Upstreams, path: str) -> Response:
    """Send the request on to the cart service's ``path`` and its answer back."""
    body = await request.body()
    headers = {"accept": request.headers.get("accept", "application/json")}
    if body:
        headers["content-type"] = request.headers.get("content-type", "application/json")
    answer = await upstreams.call(
        CART,
        request.method,
        UPSTREAM_PREFIX + path,
        content=body or None,
        headers=headers,
        params=dict(request.query_params),
    )
    if answer.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        raise unusable_answer(CART, answer)
    passed = {name: answer.headers[name] for name in PASSED_RESPONSE_HEADERS if name in answer.headers}
    location = answer.headers.get("location")
    if location is not None:
        passed["location"] = (
            PREFIX + location.removeprefix(UPSTREAM_PREFIX) if location.startswith(UPSTREAM_PREFIX) else location
        )
    return Response(content=answer.content, status_code=answer.status_code, headers=passed)


@router.post("", status_code=status.HTTP_201_CREATED, responses=BODY_ERRORS, openapi_extra=json_body(NewCartBody))
async def create_cart(request: Request, upstreams: UpstreamsDep) -> Response:
    """Open an empty cart: ``{customer_id, currency}`` → 201, the cart, ``Location``."""
    return await _forward(request, upstreams, "")


@router.get("/{cart_id}", responses=NOT_FOUND)
async def get_cart(cart_id: uuid.UUID, request: Request, upstreams: UpstreamsDep) -> Response:
    """The cart with its lines; 404 if unknown."""
    return await _forward(request, upstreams, f"/{cart_id}")


@router.put(
    "/{cart_id}/items/{sku}",
    responses={
        **NOT_FOUND,
        **BODY_ERRORS,
        status.HTTP_409_CONFLICT: {"description": "The cart holds the most lines allowed"},
    },
    openapi_extra=json_body(CartLineBody),
)
async def set_item(cart_id: uuid.UUID, sku: SkuPath, request: Request, upstreams: UpstreamsDep) -> Response:
    """Set how many units of ``sku`` the cart holds: ``{quantity}``; 0 removes the line."""
    return await _forward(request, upstreams, f"/{cart_id}/items/{sku}")


@router.delete("/{cart_id}/items/{sku}", responses=NOT_FOUND)
async def delete_item(cart_id: uuid.UUID, sku: SkuPath, request: Request, upstreams: UpstreamsDep) -> Response:
    """Remove ``sku`` from the cart."""
    return await _forward(request, upstreams, f"/{cart_id}/items/{sku}")


@router.delete("/{cart_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_cart(cart_id: uuid.UUID, request: Request, upstreams: UpstreamsDep) -> Response:
    """Delete the cart and its lines: 204."""
    return await _forward(request, upstreams, f"/{cart_id}")
