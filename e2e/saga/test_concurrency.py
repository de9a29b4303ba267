"""Many checkouts at once for too little stock: the inventory never oversells, the losers pay nothing."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from saga_platform import STOCK, Client, SagaPlatform, checkout_body, net_charge, run_concurrently

pytestmark = pytest.mark.integration


@pytest.mark.usefixtures("default_deadlines")
def test_twenty_checkouts_for_the_last_five_units_sell_exactly_five(platform: SagaPlatform, client: Client) -> None:
    sku = "E2E-LAST5"
    units, price = STOCK[sku]
    assert units == 5
    bodies = [checkout_body({sku: 1}, customer=f"cust_last5_{i}") for i in range(20)]

    finals, elapsed = asyncio.run(run_concurrently(platform, bodies, timeout_s=120))
    outcomes = Counter(f["status"] for f in finals)
    platform.record(
        "20 concurrent for the last 5 units", f"{outcomes['COMPLETED']} COMPLETED, {outcomes['FAILED']} FAILED", elapsed
    )

    assert outcomes == {"COMPLETED": 5, "FAILED": 15}, [(f["status"], f["failure_code"]) for f in finals]
    assert {f["failure_code"] for f in finals if f["status"] == "FAILED"} == {"FAILURE_CODE_OUT_OF_STOCK"}
    stock = client.stock(sku)
    assert (stock["available"], stock["reserved"]) == (0, 5), stock
    for final in finals:
        saga_id = str(final["saga_id"])
        if final["status"] == "COMPLETED":
            assert len(client.orders(saga_id)) == 1
            assert net_charge(client.payments(saga_id)) == price
        else:
            assert client.payments(saga_id) == [], "a checkout that got no stock is never charged"
            assert client.orders(saga_id) == []
