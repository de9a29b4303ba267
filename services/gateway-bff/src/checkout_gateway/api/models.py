"""Request and response bodies of the public API, with the bounds it promises.

The bounds are the saga's: a SKU as the inventory knows it, 1..1000 units a line, at most 100
lines, an ISO 4217 currency, a Stripe-style payment token. A request outside them is refused
with 422 and the offending field's location before anything is stored or published.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

SKU_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A SKU: letters, digits, ``.``, ``_``, ``-``; at most 64 characters (as the cart and inventory)."""
CUSTOMER_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""A customer id: at most 64 characters, no spaces or slashes."""
PAYMENT_TOKEN_PATTERN: Final = r"^tok_[A-Za-z0-9_]{1,96}$"  # noqa: S105 - a pattern, not a secret
"""A payment provider's token for a payment method (Stripe-style: ``tok_visa``)."""
IDEMPOTENCY_KEY_PATTERN: Final = r"^[\x21-\x7e]{1,255}$"
"""Printable ASCII without spaces, 1 to 255 characters (a UUID is the usual choice)."""
MAX_LINES: Final = 100
"""Lines one checkout may have."""
MAX_QUANTITY: Final = 1_000
"""Units of one SKU a line may ask for."""

Sku = Annotated[str, Field(pattern=SKU_PATTERN, examples=["SKU-001"])]
CustomerId = Annotated[str, Field(pattern=CUSTOMER_ID_PATTERN, examples=["cust_42"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])]
PaymentToken = Annotated[str, Field(pattern=PAYMENT_TOKEN_PATTERN, examples=["tok_visa"])]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
"""strict: a JSON integer only (lax mode would take ``true`` as 1 and ``"5"`` as 5)."""


class CheckoutLine(BaseModel):
    """One SKU of a checkout and how many units of it."""

    model_config = ConfigDict(extra="forbid")

    sku: Sku
    quantity: Quantity


class CheckoutRequest(BaseModel):
    """``POST /api/checkout/initiate``: either ``items`` and ``currency``, or a ``cart_id``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "customer_id": "cust_42",
                    "items": [{"sku": "SKU-001", "quantity": 2}],
                    "currency": "EUR",
                    "payment_token": "tok_visa",
                },
                {
                    "customer_id": "cust_42",
                    "cart_id": "3f0c9a62-8d1e-4c55-9a41-2d4b1c1e9f10",
                    "payment_token": "tok_visa",
                },
            ]
        },
    )

    customer_id: CustomerId
    payment_token: PaymentToken
    items: Annotated[list[CheckoutLine], Field(min_length=1, max_length=MAX_LINES)] | None = None
    """What to buy; each SKU once. Leave out when checking out a cart."""
    currency: Currency | None = None
    """Required with ``items``; with a cart it may be given and must then be the cart's."""
    cart_id: uuid.UUID | None = None
    """Check out this cart (its lines and currency) instead of ``items``."""

    @field_validator("items")
    @classmethod
    def _each_sku_once(cls, items: list[CheckoutLine] | None) -> list[CheckoutLine] | None:
        if items is not None:
            counts = Counter(line.sku for line in items)
            repeated = sorted(sku for sku, count in counts.items() if count > 1)
            if repeated:
                raise ValueError(f"each SKU may appear once; repeated: {', '.join(repeated)}")
        return items

    @model_validator(mode="after")
    def _items_or_cart(self) -> CheckoutRequest:
        if self.items is None and self.cart_id is None:
            raise ValueError("give either items (with currency) or cart_id")
        if self.items is not None and self.cart_id is not None:
            raise ValueError("give either items or cart_id, not both")
        if self.items is not None and self.currency is None:
            raise ValueError("currency is required with items")
        return self

    def normalised(self) -> dict[str, Any]:
        """The request with lines ordered by SKU: two requests meaning the same compare equal."""
        body = self.model_dump(mode="json")
        if body["items"] is not None:
            body["items"] = sorted(body["items"], key=lambda line: line["sku"])
        return body


class NewCartBody(BaseModel):
    """``POST /api/carts``: the cart service's own request body, documented here.

    The gateway passes cart bodies through unread and the cart service validates them; this model
    only puts that contract in the gateway's OpenAPI document, so clients (and fuzzers) see it.
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    currency: Currency


class CartLineBody(BaseModel):
    """``PUT /api/carts/{cart_id}/items/{sku}``: the line's new quantity; 0 removes the line (documented only)."""

    model_config = ConfigDict(extra="forbid")

    quantity: Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a required JSON request body of ``model``'s schema."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


class CheckoutAccepted(BaseModel):
    """``202``: the saga is started; poll ``status_url`` for its outcome."""

    saga_id: uuid.UUID
    status_url: str = Field(examples=["/api/checkout/3f0c9a62-8d1e-4c55-9a41-2d4b1c1e9f10"])


def _text(value: Any) -> Any:
    """Step details are text; a structured one from the orchestrator is shown as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


class SagaStep(BaseModel):
    """One entry of a saga's timeline."""

    at: dt.datetime
    """When it happened."""
    state: str
    """The saga's state after it."""
    event: str | None = None
    """What happened (the message received or the deadline that fired)."""
    detail: Annotated[str | None, BeforeValidator(_text)] = None
    """Human-readable detail."""


CheckoutStatusValue = Literal["PENDING", "COMPLETED", "FAILED"]


class CheckoutStatus(BaseModel):
    """``GET /api/checkout/{saga_id}``: where the checkout is."""

    saga_id: uuid.UUID
    status: CheckoutStatusValue
    """PENDING until the saga is terminal; then COMPLETED (order created) or FAILED (compensated)."""
    state: str
    """The orchestrator's saga state (STARTED, INVENTORY_RESERVATION_PENDING, …, COMPENSATING, …)."""
    steps: list[SagaStep]
    """The timeline, oldest first."""
    order_id: str | None = None
    """Set once COMPLETED."""
    failure_code: str | None = None
    """Why it failed (a ``FailureCode`` name), once FAILED."""
    failure_reason: str | None = None
    """Human-readable reason, once FAILED."""
    trace_id: str | None = None
    """W3C trace id of the checkout (one trace across every hop), when traced."""


class OrchestratorSaga(BaseModel):
    """What the orchestrator's ``GET /sagas/{id}`` returns, as far as the gateway reads it."""

    model_config = ConfigDict(extra="ignore")

    saga_id: uuid.UUID
    state: str
    steps: list[SagaStep] = Field(default_factory=list)
    order_id: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    trace_id: str | None = None


class CartView(BaseModel):
    """What the cart service's ``GET /carts/{id}`` returns, as far as a checkout needs it.

    Lines are read without the checkout's bounds: a cart the checkout cannot take (too many
    lines) is refused with a message saying so, not with a parse error.
    """

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    customer_id: str
    currency: str
    items: list[dict[str, Any]]
