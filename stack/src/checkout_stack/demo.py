"""`make demo`'s checkout: stock two SKUs, run one real checkout through the BFF, print its saga.

HTTP only — the stack imports no service package: the inventory's admin API stocks the SKUs, the
gateway's public API starts the checkout and reports it, the order and payment services' read
APIs show what it left behind. The services keep running afterwards for the user to explore.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import httpx

from checkout_stack.console import info, step

if TYPE_CHECKING:
    from checkout_stack.stack import Stack


@dataclass(frozen=True)
class DemoSku:
    """A SKU the demo stocks and buys."""

    sku: str
    units: int
    """Available units it is stocked up to when fewer are left than the demo buys."""
    unit_price_minor: int
    quantity: int
    """How many the demo checkout buys."""


CURRENCY: Final = "EUR"
CUSTOMER: Final = "cust_demo"
PAYMENT_TOKEN: Final = "tok_visa"  # noqa: S105 - the simulated provider's test token, not a secret
DEMO_SKUS: Final = (
    DemoSku("DEMO-MUG", units=100, unit_price_minor=1_250, quantity=2),
    DemoSku("DEMO-TEE", units=100, unit_price_minor=2_400, quantity=1),
)
TERMINAL: Final = ("COMPLETED", "FAILED")
WAIT_S: Final = 120.0
"""Upper bound of the wait for the saga to end (its own deadlines end it well before)."""
POLL_S: Final = 0.1


class DemoError(RuntimeError):
    """The demo could not run; the message says what failed and what to do."""


def _money(amount_minor: int, currency: str) -> str:
    return f"{amount_minor / 100:.2f} {currency}"


def _call(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return http.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise DemoError(
            f"{method} {url} failed: {error!r}; are the services running? `make services` starts them, "
            "`checkout-stack services status` shows them"
        ) from error


def _expect(response: httpx.Response, *codes: int) -> Any:
    if response.status_code not in codes:
        raise DemoError(
            f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text[:500]}"
        )
    return response.json()


def stock_skus(http: httpx.Client, inventory_url: str) -> None:
    """Make sure each demo SKU exists with enough units (tops it up with ``PUT /inventory/{sku}``)."""
    for item in DEMO_SKUS:
        url = f"{inventory_url}/inventory/{item.sku}"
        current = _call(http, "GET", url)
        if current.status_code == 200:
            stock = current.json()
            if stock["available"] >= item.quantity:
                info(
                    f"{item.sku}: {stock['available']} available, {stock['reserved']} held, "
                    f"{_money(stock['unit_price_minor'], stock['currency'])} each (already stocked)"
                )
                continue
        elif current.status_code != 404:
            _expect(current, 200)
        body = {"available": item.units, "unit_price_minor": item.unit_price_minor, "currency": CURRENCY}
        stock = _expect(_call(http, "PUT", url, json=body), 200)
        info(f"{item.sku}: stocked {stock['available']} units at {_money(stock['unit_price_minor'], CURRENCY)} each")


def start_checkout(http: httpx.Client, bff_url: str) -> str:
    """``POST /api/checkout/initiate`` (with an Idempotency-Key); return the saga id."""
    body = {
        "customer_id": CUSTOMER,
        "items": [{"sku": item.sku, "quantity": item.quantity} for item in DEMO_SKUS],
        "currency": CURRENCY,
        "payment_token": PAYMENT_TOKEN,
    }
    key = str(uuid.uuid4())
    accepted = _expect(
        _call(http, "POST", f"{bff_url}/api/checkout/initiate", json=body, headers={"Idempotency-Key": key}), 202
    )
    lines = ", ".join(f"{item.quantity} x {item.sku}" for item in DEMO_SKUS)
    info(f"POST {bff_url}/api/checkout/initiate ({lines}, {PAYMENT_TOKEN}) → 202, saga {accepted['saga_id']}")
    saga_id: str = accepted["saga_id"]
    return saga_id


def follow(http: httpx.Client, bff_url: str, saga_id: str, timeout_s: float = WAIT_S) -> dict[str, Any]:
    """Poll ``GET /api/checkout/{saga_id}`` until the saga is COMPLETED or FAILED."""
    deadline = time.monotonic() + timeout_s
    url = f"{bff_url}/api/checkout/{saga_id}"
    while True:
        status: dict[str, Any] = _expect(_call(http, "GET", url), 200)
        if status["status"] in TERMINAL:
            return status
        if time.monotonic() > deadline:
            raise DemoError(
                f"saga {saga_id} still {status['state']} after {timeout_s:.0f}s; "
                "see .run/logs/checkout-orchestrator.log"
            )
        time.sleep(POLL_S)


def timeline_lines(steps: list[Mapping[str, Any]]) -> list[str]:
    """One line per timeline entry: wall-clock time, offset from the first entry, state, event, detail."""
    if not steps:
        return ["(no timeline entries)"]
    times = [dt.datetime.fromisoformat(str(s["at"]).replace("Z", "+00:00")) for s in steps]
    width = max(len(str(s["state"])) for s in steps)
    lines = []
    for at, entry in zip(times, steps, strict=True):
        offset = (at - times[0]).total_seconds()
        detail = f"  ({entry['detail']})" if entry.get("detail") else ""
        lines.append(
            f"{at.strftime('%H:%M:%S.%f')[:-3]}  +{offset:6.3f}s  {entry['state']:<{width}}  "
            f"{entry.get('event') or ''}{detail}"
        )
    return lines


def show_effects(http: httpx.Client, env: Mapping[str, str], saga_id: str) -> None:
    """What the order and payment services hold for the saga."""
    for order in _expect(_call(http, "GET", f"{env['ORDER_URL']}/orders", params={"saga_id": saga_id}), 200):
        lines = ", ".join(f"{line['quantity']} x {line['sku']}" for line in order["lines"])
        total = order["total"]
        info(f"order {order['id']}: {lines}, total {_money(total['amount_minor'], total['currency'])}")
    for payment in _expect(_call(http, "GET", f"{env['PAYMENT_URL']}/payments", params={"saga_id": saga_id}), 200):
        info(
            f"payment {payment['id']}: {payment['status']}, net "
            f"{_money(payment['net_amount_minor'], payment['currency'] or CURRENCY)}"
        )


def run_demo_checkout(stack: Stack, http: httpx.Client | None = None) -> None:
    """Stock, check out, follow, print; raise SystemExit if the services are not up or the checkout fails."""
    if http is None and not stack.services.healthy():
        raise SystemExit(
            "demo checkout: the services are not all running and ready; start them with `make services` "
            "(`checkout-stack services status` shows which one is not)"
        )
    env = stack.env()
    client = http or httpx.Client(timeout=10)
    try:
        with step("stock the demo SKUs through the inventory API"):
            stock_skus(client, env["INVENTORY_URL"])
        with step(f"checkout through the BFF at {env['BFF_URL']}"):
            saga_id = start_checkout(client, env["BFF_URL"])
            began = time.monotonic()
            final = follow(client, env["BFF_URL"], saga_id)
            info(f"{final['status']} in {time.monotonic() - began:.2f}s (as seen by the client)")
        with step(f"saga {saga_id}"):
            for line in timeline_lines(final["steps"]):
                info(line)
            if final["status"] != "COMPLETED":
                raise DemoError(
                    f"the demo checkout FAILED: {final.get('failure_code')}: {final.get('failure_reason')}; "
                    f"logs in {stack.settings.logs_dir}"
                )
            info(f"order id: {final['order_id']}")
            show_effects(client, env, saga_id)
    except DemoError as error:
        raise SystemExit(f"demo checkout: {error}") from error
    finally:
        if http is None:
            client.close()
    info(f'the services keep running: `eval "$(make -s env)"; curl $BFF_URL/api/checkout/{saga_id}`')
    info("`make down` stops them and the stack")
