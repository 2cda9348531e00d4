"""Tests for orchestrator.language.retry (pure Retry/Catch logic)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.language.retry import (
    MAX_DELAY_SECONDS,
    RetryDecision,
    compute_backoff,
    error_matches,
    find_catcher,
    find_retrier,
    next_retry,
)


@dataclass
class Retrier:
    error_equals: list[str]
    interval_seconds: float | None = 1
    max_attempts: int | None = 3
    backoff_rate: float | None = 2.0
    max_delay_seconds: float | None = None
    jitter_strategy: Any = None


@dataclass
class Catcher:
    error_equals: list[str]
    next: str = "Handler"
    extra: dict[str, Any] = field(default_factory=dict)


# --- error matching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_equals", "error", "expected"),
    [
        (["MyError"], "MyError", True),
        (["MyError"], "myerror", False),  # case-sensitive
        (["Other", "MyError"], "MyError", True),
        ([], "MyError", False),
        (["States.ALL"], "MyError", True),
        (["States.ALL"], "States.Timeout", True),
        (["States.ALL"], "States.TaskFailed", True),
        (["States.ALL"], "States.Runtime", False),
        (["States.ALL"], "States.DataLimitExceeded", False),
        (["States.DataLimitExceeded"], "States.DataLimitExceeded", True),
        (["States.Runtime"], "States.Runtime", False),  # AWS: catch_states_runtime case
        (["States.TaskFailed"], "MyError", True),
        (["States.TaskFailed"], "States.Permissions", True),
        (["States.TaskFailed"], "States.Timeout", False),
        (["States.TaskFailed"], "States.HeartbeatTimeout", False),
        (["States.TaskFailed"], "States.Runtime", False),
        (["States.TaskFailed"], "States.DataLimitExceeded", False),
        (["States.Timeout"], "States.Timeout", True),
        (["States.Timeout"], "States.HeartbeatTimeout", True),
        (["States.Timeout"], "MyError", False),
        (["States.HeartbeatTimeout"], "States.Timeout", False),
        (["States.Timeout", "States.TaskFailed"], "States.Timeout", True),
    ],
)
def test_error_matches(error_equals: list[str], error: str, expected: bool) -> None:
    assert error_matches(error_equals, error) is expected


def test_find_retrier_and_catcher_first_match_wins() -> None:
    rules = [Retrier(["A"]), Retrier(["States.ALL"]), Retrier(["B"])]
    assert find_retrier(rules, "A") == 0
    assert find_retrier(rules, "B") == 1
    assert find_retrier(rules, "States.Runtime") is None
    assert find_retrier([], "A") is None
    catchers = [Catcher(["States.Timeout"]), Catcher(["States.TaskFailed"])]
    assert find_catcher(catchers, "States.Timeout") == 0
    assert find_catcher(catchers, "Boom") == 1
    assert find_catcher(catchers, "States.DataLimitExceeded") is None


# --- backoff -------------------------------------------------------------------------------


def test_compute_backoff_exponential() -> None:
    assert [compute_backoff(3, 2, n) for n in (1, 2, 3, 4)] == [3, 6, 12, 24]
    assert compute_backoff(1, 1.5, 3) == pytest.approx(2.25)
    assert compute_backoff(0, 2, 10) == 0


def test_compute_backoff_caps_and_jitter() -> None:
    # retry_interval_features: IntervalSeconds 3, BackoffRate 2, MaxDelaySeconds 5.
    assert compute_backoff(3, 2, 1, max_delay_seconds=5) == 3
    assert compute_backoff(3, 2, 2, max_delay_seconds=5) == 5
    assert compute_backoff(3, 2, 2, max_delay_seconds=5, jitter="FULL", rand=lambda: 0.5) == 2.5
    assert compute_backoff(3, 2, 1, jitter="FULL", rand=lambda: 0.0) == 0
    assert compute_backoff(3, 2, 1, jitter="NONE", rand=lambda: 0.0) == 3
    assert compute_backoff(3, 2, 1, jitter=None) == 3


def test_compute_backoff_accepts_enum_jitter() -> None:
    class Jitter(enum.StrEnum):
        FULL = "FULL"
        NONE = "NONE"

    assert compute_backoff(4, 1, 1, jitter=Jitter.FULL, rand=lambda: 0.25) == 1


@pytest.mark.parametrize("attempt", [1_000, 10**6, 10**18])
def test_compute_backoff_is_overflow_safe(attempt: int) -> None:
    delay = compute_backoff(99999999, 2.0, attempt)
    assert delay == MAX_DELAY_SECONDS
    assert math.isfinite(delay)
    assert compute_backoff(1, 2, attempt, max_delay_seconds=60) == 60


def test_compute_backoff_attempt_below_one_is_first_interval() -> None:
    assert compute_backoff(2, 3, 0) == 2


@given(
    interval=st.integers(min_value=0, max_value=99_999_999),
    rate=st.floats(min_value=1.0, max_value=100.0),
    attempt=st.integers(min_value=1, max_value=10_000),
    cap=st.none() | st.integers(min_value=0, max_value=31_622_400),
)
def test_backoff_monotone_and_capped(
    interval: int, rate: float, attempt: int, cap: int | None
) -> None:
    first = compute_backoff(interval, rate, attempt, max_delay_seconds=cap)
    second = compute_backoff(interval, rate, attempt + 1, max_delay_seconds=cap)
    assert 0 <= first <= second
    assert math.isfinite(second)
    if cap is not None:
        assert second <= cap


@given(
    interval=st.integers(min_value=0, max_value=1000),
    attempt=st.integers(min_value=1, max_value=50),
    cap=st.integers(min_value=0, max_value=1000),
    r=st.floats(min_value=0.0, max_value=0.9999999),
)
def test_full_jitter_stays_below_delay(interval: int, attempt: int, cap: int, r: float) -> None:
    plain = compute_backoff(interval, 2.0, attempt, max_delay_seconds=cap)
    jittered = compute_backoff(
        interval, 2.0, attempt, max_delay_seconds=cap, jitter="FULL", rand=lambda: r
    )
    assert 0 <= jittered <= plain <= cap


# --- next_retry ----------------------------------------------------------------------------


def test_next_retry_counts_attempts_per_retrier() -> None:
    retriers = [Retrier(["A"], interval_seconds=1, max_attempts=2), Retrier(["States.ALL"])]
    assert next_retry(retriers, "A", {}) == (0, 1.0)
    assert next_retry(retriers, "A", {0: 1}) == (0, 2.0)
    assert next_retry(retriers, "A", {0: 2}) is None  # exhausted: later retriers not used
    assert next_retry(retriers, "B", {0: 2}) == (1, 1.0)
    assert next_retry(retriers, "B", {1: 3}) is None


def test_next_retry_result_is_named_tuple() -> None:
    decision = next_retry([Retrier(["A"], interval_seconds=5)], "A", {})
    assert isinstance(decision, RetryDecision)
    assert decision.retrier_index == 0
    assert decision.delay_seconds == 5
    index, delay = decision
    assert (index, delay) == (0, 5)


def test_next_retry_max_attempts_zero_never_retries() -> None:
    # retry_interval_features_max_attempts_zero: the execution fails on the first error.
    assert next_retry([Retrier(["States.ALL"], max_attempts=0)], "Exception", {}) is None


def test_next_retry_no_match_and_runtime() -> None:
    assert next_retry([Retrier(["A"])], "B", {}) is None
    assert next_retry([Retrier(["States.ALL"])], "States.Runtime", {}) is None


def test_next_retry_defaults_for_unset_fields() -> None:
    retrier = Retrier(["A"], interval_seconds=None, max_attempts=None, backoff_rate=None)
    assert next_retry([retrier], "A", {}) == (0, 1.0)
    assert next_retry([retrier], "A", {0: 2}) == (0, 4.0)
    assert next_retry([retrier], "A", {0: 3}) is None


def test_next_retry_uses_jitter_and_cap() -> None:
    retrier = Retrier(
        ["States.ALL"],
        interval_seconds=3,
        max_attempts=2,
        backoff_rate=2,
        max_delay_seconds=5,
        jitter_strategy="FULL",
    )
    assert next_retry([retrier], "Exception", {0: 1}, rand=lambda: 0.5) == (0, 2.5)


def test_next_retry_accepts_duck_typed_objects() -> None:
    class Plain:
        error_equals = ("X",)
        interval_seconds = 2
        max_attempts = 1
        backoff_rate = 1.0

    assert next_retry([Plain()], "X", {}) == (0, 2.0)
    assert next_retry([Plain()], "X", {0: 1}) is None
