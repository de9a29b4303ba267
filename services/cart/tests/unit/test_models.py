"""The API's bounds: SKU and currency patterns, quantities 1..1000 (0 only to remove a line)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from checkout_cart.api.models import CartLine, LineQuantity, NewCart


@pytest.mark.parametrize("sku", ["SKU-001", "a", "sku_1.large", "X" * 64])
def test_valid_skus(sku: str) -> None:
    assert CartLine(sku=sku, quantity=1).sku == sku


@pytest.mark.parametrize("sku", ["", "-leading-dash", "has space", "emoji-🛒", "X" * 65, "a/b"])
def test_invalid_skus(sku: str) -> None:
    with pytest.raises(ValidationError):
        CartLine(sku=sku, quantity=1)


@pytest.mark.parametrize(("quantity", "valid"), [(-1, False), (0, True), (1, True), (1000, True), (1001, False)])
def test_line_quantity_bounds(quantity: int, valid: bool) -> None:
    if valid:
        assert LineQuantity(quantity=quantity).quantity == quantity
    else:
        with pytest.raises(ValidationError):
            LineQuantity(quantity=quantity)


@pytest.mark.parametrize("currency", ["eur", "EURO", "E1R", ""])
def test_currency_is_an_iso_code(currency: str) -> None:
    with pytest.raises(ValidationError):
        NewCart(customer_id="cust_1", currency=currency)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        NewCart.model_validate({"customer_id": "cust_1", "currency": "EUR", "coupon": "FREE"})
