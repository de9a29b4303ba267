"""The simulated provider's test tokens."""

from __future__ import annotations

import pytest

from checkout_payment.provider import ChargeRequest, Outcome, SimulatedProvider


def verdict(token: str) -> tuple[Outcome, str]:
    answer = SimulatedProvider().charge(ChargeRequest(token, 1_000, "EUR"))
    return answer.outcome, answer.message


def test_tok_visa_is_approved() -> None:
    assert verdict("tok_visa") == (Outcome.APPROVED, "")


def test_tok_timeout_gets_no_answer() -> None:
    assert verdict("tok_timeout") == (Outcome.NO_ANSWER, "")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("tok_chargeDeclined", "Your card was declined."),
        ("tok_chargeDeclinedInsufficientFunds", "Your card has insufficient funds."),
        ("tok_chargeDeclinedExpiredCard", "Your card has expired."),
        ("tok_chargeDeclinedIncorrectCvc", "Your card's security code is incorrect."),
    ],
)
def test_decline_tokens_are_declined_in_the_provider_s_words(token: str, message: str) -> None:
    assert verdict(token) == (Outcome.DECLINED, message)


@pytest.mark.parametrize("token", ["tok_mastercard", "TOK_VISA", "tok_visa ", "4242424242424242", ""])
def test_every_other_token_is_declined_with_a_reason(token: str) -> None:
    outcome, message = verdict(token)
    assert outcome is Outcome.DECLINED
    assert message


def test_a_long_unknown_token_is_not_echoed_in_full() -> None:
    _, message = verdict("tok_" + "x" * 500)
    assert len(message) < 200
