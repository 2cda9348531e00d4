"""Activities for the parallel/map, wait/timer, callback/stop/redrive and beat-kill tests.

All bookkeeping lives in Redis under ``{prefix}:ctl:...`` so that it is shared with worker
subprocesses and deleted with the run's keys.
"""

from __future__ import annotations

import time
from typing import Any

from orchestrator import activity
from orchestrator.engine.store import get_store


def ckey(*parts: Any) -> str:
    """A bookkeeping key under the store's prefix."""
    return ":".join([get_store().keys.prefix, "ctl", *(str(p) for p in parts)])


def cbump(*parts: Any) -> int:
    return int(get_store().client.incr(ckey(*parts)))


def cget(*parts: Any) -> int:
    return int(get_store().client.get(ckey(*parts)) or 0)


def cset(*parts: Any, value: str = "1") -> None:
    get_store().client.set(ckey(*parts), value)


def ctext(*parts: Any) -> str | None:
    raw = get_store().client.get(ckey(*parts))
    return raw.decode() if isinstance(raw, bytes) else raw


class FlagNotSet(Exception):
    """Raised by ``ctl_until_flag`` until its flag is set."""


class ItemFailed(Exception):
    """Raised by ``ctl_item`` for items listed as failing."""


@activity("ctl_concurrent")
def ctl_concurrent(value: dict[str, Any]) -> Any:
    """Track how many run at once under ``running:{tag}``, keeping the peak in ``peak:{tag}``."""
    tag = value["tag"]
    client = get_store().client
    running = int(client.incr(ckey("running", tag)))
    # Peak = max(peak, running), atomically.
    client.eval(
        "local p = tonumber(redis.call('get', KEYS[1]) or '0')"
        " if tonumber(ARGV[1]) > p then redis.call('set', KEYS[1], ARGV[1]) end return 0",
        1,
        ckey("peak", tag),
        running,
    )
    try:
        # ``rendezvous: n`` holds the item until n run at once (or 10 s pass), so a test of
        # concurrency does not depend on how quickly a loaded machine starts the others.
        deadline = time.monotonic() + 10
        while int(client.get(ckey("running", tag)) or 0) < value.get("rendezvous", 0):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        time.sleep(value.get("seconds", 0.2))
    finally:
        client.decr(ckey("running", tag))
    cbump("calls", tag)
    return value.get("item")


@activity("ctl_item")
def ctl_item(value: dict[str, Any]) -> Any:
    """Count calls per item (``item:{tag}:{item}``); fail items in ``fail`` unless flag set."""
    tag, item = value["tag"], value["item"]
    cbump("item", tag, item)
    cbump("calls", tag)
    if item in value.get("fail", []) and not cget("flag", tag):
        time.sleep(value.get("fail_delay", 0))
        raise ItemFailed(f"item {item} failed")
    return {"item": item, "index": value.get("index")}


@activity("ctl_until_flag")
def ctl_until_flag(value: dict[str, Any]) -> Any:
    """Fail with FlagNotSet until ``flag:{tag}`` is set; count calls in ``calls:{tag}``."""
    tag = value["tag"]
    cbump("calls", tag)
    if not cget("flag", tag):
        raise FlagNotSet("flag not set")
    return {"ok": True}


@activity("ctl_count")
def ctl_count(value: dict[str, Any]) -> Any:
    """Count calls under ``calls:{tag}:{name}`` and return the input."""
    cbump("calls", value["tag"], value.get("name", "-"))
    return value


@activity("ctl_token_sink")
def ctl_token_sink(value: dict[str, Any]) -> Any:
    """Store the task token it got under ``token:{tag}`` (for the test to answer)."""
    get_store().client.set(ckey("token", value["tag"]), value["token"])
    return None


@activity("ctl_token_then_hold")
def ctl_token_then_hold(value: dict[str, Any]) -> Any:
    """Store the task token under ``token:{tag}``, then hold the step RUNNING until
    ``release:{tag}`` (max 30 s): an answer can then arrive before the step waits."""
    tag = value["tag"]
    get_store().client.set(ckey("token", tag), value["token"])
    deadline = time.monotonic() + 30
    while not cget("release", tag) and time.monotonic() < deadline:
        time.sleep(0.02)
    return None


@activity("ctl_slow")
def ctl_slow(value: dict[str, Any]) -> Any:
    """Mark ``started:{tag}``, wait for ``release:{tag}`` (max 30 s), then finish."""
    tag = value["tag"]
    cbump("started", tag)
    deadline = time.monotonic() + value.get("limit", 30)
    while not cget("release", tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    cbump("finished", tag)
    return {"late": True}
