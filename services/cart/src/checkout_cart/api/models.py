"""Request and response bodies, with the bounds the API promises."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from checkout_cart.storage.tables import MAX_QUANTITY

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A SKU as the inventory knows it: letters, digits, ``.``, ``_``, ``-``; at most 64 characters."""

Sku = Annotated[str, Field(pattern=SKU_PATTERN, examples=["SKU-001"])]
CustomerId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$", examples=["cust_42"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code", examples=["EUR"])]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]


class NewCart(BaseModel):
    """``POST /carts``."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    currency: Currency


class LineQuantity(BaseModel):
    """``PUT /carts/{cart_id}/items/{sku}``: the line's new quantity; 0 removes the line."""

    model_config = ConfigDict(extra="forbid")

    quantity: Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
    """strict: a JSON integer only (lax mode would take ``true`` as 1 and ``"5"`` as 5)."""


class CartLine(BaseModel):
    """One SKU in a cart."""

    sku: Sku
    quantity: Quantity


class Cart(BaseModel):
    """A cart with its lines, ordered by SKU."""

    id: uuid.UUID
    customer_id: CustomerId
    currency: Currency
    items: list[CartLine]
    created_at: dt.datetime
    updated_at: dt.datetime
