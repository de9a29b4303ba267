"""The saga's topic names, derived from one prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    """``<prefix>.<name>`` for every topic of the platform."""

    prefix: str

    @property
    def checkout_events(self) -> str:
        """Events: CheckoutInitiated and every participant's reply."""
        return f"{self.prefix}.checkout-events"

    @property
    def inventory_command(self) -> str:
        """Commands for the inventory service."""
        return f"{self.prefix}.inventory-command"

    @property
    def payment_command(self) -> str:
        """Commands for the payment service."""
        return f"{self.prefix}.payment-command"

    @property
    def order_command(self) -> str:
        """Commands for the order service."""
        return f"{self.prefix}.order-command"

    @property
    def dlq(self) -> str:
        """Dead letters: messages no consumer could process, with the reason in headers."""
        return f"{self.prefix}.dlq"

    def all(self) -> tuple[str, ...]:
        """Every topic, in a stable order."""
        return (self.checkout_events, self.inventory_command, self.payment_command, self.order_command, self.dlq)
