"""Time and size budgets for evaluating expressions: JSONata, JSONPath, intrinsic functions.

An expression comes from a workflow definition and its data from a caller, so neither can be
trusted to finish: ``($f := function($n){ $f($n + 1) }; $f(0))`` loops for ever (JSONata
optimises the tail call), ``$..*..*`` over a deep document yields hundreds of millions of
matches, ``(a+)+$`` backtracks for ever in Python's ``re``. Evaluations run inline in a
worker (whose lease keeps renewing), in ``start_workflow`` and in the UI's request handler,
so a runaway one would pin them all. Three mechanisms bound it:

* **Time.** :func:`run_bounded` runs an evaluation with a deadline
  (``ORCHESTRATOR_EVALUATION_TIMEOUT_SECONDS``). One daemon watchdog thread per process
  raises :class:`LimitExceeded` *inside* the evaluating thread once its deadline has passed
  (``PyThreadState_SetAsyncExc``), which interrupts any pure-Python work at its next
  bytecode: the JSONata interpreter, jsonpath-ng, intrinsic functions. Arming and disarming
  costs two lock round trips (about a microsecond), nothing per evaluation step.
* **Regular expressions** run in C, where that exception cannot land: they use the
  ``regex`` package with ``timeout=`` set to what is left of the budget (:func:`remaining`).
* **Size.** Operations that allocate at C speed (string concatenation, ``$pad``, ``$join``,
  ``$append``, ``$replace``, ranges, ``States.Format``...) check the size of their result
  against :data:`MAX_STRING_CHARS` / :data:`MAX_ARRAY_ITEMS` *before* building it, so that
  doubling a string thirty times fails instead of allocating gigabytes.

The exception is a ``BaseException`` so that library code's ``except Exception`` (jsonata
and jsonpath-ng have several) cannot swallow it; :func:`run_bounded` turns it into a
:class:`~orchestrator.errors.EvaluationLimitExceeded` workflow error whose cause names the
limit. Nested bounded evaluations (an intrinsic reading a path) share the outer budget.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.config import get_settings
from orchestrator.errors import EvaluationLimitExceeded

__all__ = [
    "MAX_ARRAY_ITEMS",
    "MAX_STRING_CHARS",
    "TIMEOUT_SETTING",
    "LimitExceeded",
    "check_items",
    "check_chars",
    "remaining",
    "run_bounded",
]

#: Longest string an expression may build (characters): 64 times the 256 KiB state limit, so
#: that intermediate values have room while a doubling loop stops after a few megabytes.
MAX_STRING_CHARS = 16 * 1024 * 1024

#: Most items an array an expression builds may hold (a state's data holds at most ~128 Ki).
MAX_ARRAY_ITEMS = 1_000_000

#: The environment variable of the time budget, named in every time-limit cause.
TIMEOUT_SETTING = "ORCHESTRATOR_EVALUATION_TIMEOUT_SECONDS"

#: How often the watchdog looks at armed deadlines while any is armed (seconds): a runaway
#: evaluation is stopped at most this long after its deadline.
_TICK_S = 0.05
_IDLE_AFTER_TICKS = 20

T = TypeVar("T")


class LimitExceeded(BaseException):
    """An evaluation ran past a limit; ``cause`` says which (internal: see module doc)."""

    def __init__(self, cause: str = "") -> None:
        super().__init__(cause)
        self.cause = cause


class _Expired(LimitExceeded):
    """Raised asynchronously in a thread whose deadline passed (no arguments: ctypes
    instantiates it)."""


def check_chars(what: str, length: int) -> None:
    """Raise :class:`LimitExceeded` when a string of ``length`` characters is too long."""
    if length > MAX_STRING_CHARS:
        raise LimitExceeded(
            f"{what} would build a string of {length} characters, more than the evaluation "
            f"limit of {MAX_STRING_CHARS}"
        )


def check_items(what: str, count: int) -> None:
    """Raise :class:`LimitExceeded` when an array of ``count`` items is too large."""
    if count > MAX_ARRAY_ITEMS:
        raise LimitExceeded(
            f"{what} would build an array of {count} items, more than the evaluation limit "
            f"of {MAX_ARRAY_ITEMS}"
        )


def timeout_seconds() -> float:
    """The time budget of one evaluation, in seconds."""
    return get_settings().evaluation_timeout_seconds


class _Armed:
    """One thread's deadline, registered with the watchdog."""

    __slots__ = ("deadline", "fired", "thread_id")

    def __init__(self, thread_id: int, deadline: float) -> None:
        self.thread_id = thread_id
        self.deadline = deadline
        self.fired = False


class _Watchdog:
    """Raises :class:`_Expired` in threads whose evaluation outlived its deadline."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.armed: dict[int, _Armed] = {}
        self.wake = threading.Event()
        self.idle = True
        self.thread: threading.Thread | None = None

    def arm(self, entry: _Armed) -> None:
        with self.lock:
            self.armed[entry.thread_id] = entry
            if self.idle:
                self.idle = False
                self.wake.set()
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._run, name="orchestrator-evaluation-watchdog", daemon=True
                    )
                    self.thread.start()

    def disarm(self, entry: _Armed) -> None:
        with self.lock:
            if self.armed.get(entry.thread_id) is entry:
                del self.armed[entry.thread_id]
            if entry.fired:
                # An exception fired but not yet delivered must not land after the
                # evaluation: NULL clears the thread's pending asynchronous exception.
                _set_async_exc(entry.thread_id, None)

    def _run(self) -> None:
        empty_ticks = 0
        while True:
            self.wake.wait()
            with self.lock:
                if not self.armed:
                    # Idle only after a second without evaluations: waking this thread for
                    # every evaluation of a busy worker would cost more than the evaluation.
                    empty_ticks += 1
                    if empty_ticks >= _IDLE_AFTER_TICKS:
                        empty_ticks = 0
                        self.idle = True
                        self.wake.clear()
                        continue
                else:
                    empty_ticks = 0
                now = time.monotonic()
                # Fired again on every tick until disarmed, in case something swallowed it.
                for entry in self.armed.values():
                    if entry.deadline <= now:
                        entry.fired = True
                        _set_async_exc(entry.thread_id, _Expired)
            time.sleep(_TICK_S)


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


_watchdog = _Watchdog()
_local = threading.local()


def _after_fork() -> None:
    # A forked child (Celery's prefork pool) has no watchdog thread and may have inherited a
    # lock held by one: start afresh.
    global _watchdog
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_after_fork)


def remaining() -> float:
    """Seconds left in the current thread's budget (the whole budget outside one)."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout_seconds()
    return max(deadline - time.monotonic(), 0.0)


def run_bounded(what: str, error: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``function(*args, **kwargs)`` within the evaluation budget.

    Args:
        what: What is evaluated, for the cause (``JSONata evaluation``, ``JSONPath '$..x'``).
        error: The Step Functions error name of a limit exceeded
            (``States.QueryEvaluationError``, ``States.Runtime``).
        function: The evaluation.

    Returns:
        What ``function`` returns.

    Raises:
        EvaluationLimitExceeded: It ran longer than the budget or built a value over a size
            limit; the cause names the limit.
    """
    if getattr(_local, "deadline", None) is not None:
        return function(*args, **kwargs)  # inside an outer budget, which bounds this too
    timeout = timeout_seconds()
    entry = _Armed(threading.get_ident(), time.monotonic() + timeout)
    watchdog = _watchdog
    _local.deadline = entry.deadline
    try:
        try:
            watchdog.arm(entry)
            return function(*args, **kwargs)
        finally:
            _disarm(watchdog, entry)
    except _Expired:
        raise EvaluationLimitExceeded(
            f"{what} exceeded the time limit of {timeout:g} s ({TIMEOUT_SETTING})", error=error
        ) from None
    except LimitExceeded as exc:
        raise EvaluationLimitExceeded(f"{what}: {exc.cause}", error=error) from None


def _disarm(watchdog: _Watchdog, entry: _Armed) -> None:
    # The watchdog may deliver its exception anywhere up to the moment the entry is removed,
    # including in here: retry until removed, then let the outer handler report it.
    expired = False
    while True:
        try:
            _local.deadline = None
            watchdog.disarm(entry)
            break
        except _Expired:
            expired = True
    if expired:
        raise _Expired
