"""Every call the engine sends touches the keys of at most one execution (one hash tag).

A Redis ``MONITOR`` watches a few executions of a workflow with a Map, a Parallel, a
Wait, a Retry and a Catch (and one that fails uncaught, for the dead-letter path); each
script call (with the commands the script itself ran, logged by Redis as ``lua``), each
MULTI ... EXEC block and every other command is checked: the hash tags of the keys it
names number at most one, and a key without a tag is one of the known global keys. So no
script builds a key it was not passed, and a Redis Cluster could run every call on the
slot of its execution (the global indexes aside, see orchestrator/engine/keys.py).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from orchestrator import start_workflow
from orchestrator.engine.store import RedisStore, get_store, redis_client
from tests.helpers import machine, task

pytestmark = pytest.mark.usefixtures("orchestrator")

_LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]*)\] (.*)$")
_ARG = re.compile(r'"((?:[^"\\]|\\.)*)"')
_TAG = re.compile(r"\{([^{}]*)\}")


@dataclass
class Call:
    """One unit the server ran atomically: a command, a script call or a transaction."""

    commands: list[list[str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.commands[0][0].upper()


def _calls(lines: list[str]) -> list[Call]:
    """Group MONITOR lines: a script call with the ``lua`` lines that follow it, and a
    MULTI with the commands up to its EXEC (Redis logs those together, at EXEC)."""
    calls: list[Call] = []
    in_multi = False
    for line in lines:
        match = _LINE.match(line)
        assert match, line
        client, rest = match.groups()
        args = [a.replace('\\"', '"').replace("\\\\", "\\") for a in _ARG.findall(rest)]
        if not args:
            continue
        if client == "lua":
            scripts = ("EVALSHA", "EVAL", "FCALL")
            assert calls and any(c[0].upper() in scripts for c in calls[-1].commands), line
            calls[-1].commands.append(args)
        elif in_multi:
            calls[-1].commands.append(args)
            in_multi = args[0].upper() not in ("EXEC", "DISCARD")
        else:
            calls.append(Call([args]))
            in_multi = args[0].upper() == "MULTI"
    return calls


class Monitor:
    """The lines of a MONITOR on its own connection, until :meth:`stop`."""

    def __init__(self, url: str, store: RedisStore) -> None:
        self.client = redis_client(url, timeout=60)
        self.store = store
        self.lines: list[str] = []
        self.sentinel = f"{store.keys.prefix}:test:monitor-stop-{uuid.uuid4().hex}"
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "MONITOR did not start"

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while True:
                line = monitor.connection.read_response()
                line = line.decode() if isinstance(line, bytes) else line
                if self.sentinel in line:
                    return
                self.lines.append(line)

    def stop(self) -> list[str]:
        self.store.client.get(self.sentinel)
        self._thread.join(30)
        assert not self._thread.is_alive(), "MONITOR did not stop"
        self.client.close()
        return self.lines


@pytest.fixture
def monitor(orchestrator) -> Iterator[Monitor]:
    store = get_store()
    watching = Monitor(orchestrator.settings.redis_url, store)
    try:
        yield watching
    finally:
        if watching._thread.is_alive():
            watching.stop()


def _definition() -> dict:
    flaky = task(
        "flaky",
        Next="Pause",
        Retry=[{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 2}],
    )
    items = {
        "StartAt": "Flaky",
        "States": {"Flaky": flaky, "Pause": {"Type": "Wait", "Seconds": 1, "End": True}},
    }
    caught = {
        "StartAt": "Boom",
        "States": {
            "Boom": task(
                "fail",
                Parameters={"error": "Boom"},
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
            ),
            "Caught": {"Type": "Pass", "Result": "caught", "End": True},
        },
    }
    mapped = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "MaxConcurrency": 2,
                "ItemSelector": {
                    "tag.$": "States.Format('{}-{}', $.tag, $$.Map.Item.Index)",
                    "fail": 1,
                },
                "ItemProcessor": items,
                "End": True,
            }
        },
    }
    return machine({"P": {"Type": "Parallel", "Branches": [mapped, caught], "End": True}})


def test_every_call_touches_at_most_one_execution(monitor: Monitor, tag: str) -> None:
    store = get_store()
    keys = store.keys
    handles = [
        start_workflow(_definition(), {"tag": f"{tag}-{n}", "items": [1, 2, 3]}) for n in range(3)
    ]
    failing = start_workflow(machine({"Boom": task("fail", Parameters={"error": "Boom"})}))
    for handle in handles:
        result = handle.result(60)
        assert result.status == "SUCCEEDED", result
    assert failing.result(30).status == "FAILED"
    calls = _calls(monitor.stop())

    own = f"{keys.prefix}:"
    global_keys = {
        keys.executions,
        keys.timers,
        keys.leases,
        keys.dead_letters,
        keys.activities,
        keys.tick_lock,
        keys.tokens,
    }
    shas = {store._commit.sha: "commit", store._claim.sha: "claim", store._timers.sha: "timers"}
    seen_scripts: set[str] = set()
    seen_tags: set[str] = set()
    for call in calls:
        if call.name == "EVALSHA":
            seen_scripts.add(shas.get(call.commands[0][1], "other"))
        tags: set[str] = set()
        for args in call.commands:
            for arg in args[1:]:
                if not arg.startswith(own) or arg.startswith(f"{own}test:"):
                    continue
                found = _TAG.findall(arg)
                if found:
                    tags.update(found)
                else:
                    untagged = (
                        arg in global_keys
                        or arg.startswith(f"{own}def:")
                        or arg.startswith(f"{keys.executions}:")  # listing indexes
                    )
                    assert untagged, f"{arg} has no hash tag in {call.commands}"
        assert len(tags) <= 1, f"one call touches executions {sorted(tags)}: {call.commands}"
        seen_tags |= tags
    # Not vacuous: every execution was seen, through every kind of script.
    assert {h.execution_id for h in [*handles, failing]} <= seen_tags
    assert {"commit", "claim", "timers"} <= seen_scripts
