"""Routes of ``/api/checkout``: start a checkout (202 + a saga id), then follow it."""

from __future__ import annotations

import uuid
from typing import Annotated, Final

from fastapi import APIRouter, Header, HTTPException, Response, status
from pydantic import Field, TypeAdapter, ValidationError

from checkout_gateway.api.deps import UpstreamsDep
from checkout_gateway.api.models import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_LINES,
    CartView,
    CheckoutAccepted,
    CheckoutLine,
    CheckoutRequest,
    CheckoutStatus,
    OrchestratorSaga,
)
from checkout_gateway.initiation import KeyReusedError, Order, accept, fingerprint, replay
from checkout_gateway.status import accepted_not_started, from_orchestrator
from checkout_gateway.storage import checkouts
from checkout_gateway.upstreams import (
    CART,
    ORCHESTRATOR,
    UPSTREAM_RESPONSES,
    UpstreamError,
    Upstreams,
    unusable_answer,
)
from checkout_kit.deps import RuntimeDep, SessionDep

router = APIRouter(prefix="/api/checkout", tags=["checkout"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        max_length=255,
        description="Makes retries safe: the same key with the same body returns the same saga.",
    ),
]
CART_LINES: Final = TypeAdapter(Annotated[list[CheckoutLine], Field(min_length=1, max_length=MAX_LINES)])
"""A cart's lines, held to the same bounds as a checkout's items."""


def _unprocessable(field: str, kind: str, message: str, value: object) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, so clients read every 422 the same way."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"type": kind, "loc": ["body", field], "msg": message, "input": value}],
    )


async def _order_from_cart(body: CheckoutRequest, cart_id: uuid.UUID, upstreams: Upstreams) -> Order:
    """The cart's lines and currency, checked against the request and the checkout's bounds."""
    response = await upstreams.call(CART, "GET", f"/carts/{cart_id}", headers={"accept": "application/json"})
    if response.status_code == status.HTTP_404_NOT_FOUND:
        raise _unprocessable("cart_id", "cart_not_found", f"cart {cart_id} not found", str(cart_id))
    if response.status_code != status.HTTP_200_OK:
        raise unusable_answer(CART, response)
    try:
        cart = CartView.model_validate_json(response.content)
    except ValidationError as error:
        raise UpstreamError(
            status.HTTP_502_BAD_GATEWAY, f"the cart service answered with an unreadable cart: {error}"
        ) from error
    if cart.customer_id != body.customer_id:
        raise _unprocessable(
            "cart_id", "cart_customer_mismatch", f"cart {cart_id} belongs to another customer", str(cart_id)
        )
    if body.currency is not None and body.currency != cart.currency:
        raise _unprocessable(
            "currency", "currency_mismatch", f"cart {cart_id} is in {cart.currency}, not {body.currency}", body.currency
        )
    if not cart.items:
        raise _unprocessable("cart_id", "cart_empty", f"cart {cart_id} is empty: add items first", str(cart_id))
    try:
        lines = CART_LINES.validate_python(cart.items)
    except ValidationError as error:
        raise _unprocessable(
            "cart_id", "cart_invalid", f"cart {cart_id} cannot be checked out: {error}", str(cart_id)
        ) from error
    return Order(
        customer_id=body.customer_id,
        items=[(line.sku, line.quantity) for line in lines],
        currency=cart.currency,
        payment_token=body.payment_token,
        cart_id=cart_id,
    )


async def _order(body: CheckoutRequest, upstreams: Upstreams) -> Order:
    if body.cart_id is not None:
        return await _order_from_cart(body, body.cart_id, upstreams)
    assert body.items is not None  # the model guarantees items and currency together
    assert body.currency is not None
    return Order(
        customer_id=body.customer_id,
        items=[(line.sku, line.quantity) for line in body.items],
        currency=body.currency,
        payment_token=body.payment_token,
    )


@router.post(
    "/initiate",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_400_BAD_REQUEST: {"description": "The body cannot be read as UTF-8 JSON"},
        status.HTTP_409_CONFLICT: {"description": "The Idempotency-Key was used with a different request"},
        status.HTTP_413_CONTENT_TOO_LARGE: {"description": "The request body is too large"},
        **UPSTREAM_RESPONSES,
    },
)
async def initiate(
    body: CheckoutRequest,
    session: SessionDep,
    runtime: RuntimeDep,
    upstreams: UpstreamsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> CheckoutAccepted:
    """Start a checkout saga; answer once it is durably accepted, before it runs.

    A retry with the same ``Idempotency-Key`` and body returns the first saga (header
    ``Idempotent-Replayed: true``); the key with another body is refused with 409.
    """
    request_fingerprint = fingerprint(body.normalised())
    try:
        acceptance = await replay(session, idempotency_key, request_fingerprint) if idempotency_key else None
        if acceptance is None:
            acceptance = await accept(
                session,
                await _order(body, upstreams),
                topic=runtime.topics.checkout_events,
                source=runtime.settings.service_name,
                idempotency_key=idempotency_key,
                request_fingerprint=request_fingerprint,
            )
    except KeyReusedError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(error)) from error
    status_url = f"{router.prefix}/{acceptance.saga_id}"
    response.headers["Location"] = status_url
    if acceptance.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return CheckoutAccepted(saga_id=acceptance.saga_id, status_url=status_url)


@router.get(
    "/{saga_id}",
    responses={status.HTTP_404_NOT_FOUND: {"description": "No such checkout"}, **UPSTREAM_RESPONSES},
)
async def checkout_status(saga_id: uuid.UUID, session: SessionDep, upstreams: UpstreamsDep) -> CheckoutStatus:
    """Where the checkout is: PENDING, COMPLETED or FAILED, with the saga's timeline."""
    response = await upstreams.call(ORCHESTRATOR, "GET", f"/sagas/{saga_id}", headers={"accept": "application/json"})
    if response.status_code == status.HTTP_200_OK:
        try:
            saga = OrchestratorSaga.model_validate_json(response.content)
        except ValidationError as error:
            raise UpstreamError(
                status.HTTP_502_BAD_GATEWAY, f"the orchestrator answered with an unreadable saga: {error}"
            ) from error
        if saga.saga_id != saga_id:
            raise UpstreamError(
                status.HTTP_502_BAD_GATEWAY, f"the orchestrator answered saga {saga.saga_id} when asked for {saga_id}"
            )
        return from_orchestrator(saga)
    if response.status_code != status.HTTP_404_NOT_FOUND:
        raise unusable_answer(ORCHESTRATOR, response)
    # Not (yet) known to the orchestrator: its CheckoutInitiated may still be on its way.
    async with session.begin():
        checkout = await checkouts.find(session, saga_id)
    if checkout is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"checkout {saga_id} not found")
    return accepted_not_started(checkout)
