"""The pure parts of global activity limits (issue 13 item 4): rate parsing, limit
validation and the token bucket's arithmetic with an injected clock."""

from __future__ import annotations

import pytest

from orchestrator.engine.limits import Limits, bucket_take, parse_rate


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("10/s", 10.0), ("30/m", 0.5), ("36/h", 0.01), ("2.5/sec", 2.5), (" 6 / min ", 0.1)],
)
def test_parse_rate(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["10", "10/d", "/s", "0/s", "-1/s", "ten/s", ""])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate(text)


def test_limits_are_validated() -> None:
    assert not Limits()
    assert Limits(2) and Limits(rate_limit="1/h")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="max_concurrency"):
            Limits(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate limit"):
        Limits(rate_limit="fast")
    assert Limits.from_json(Limits(3, "10/s").to_json()) == Limits(3, "10/s")


def test_bucket_spaces_steps_at_the_rate() -> None:
    rate = 10.0
    state: tuple[float | None, float | None] = (None, None)
    waits = []
    for _ in range(5):  # five at once: one now, the others reserved 0.1 s apart
        tokens, ts, wait = bucket_take(*state, 100.0, rate, 1.0)
        state = (tokens, ts)
        waits.append(wait)
    assert waits == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    # 0.25 s later the reservations are 2.5 tokens less deep: the next waits 0.25 s.
    tokens, ts, wait = bucket_take(*state, 100.25, rate, 1.0)
    assert wait == pytest.approx(0.25)
    # Idle long enough, the bucket is full again (capacity 1): one goes at once.
    tokens, ts, wait = bucket_take(tokens, ts, 200.0, rate, 1.0)
    assert (tokens, wait) == (0.0, 0.0)
    _, _, wait = bucket_take(tokens, ts, 200.05, rate, 1.0)
    assert wait == pytest.approx(0.05)


def test_bucket_rate_over_a_long_run() -> None:
    """Steps arriving faster than the rate start at the rate: n starts span (n-1)/rate."""
    rate, now, starts = 4.0, 0.0, []
    state: tuple[float | None, float | None] = (None, None)
    for i in range(40):
        now = i * 0.01  # 100 a second
        tokens, ts, wait = bucket_take(*state, now, rate, 1.0)
        state = (tokens, ts)
        starts.append(now + wait)
    assert starts[-1] - starts[0] == pytest.approx(39 / rate)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) == pytest.approx(1 / rate) and max(gaps) == pytest.approx(1 / rate)


def test_bucket_capacity_allows_a_burst() -> None:
    state: tuple[float | None, float | None] = (None, None)
    waits = []
    for _ in range(4):
        tokens, ts, wait = bucket_take(*state, 0.0, 1.0, 3.0)
        state = (tokens, ts)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0, pytest.approx(1.0)]
