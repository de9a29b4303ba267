"""The all-or-nothing reservation decision over a locked stock snapshot."""

from __future__ import annotations

from checkout.v1 import types_pb2
from checkout_inventory.allocation import Allocation, PricedLine, Refusal, StockLevel, allocate
from checkout_inventory.commands import Line

STOCK = {
    "SKU-A": StockLevel("SKU-A", available=10, unit_price_minor=250, currency="EUR"),
    "SKU-B": StockLevel("SKU-B", available=1, unit_price_minor=1_000, currency="EUR"),
    "SKU-Y": StockLevel("SKU-Y", available=5, unit_price_minor=100, currency="JPY"),
}


def test_enough_of_everything_prices_every_line_and_totals_them() -> None:
    decision = allocate([Line("SKU-A", 3), Line("SKU-B", 1)], STOCK)
    assert decision == Allocation(
        lines=(PricedLine("SKU-A", 3, 250, "EUR"), PricedLine("SKU-B", 1, 1_000, "EUR")),
        total_minor=1_750,
        currency="EUR",
    )


def test_exactly_the_available_units_can_be_held() -> None:
    assert isinstance(allocate([Line("SKU-A", 10)], STOCK), Allocation)


def test_one_short_line_refuses_them_all_naming_only_the_short_skus() -> None:
    decision = allocate([Line("SKU-A", 3), Line("SKU-B", 2)], STOCK)
    assert isinstance(decision, Refusal)
    assert decision.reason == types_pb2.FAILURE_CODE_OUT_OF_STOCK
    assert decision.skus == ("SKU-B",)
    assert "SKU-B (1 available, 2 requested)" in decision.message


def test_an_unknown_sku_is_reported_before_shortages() -> None:
    decision = allocate([Line("SKU-B", 5), Line("SKU-Z", 1)], STOCK)
    assert decision == Refusal(types_pb2.FAILURE_CODE_UNKNOWN_SKU, "unknown SKU: SKU-Z", ("SKU-Z",))


def test_lines_priced_in_different_currencies_are_refused() -> None:
    decision = allocate([Line("SKU-A", 1), Line("SKU-Y", 1)], STOCK)
    assert isinstance(decision, Refusal)
    assert decision.reason == types_pb2.FAILURE_CODE_INVALID_REQUEST
    assert decision.skus == ("SKU-A", "SKU-Y")
    assert "SKU-Y in JPY" in decision.message


def test_a_free_item_totals_zero() -> None:
    free = {"SKU-F": StockLevel("SKU-F", available=1, unit_price_minor=0, currency="EUR")}
    assert allocate([Line("SKU-F", 1)], free) == Allocation((PricedLine("SKU-F", 1, 0, "EUR"),), 0, "EUR")
