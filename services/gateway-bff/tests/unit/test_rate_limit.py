"""The token buckets behind the gateway's per-client rate limit (a fake clock: no sleeping)."""

from __future__ import annotations

import pytest

from checkout_gateway.rate_limit import TokenBuckets, client_key


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_client_gets_its_burst_then_the_refill_rate(clock: Clock) -> None:
    buckets = TokenBuckets(rate_per_s=2, burst=3, max_clients=10, clock=clock)

    assert [buckets.take("a").allowed for _ in range(4)] == [True, True, True, False]
    refused = buckets.take("a")
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(0.5)  # one token at 2 a second
    clock.now += 0.5
    assert buckets.take("a").allowed
    assert not buckets.take("a").allowed


def test_clients_are_counted_apart(clock: Clock) -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=1, max_clients=10, clock=clock)

    assert buckets.take("10.0.0.1").allowed
    assert not buckets.take("10.0.0.1").allowed
    assert buckets.take("10.0.0.2").allowed


def test_a_cheap_request_takes_a_fraction_of_a_token(clock: Clock) -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=1, max_clients=10, clock=clock)

    assert all(buckets.take("a", 0.1).allowed for _ in range(10))
    assert not buckets.take("a", 0.1).allowed


def test_the_bucket_never_holds_more_than_the_burst(clock: Clock) -> None:
    buckets = TokenBuckets(rate_per_s=10, burst=2, max_clients=10, clock=clock)
    buckets.take("a")
    clock.now += 3_600  # a long idle hour refills to the burst, not to 36 000

    assert [buckets.take("a").allowed for _ in range(3)] == [True, True, False]


def test_idle_buckets_are_forgotten_and_the_number_of_buckets_is_bounded(clock: Clock) -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=2, max_clients=3, clock=clock)
    for client in ("a", "b", "c", "d", "e"):
        buckets.take(client)
    assert len(buckets) == 3  # the least recently used went first

    clock.now += buckets.refill_s  # every bucket is full again: indistinguishable from a fresh one
    buckets.take("f")
    assert len(buckets) == 1


def test_eviction_under_pressure_keeps_the_busy_client_limited(clock: Clock) -> None:
    buckets = TokenBuckets(rate_per_s=1, burst=1, max_clients=2, clock=clock)
    buckets.take("busy")
    buckets.take("other")
    assert not buckets.take("busy").allowed  # busy is now the most recently used
    buckets.take("third")  # evicts "other", the least recently used

    assert not buckets.take("busy").allowed


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBuckets(rate_per_s=0, burst=1, max_clients=1)


def test_the_client_is_the_peer_unless_a_trusted_header_is_configured() -> None:
    scope = {
        "type": "http",
        "client": ("192.0.2.7", 5_000),
        "headers": [(b"x-forwarded-for", b"203.0.113.9, 198.51.100.4")],
    }
    assert client_key(scope, None) == "192.0.2.7"  # the header is anyone's to write
    assert client_key(scope, "X-Forwarded-For") == "198.51.100.4"  # appended by the trusted proxy
    assert client_key({"type": "http", "client": ("192.0.2.7", 1), "headers": []}, "X-Forwarded-For") == "192.0.2.7"
    assert client_key({"type": "http", "client": None, "headers": []}, None) == "unknown"
