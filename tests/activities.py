"""Activities used by the integration and e2e tests.

Every counter lives in Redis under the configured key prefix (``{prefix}:test:...``) so
that it is shared by the test process and separate worker processes, and is deleted with
the rest of the run's keys. Tests read them with :func:`counter`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from orchestrator import activity
from orchestrator.engine.store import OUTAGE_ERRORS, get_store

#: Longest a blocking activity waits for its release key before giving up, in seconds.
BLOCK_LIMIT_S = 120.0


def scoped_key(*parts: str) -> str:
    """A key for test bookkeeping, under the store's prefix."""
    store = get_store()
    return ":".join([store.keys.prefix, "test", *parts])


#: An environment variable naming a file: when set, every :func:`bump` first appends its
#: counter's key there (a line), a record of the side effects that no Redis failover can
#: lose, and retries an increment through a Redis outage (up to ``OUTAGE_RETRY_S``): a
#: connection error or timeout, or on a Redis Cluster a master lost and not replaced yet
#: (``CLUSTERDOWN``, a slot not covered), the store's ``OUTAGE_ERRORS``.
SIDE_EFFECTS_FILE = "ORCH_TEST_SIDE_EFFECTS_FILE"
#: How long a bump (with ``SIDE_EFFECTS_FILE`` set) retries an increment Redis refused.
OUTAGE_RETRY_S = 30.0


def bump(*parts: str) -> int:
    """Increment a test counter and return its new value.

    With ``SIDE_EFFECTS_FILE`` set, the call is first written to that file, and a
    connection error or timeout, a cluster down (a failover's moment: the store's
    ``OUTAGE_ERRORS``) is retried rather than failing the activity; the retry may count
    once more, if the first increment was applied.
    """
    key = scoped_key(*parts)
    ledger = os.environ.get(SIDE_EFFECTS_FILE)
    if not ledger:
        return int(get_store().client.incr(key))
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{key}\n".encode())  # one write of a short line: never interleaved
    finally:
        os.close(fd)
    deadline = time.monotonic() + OUTAGE_RETRY_S
    while True:
        try:
            return int(get_store().client.incr(key))
        except OUTAGE_ERRORS:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)


def side_effects(ledger: Path) -> dict[str, int]:
    """How many times each counter of the ``SIDE_EFFECTS_FILE`` ``ledger`` was bumped."""
    counts: dict[str, int] = {}
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            counts[line] = counts.get(line, 0) + 1
    return counts


def counter(*parts: str) -> int:
    """A test counter's value (0 if never bumped)."""
    return int(get_store().client.get(scoped_key(*parts)) or 0)


def release(tag: str) -> None:
    """Let the ``block`` activities waiting on ``tag`` finish."""
    get_store().client.set(scoped_key("release", tag), "1")


_error_classes: dict[str, type[Exception]] = {}


def _error_class(name: str) -> type[Exception]:
    """An exception class called ``name`` (the activity error is the class name)."""
    cls = _error_classes.get(name)
    if cls is None:
        cls = type(name, (Exception,), {})
        _error_classes[name] = cls
    return cls


@activity("echo")
def echo(value: Any) -> Any:
    """Return the effective input unchanged."""
    return value


_ODD_RESULTS: dict[str, Any] = {
    "nan": float("nan"),
    "infinity": {"x": float("inf")},
    "set": {1, 2},
    "object": object(),
}


@activity("odd_result")
def odd_result(value: dict[str, Any]) -> Any:
    """A result JSON cannot carry (``{"kind": "nan" | "infinity" | "set" | "object"}``),
    or a string of ``{"bytes": n}``."""
    if "bytes" in value:
        return "x" * value["bytes"]
    return _ODD_RESULTS[value["kind"]]


@activity("add")
def add(value: dict[str, Any]) -> Any:
    """``{"a": x, "b": y}`` -> ``x + y``."""
    return value["a"] + value["b"]


@activity("fail")
def fail(value: dict[str, Any]) -> Any:
    """Raise an exception whose class is ``value["error"]`` and message ``value["cause"]``.

    Counts its calls under ``calls:{tag}`` when ``value`` has a ``tag``.
    """
    if "tag" in value:
        bump("calls", value["tag"])
    raise _error_class(value.get("error", "CustomError"))(value.get("cause", "it failed"))


@activity("flaky")
def flaky(value: dict[str, Any]) -> Any:
    """Fail with ``value["error"]`` (default ``Transient``) the first ``value["fail"]`` calls.

    The call counter is ``calls:{tag}``. Returns the input plus the attempt number.
    """
    attempt = bump("calls", value["tag"])
    if attempt <= value.get("fail", 0):
        errors = value.get("errors")
        name = errors[attempt - 1] if errors else value.get("error", "Transient")
        raise _error_class(name)(f"attempt {attempt} failed")
    return {**value, "attempt": attempt}


@activity("count")
def count(value: Any) -> Any:
    """Count a call under ``calls:{tag}`` and return the input with ``calls`` set."""
    tag = value["tag"] if isinstance(value, dict) else str(value)
    calls = bump("calls", tag)
    return {**value, "calls": calls} if isinstance(value, dict) else calls


@activity("sleep")
def sleep(value: dict[str, Any]) -> Any:
    """Sleep ``value["seconds"]``; count starts and finishes under ``started/finished:{tag}``.

    ``seconds`` may be a list indexed by ``value["retry"]`` (pass ``$$.State.RetryCount``)
    to sleep differently per attempt.
    """
    tag = value.get("tag", "sleep")
    retry = value.get("retry", 0)
    seconds = value["seconds"]
    if isinstance(seconds, list):
        seconds = seconds[min(retry, len(seconds) - 1)]
    bump("started", tag)
    time.sleep(seconds)
    finished = bump("finished", tag)
    return {"slept": seconds, "tag": tag, "retry": retry, "finished": finished}


@activity("block")
def block(value: dict[str, Any]) -> Any:
    """Wait until :func:`release` is called for ``value["tag"]``.

    Counts starts (``started:{tag}``) and completions (``finished:{tag}``) so that tests
    can tell a re-run from a duplicate.
    """
    tag = value["tag"]
    bump("started", tag)
    client = get_store().client
    key = scoped_key("release", tag)
    deadline = time.monotonic() + value.get("limit", BLOCK_LIMIT_S)
    while not client.exists(key):
        if time.monotonic() > deadline:
            raise TimeoutError(f"block {tag!r} was never released")
        time.sleep(0.05)
    bump("finished", tag)
    return {**value, "released": True}


@activity("gauge")
def gauge(value: dict[str, Any]) -> Any:
    """Hold ``value["seconds"]`` while counting the calls in flight under
    ``inflight:{tag}``; the most ever in flight at once is ``peak(tag)``. Fails with
    ``ItemFailed`` when ``value["fail"]`` is true. Returns ``value["i"]`` doubled."""
    tag = value["tag"]
    client = get_store().client
    now = client.incr(scoped_key("inflight", tag))
    client.zadd(scoped_key("peak", tag), {"peak": now}, gt=True)
    try:
        time.sleep(value.get("seconds", 0))
    finally:
        client.decr(scoped_key("inflight", tag))
    if value.get("fail"):
        raise _error_class("ItemFailed")(f"item {value.get('i')} failed")
    return value.get("i", 0) * 2


def peak(tag: str) -> int:
    """The most ``gauge`` calls of ``tag`` ever in flight at once."""
    return int(get_store().client.zscore(scoped_key("peak", tag), "peak") or 0)
