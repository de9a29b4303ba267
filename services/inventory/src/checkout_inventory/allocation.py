"""Deciding a reservation: given the requested lines and the locked stock, hold all or nothing.

Pure: the caller has locked the stock rows (so the snapshot cannot change under it) and
applies the decision. Refusals are checked in an order that tells the customer the most
useful thing first: a SKU that does not exist, then a basket priced in several currencies
(no single total could be charged), then SKUs without enough units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from checkout.v1 import types_pb2
from checkout_inventory.commands import Line


@dataclass(frozen=True)
class StockLevel:
    """What the inventory has of one SKU, as locked by the reserving transaction."""

    sku: str
    available: int
    unit_price_minor: int
    currency: str


@dataclass(frozen=True)
class PricedLine:
    """A reserved line at the price it had when reserved."""

    sku: str
    quantity: int
    unit_price_minor: int
    currency: str


@dataclass(frozen=True)
class Allocation:
    """Every line can be held: these units leave ``available`` for ``reserved``."""

    lines: tuple[PricedLine, ...]
    total_minor: int
    currency: str


@dataclass(frozen=True)
class Refusal:
    """Nothing can be held, and why."""

    reason: types_pb2.FailureCode.ValueType
    message: str
    skus: tuple[str, ...]
    """The SKUs that caused the refusal."""


def allocate(lines: Sequence[Line], stock: Mapping[str, StockLevel]) -> Allocation | Refusal:
    """Hold every line or none; ``stock`` holds the rows found for the lines' SKUs."""
    unknown = tuple(line.sku for line in lines if line.sku not in stock)
    if unknown:
        return Refusal(types_pb2.FAILURE_CODE_UNKNOWN_SKU, f"unknown SKU: {', '.join(unknown)}", unknown)
    currencies = {stock[line.sku].currency for line in lines}
    if len(currencies) > 1:
        priced = ", ".join(f"{line.sku} in {stock[line.sku].currency}" for line in lines)
        return Refusal(
            types_pb2.FAILURE_CODE_INVALID_REQUEST,
            f"the lines are priced in different currencies ({priced}); one checkout pays in one currency",
            tuple(line.sku for line in lines),
        )
    short = tuple(line.sku for line in lines if stock[line.sku].available < line.quantity)
    if short:
        detail = ", ".join(
            f"{sku} ({stock[sku].available} available, {quantity} requested)"
            for sku, quantity in ((line.sku, line.quantity) for line in lines)
            if sku in short
        )
        return Refusal(types_pb2.FAILURE_CODE_OUT_OF_STOCK, f"out of stock: {detail}", short)
    priced_lines = tuple(
        PricedLine(line.sku, line.quantity, stock[line.sku].unit_price_minor, stock[line.sku].currency)
        for line in lines
    )
    (currency,) = currencies
    total = sum(line.quantity * line.unit_price_minor for line in priced_lines)
    return Allocation(priced_lines, total, currency)
