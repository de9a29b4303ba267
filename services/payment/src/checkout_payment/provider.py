"""The simulated payment provider: Stripe-style test tokens decide the outcome.

| token | outcome |
|---|---|
| ``tok_visa`` | approved |
| ``tok_chargeDeclined`` | declined: "Your card was declined." |
| ``tok_chargeDeclinedInsufficientFunds`` | declined: insufficient funds |
| ``tok_chargeDeclinedExpiredCard`` | declined: expired card |
| ``tok_chargeDeclinedIncorrectCvc`` | declined: incorrect CVC |
| ``tok_timeout`` | no answer: the provider hangs |
| anything else | declined: unknown token |

"No answer" is what a real provider does when its request times out or its connection drops
after the request left: the charge may or may not have happened. The service records the
attempt as PENDING and replies nothing; the orchestrator's deadline then retries and finally
compensates (RefundPayment voids the pending charge). Deciding is pure and immediate: the
simulation never sleeps, so a hung charge never holds a partition or a transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Protocol


class Outcome(enum.Enum):
    """What the provider said."""

    APPROVED = "approved"
    DECLINED = "declined"
    NO_ANSWER = "no-answer"


@dataclass(frozen=True)
class ChargeRequest:
    """One charge as sent to the provider."""

    token: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class ProviderAnswer:
    """The provider's verdict on a charge, with its message for a decline."""

    outcome: Outcome
    message: str = ""


class PaymentProvider(Protocol):
    """What the payment service needs of a provider (the simulation, or a real one later)."""

    def charge(self, request: ChargeRequest) -> ProviderAnswer:
        """Try to charge; say whether it was approved, declined, or not answered."""


APPROVING_TOKENS: Final = frozenset({"tok_visa"})
HANGING_TOKENS: Final = frozenset({"tok_timeout"})
DECLINES: Final = {
    "tok_chargeDeclined": "Your card was declined.",
    "tok_chargeDeclinedInsufficientFunds": "Your card has insufficient funds.",
    "tok_chargeDeclinedExpiredCard": "Your card has expired.",
    "tok_chargeDeclinedIncorrectCvc": "Your card's security code is incorrect.",
}
"""Test tokens declined with Stripe's wording."""


class SimulatedProvider:
    """Decides by the test token; no money moves anywhere."""

    def charge(self, request: ChargeRequest) -> ProviderAnswer:
        """Approve ``tok_visa``, hang on ``tok_timeout``, decline the rest."""
        if request.token in APPROVING_TOKENS:
            return ProviderAnswer(Outcome.APPROVED)
        if request.token in HANGING_TOKENS:
            return ProviderAnswer(Outcome.NO_ANSWER)
        if request.token in DECLINES:
            return ProviderAnswer(Outcome.DECLINED, DECLINES[request.token])
        if not request.token:
            return ProviderAnswer(Outcome.DECLINED, "No payment token was given.")
        return ProviderAnswer(
            Outcome.DECLINED,
            f"Unknown payment token {request.token[:40]!r}: the simulated provider approves only tok_visa.",
        )
