"""Pure Retry/Catch logic: error matching, retrier/catcher selection and backoff delays.

Retriers and catchers are duck-typed: anything with an ``error_equals`` attribute works
(retriers also need ``interval_seconds``, ``max_attempts``, ``backoff_rate`` and optionally
``max_delay_seconds`` and ``jitter_strategy``), so this module does not depend on the
definition model.

Matching rules (AWS "Error handling in Step Functions"):

* names match exactly and case-sensitively;
* ``States.ALL`` matches every error except the terminal ``States.Runtime`` and
  ``States.DataLimitExceeded``;
* ``States.TaskFailed`` matches every error except timeouts (``States.Timeout``,
  ``States.HeartbeatTimeout``) and the terminal errors;
* ``States.Timeout`` also covers ``States.HeartbeatTimeout`` (AWS reports a missed
  heartbeat as a kind of task timeout);
* ``States.Runtime`` is never retried nor caught, even when named explicitly (AWS fails
  the execution: see the ``catch_states_runtime`` conformance case).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = [
    "ALL",
    "MAX_DELAY_SECONDS",
    "RetryDecision",
    "TERMINAL_ERRORS",
    "compute_backoff",
    "error_matches",
    "find_catcher",
    "find_retrier",
    "next_retry",
]

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"

#: Errors that the ``States.ALL`` and ``States.TaskFailed`` wildcards never match.
TERMINAL_ERRORS = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})
_TIMEOUTS = frozenset({TIMEOUT, HEARTBEAT_TIMEOUT})

#: Upper bound of any delay (about 285 million years): keeps results finite for sleep().
MAX_DELAY_SECONDS = float(2**53)


#: Defaults of the ASL Retrier fields, used when a retrier object leaves one unset.
DEFAULT_INTERVAL_SECONDS = 1.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_RATE = 2.0


def _name_matches(name: str, error: str) -> bool:
    """Tell whether one ``ErrorEquals`` entry matches ``error``."""
    if name == error:
        return True
    if name == ALL:
        return error not in TERMINAL_ERRORS
    if name == TASK_FAILED:
        return error not in TERMINAL_ERRORS and error not in _TIMEOUTS
    if name == TIMEOUT:
        return error == HEARTBEAT_TIMEOUT
    return False


def error_matches(error_equals: Sequence[str], error: str) -> bool:
    """Tell whether an ``ErrorEquals`` list matches an error name.

    Args:
        error_equals: The retrier's or catcher's ``ErrorEquals`` names.
        error: The error name raised by the state (``States.Timeout``, ``MyError``...).

    Returns:
        True when any entry matches (see the module docstring for the wildcard rules).
        ``States.Runtime`` never matches: runtime errors always fail the execution.
    """
    if error == RUNTIME:
        return False
    return any(_name_matches(name, error) for name in error_equals)


def _first_match(rules: Sequence[Any], error: str) -> int | None:
    for index, rule in enumerate(rules):
        if error_matches(rule.error_equals, error):
            return index
    return None


def find_retrier(retriers: Sequence[Any], error: str) -> int | None:
    """Return the index of the first retrier whose ``ErrorEquals`` matches ``error``.

    Args:
        retriers: The state's ``Retry`` rules (objects with ``error_equals``).
        error: The error name.

    Returns:
        The index of the matching retrier, or ``None``.
    """
    return _first_match(retriers, error)


def find_catcher(catchers: Sequence[Any], error: str) -> int | None:
    """Return the index of the first catcher whose ``ErrorEquals`` matches ``error``.

    Args:
        catchers: The state's ``Catch`` rules (objects with ``error_equals``).
        error: The error name.

    Returns:
        The index of the matching catcher, or ``None``.
    """
    return _first_match(catchers, error)


def compute_backoff(
    interval_seconds: float,
    backoff_rate: float,
    attempt: int,
    *,
    max_delay_seconds: float | None = None,
    jitter: str | None = "NONE",
    rand: Callable[[], float] = random.random,
) -> float:
    """Return the delay before retry number ``attempt``.

    Args:
        interval_seconds: ``IntervalSeconds``: delay before the first retry.
        backoff_rate: ``BackoffRate``: multiplier applied for every further retry.
        attempt: 1-based retry number (1 = first retry).
        max_delay_seconds: ``MaxDelaySeconds`` cap, or ``None`` for no cap.
        jitter: ``JitterStrategy``: ``"FULL"`` draws the delay uniformly from
            ``[0, delay)``; ``"NONE"`` (or ``None``) uses the computed delay.
        rand: Source of uniform numbers in ``[0, 1)`` (injected for determinism).

    Returns:
        The delay in seconds, always finite and non-negative, even for huge ``attempt``.
    """
    delay = _raw_delay(float(interval_seconds), float(backoff_rate), max(attempt - 1, 0))
    if max_delay_seconds is not None:
        delay = max(0.0, min(delay, float(max_delay_seconds)))
    if getattr(jitter, "value", jitter) == "FULL":  # accept a str Enum from the model too
        delay *= rand()
    return delay


def _raw_delay(interval: float, rate: float, exponent: int) -> float:
    """``interval * rate ** exponent`` clamped to ``[0, MAX_DELAY_SECONDS]``, overflow-safe."""
    if interval <= 0 or math.isnan(interval) or math.isnan(rate):
        return 0.0
    try:
        # Float pow (never int pow, which would build a gigantic integer) raises
        # OverflowError instead of returning inf for huge exponents.
        delay = interval * rate**exponent
    except OverflowError:
        return MAX_DELAY_SECONDS
    return min(delay, MAX_DELAY_SECONDS)


class RetryDecision(NamedTuple):
    """The outcome of :func:`next_retry` when the state should be retried."""

    retrier_index: int
    """Index of the retrier (in ``Retry``) that applies."""
    delay_seconds: float
    """How long to wait before the retry."""


def next_retry(
    retriers: Sequence[Any],
    error: str,
    attempts_by_retrier: Mapping[int, int],
    rand: Callable[[], float] = random.random,
) -> RetryDecision | None:
    """Decide whether a failed state is retried, by which retrier and after what delay.

    The first retrier whose ``ErrorEquals`` matches applies (later ones are not consulted,
    as in AWS). Each retrier counts its own attempts; once it has used ``MaxAttempts`` the
    error is not retried (and goes on to ``Catch``). ``MaxAttempts`` 0 never retries.

    Args:
        retriers: The state's ``Retry`` rules.
        error: The error name.
        attempts_by_retrier: Retries already made, per retrier index (missing = 0).
        rand: Source of uniform numbers in ``[0, 1)`` for ``FULL`` jitter.

    Returns:
        A :class:`RetryDecision` (a ``(retrier_index, delay_seconds)`` named tuple), or
        ``None`` when the error is not retried.
    """
    index = find_retrier(retriers, error)
    if index is None:
        return None
    retrier = retriers[index]
    max_attempts = _field(retrier, "max_attempts", DEFAULT_MAX_ATTEMPTS)
    done = attempts_by_retrier.get(index, 0)
    if done >= max_attempts:
        return None
    delay = compute_backoff(
        _field(retrier, "interval_seconds", DEFAULT_INTERVAL_SECONDS),
        _field(retrier, "backoff_rate", DEFAULT_BACKOFF_RATE),
        done + 1,
        max_delay_seconds=getattr(retrier, "max_delay_seconds", None),
        jitter=getattr(retrier, "jitter_strategy", None) or "NONE",
        rand=rand,
    )
    return RetryDecision(index, delay)


def _field(rule: Any, name: str, default: Any) -> Any:
    """Read a retrier attribute, falling back to the ASL default when unset/None."""
    value = getattr(rule, name, None)
    return default if value is None else value
