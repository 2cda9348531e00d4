"""Time and size budgets for evaluating expressions: JSONata, JSONPath, intrinsic functions.

An expression comes from a workflow definition and its data from a caller, so neither can be
trusted to finish: ``($f := function($n){ $f($n + 1) }; $f(0))`` loops for ever (JSONata
optimises the tail call), ``$..*..*`` over a deep document yields hundreds of millions of
matches, ``(a+)+$`` backtracks for ever in Python's ``re``. Evaluations run inline in a
worker (whose lease keeps renewing), in ``start_workflow`` and in the UI's request handler,
so a runaway one would pin them all. Three mechanisms bound it:

* **Time.** :func:`run_bounded` runs an evaluation with a deadline
  (``ORCHESTRATOR_EVALUATION_TIMEOUT_SECONDS``) and, for its duration only, a trace function
  on the evaluating thread (``sys.settrace``) that looks at the clock every few dozen
  Python calls and raises :class:`LimitExceeded` in that call once the deadline has passed.
  The JSONata interpreter, jsonpath-ng and the intrinsic functions work by calling Python
  functions, so any runaway evaluation makes calls and is stopped. The exception is raised
  synchronously, in the evaluation and nowhere else: no other thread, and no code after
  the evaluation, can receive it. A debugger's or coverage tool's trace function is put
  back when the evaluation ends.
* **Regular expressions** run in C, where that exception cannot land: they use the
  ``regex`` package with ``timeout=`` set to what is left of the budget (:func:`remaining`).
* **Size.** Operations that allocate at C speed (string concatenation, ``$pad``, ``$join``,
  ``$append``, ``$replace``, ``$string``, ranges, ``States.Format``...) check the size of
  their result against :data:`MAX_STRING_CHARS` / :data:`MAX_ARRAY_ITEMS` *before* building
  it, so that doubling a string thirty times fails instead of allocating gigabytes.
* **Memory.** Size checks per operation cannot see accumulation (sixty strings of 16 Mi
  characters in one array, a path step mapping a million ranges). The same trace function
  also reads the process's resident memory (``/proc/self/statm``) every few hundred calls
  and raises :class:`LimitExceeded` once it has grown more than
  ``ORCHESTRATOR_EVALUATION_MAX_MEMORY_MB`` since the evaluation started; the
  evaluation's objects are then dropped and freed memory handed back to the system. The
  resident size is the process's, so evaluations running concurrently in threads of one
  process share the allowance (a Celery prefork child runs one at a time). Linux only:
  elsewhere only the time and size limits apply.

The exception is a ``BaseException`` so that library code's ``except Exception`` (jsonata
and jsonpath-ng have several) cannot swallow it; :func:`run_bounded` turns it into a
:class:`~orchestrator.errors.EvaluationLimitExceeded` workflow error whose cause names the
limit. Nested bounded evaluations (an intrinsic reading a path) share the outer budget.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from orchestrator.config import get_settings
from orchestrator.errors import EvaluationLimitExceeded

__all__ = [
    "MAX_ARRAY_ITEMS",
    "MAX_STRING_CHARS",
    "MEMORY_SETTING",
    "TIMEOUT_SETTING",
    "LimitExceeded",
    "check_items",
    "check_chars",
    "check_serialized_chars",
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

#: The environment variable of the memory budget, named in every memory-limit cause.
MEMORY_SETTING = "ORCHESTRATOR_EVALUATION_MAX_MEMORY_MB"

#: Python calls between two looks at the clock (a look is ~60 ns; an evaluation makes a
#: call every microsecond or so, so a deadline is noticed within microseconds).
_CALLS_PER_CLOCK_CHECK = 32
#: Clock checks between two reads of the resident memory (a read is ~2 us).
_CLOCK_CHECKS_PER_MEMORY_CHECK = 16

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

T = TypeVar("T")


class LimitExceeded(BaseException):
    """An evaluation ran past a limit; ``cause`` says which (internal: see module doc)."""

    def __init__(self, cause: str = "") -> None:
        super().__init__(cause)
        self.cause = cause


class _Expired(LimitExceeded):
    """The evaluation's deadline passed."""


class _OutOfMemory(LimitExceeded):
    """The process's resident memory grew past the budget since the evaluation started."""


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


def check_serialized_chars(what: str, value: Any) -> None:
    """Raise :class:`LimitExceeded` when the JSON text of ``value`` would be too long.

    Counts a lower bound of the compact serialisation (strings without their escapes,
    numbers as one digit), stopping as soon as it passes :data:`MAX_STRING_CHARS`: one step
    per node of ``value``, and a few for sixty references to one huge string.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item) + 2
        elif isinstance(item, Mapping):
            total += 1 + 2 * len(item)
            for key, child in item.items():
                total += len(key) if isinstance(key, str) else 1
                stack.append(child)
        elif isinstance(item, list | tuple):
            total += 1 + len(item)
            stack.extend(item)
        else:
            total += 1
        if total > MAX_STRING_CHARS:
            raise LimitExceeded(
                f"{what} would build a string of at least {total} characters, more than the "
                f"evaluation limit of {MAX_STRING_CHARS}"
            )


def timeout_seconds() -> float:
    """The time budget of one evaluation, in seconds."""
    return get_settings().evaluation_timeout_seconds


_local = threading.local()
#: An open /proc/self/statm (reading it again is a 2 us pread), -1 before the first read,
#: None where there is none (not Linux): no memory limit there.
_statm: int | None = -1


def _resident_pages() -> int:
    """The process's resident set size in pages (0 where unknown)."""
    global _statm
    if _statm == -1:
        try:
            _statm = os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            _statm = None
    if _statm is None:
        return 0
    try:
        return int(os.pread(_statm, 128, 0).split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _memory_limit() -> int:
    """The resident pages past which an evaluation starting now is stopped (0: none)."""
    budget_mb = get_settings().evaluation_max_memory_mb
    if not budget_mb:
        return 0
    resident = _resident_pages()
    return resident + budget_mb * 1024 * 1024 // _PAGE_BYTES if resident else 0


_libc_name = ctypes.util.find_library("c")
_malloc_trim = getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None


def _release_memory() -> None:
    """Free what a stopped evaluation left (its frames hold cycles) and hand free heap pages
    back to the system: glibc keeps them otherwise, and the worker's resident size with
    them."""
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


def _after_fork() -> None:
    # A forked child's /proc/self is its own: open it again.
    global _statm
    if isinstance(_statm, int) and _statm >= 0:
        try:
            os.close(_statm)
        except OSError:
            pass
    _statm = -1


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
        EvaluationLimitExceeded: It ran longer than the budget, grew the process's memory
            past the memory budget or built a value over a size limit; the cause names the
            limit.
    """
    if getattr(_local, "deadline", None) is not None:
        return function(*args, **kwargs)  # inside an outer budget, which bounds this too
    timeout = timeout_seconds()
    deadline = time.monotonic() + timeout
    memory_limit = _memory_limit()
    calls = 0

    def watch(frame: Any, event: str, arg: Any) -> None:
        # Called by the interpreter at every Python call of this thread while evaluating:
        # raising here raises in the evaluation, and nowhere else.
        nonlocal calls
        calls += 1
        if calls % _CALLS_PER_CLOCK_CHECK:
            return None
        if time.monotonic() > deadline:
            raise _Expired()
        if (
            memory_limit
            and calls % (_CALLS_PER_CLOCK_CHECK * _CLOCK_CHECKS_PER_MEMORY_CHECK) == 0
            and _resident_pages() > memory_limit
        ):
            raise _OutOfMemory()
        return None  # no line events: only calls are watched

    previous = sys.gettrace()
    _local.deadline = deadline
    message: str
    try:
        sys.settrace(watch)
        try:
            return function(*args, **kwargs)
        finally:
            sys.settrace(previous)
            _local.deadline = None
    except _Expired:
        message = f"{what} exceeded the time limit of {timeout:g} s ({TIMEOUT_SETTING})"
    except _OutOfMemory:
        message = (
            f"{what} exceeded the memory limit of {get_settings().evaluation_max_memory_mb} "
            f"MB ({MEMORY_SETTING})"
        )
    except LimitExceeded as exc:
        message = f"{what}: {exc.cause}"
    # Raised outside the handler: an exception raised inside would keep the interrupted
    # one as its __context__, and with it the evaluation's frames and everything they built.
    _release_memory()
    raise EvaluationLimitExceeded(message, error=error)
