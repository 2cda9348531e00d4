"""No task token in any Celery event: what Flower shows is what the workers' events say.

Flower builds its task pages from the events workers send: ``task-received`` (``args`` and
``kwargs``: the messages' ``argsrepr``/``kwargsrepr``), ``task-succeeded`` (``result``: a
repr of the return value, which in a chain is the next task's input), ``task-failed``
(``exception``, ``traceback``); its worker page adds the real arguments of the messages a
worker holds (``inspect active/reserved``). These tests listen to the broker's event
exchange as Flower does, run callback tasks on the real worker, and look for the tokens
in every event and message — while the activity gets its token and answering it
completes the execution.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import signals

from orchestrator import activity, send_task_success, start_workflow
from orchestrator.engine.celery_app import app
from orchestrator.engine.publisher import dispatch_repr
from orchestrator.engine.store import get_store
from orchestrator.language.tokens import REDACTED, new_token
from tests.control_activities import cbump, cget, ckey
from tests.helpers import machine, task, wait_until


@activity("sec_flower_callback")
def sec_flower_callback(value: dict[str, Any]) -> Any:
    """Keep the token for the test; the first attempt fails quoting it, as careless code
    does; later ones return it (what a callback activity returns is not its result)."""
    store = get_store().client
    store.rpush(ckey("tokens", value["tag"]), value["token"])
    if cbump("attempt", value["tag"]) == 1:
        raise RuntimeError(f"could not deliver {value['token']}")
    return {"submitted": value["token"]}


class Events:
    """Every Celery event on the broker while the test runs (a Receiver in a thread)."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._events.append(dict(event))

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.all() if e.get("type") == event_type]


@pytest.fixture
def celery_events(orchestrator: Any) -> Iterator[Events]:
    events = Events()
    connection = app.connection_for_read()
    receiver = app.events.Receiver(connection, handlers={"*": events.record})
    thread = threading.Thread(
        target=receiver.capture, kwargs={"limit": None, "timeout": None, "wakeup": False}
    )
    thread.start()
    try:
        # The receiver's queue exists once it hears an event: send probes until it does.
        probe = uuid.uuid4().hex
        with app.events.default_dispatcher() as dispatcher:

            def heard() -> bool:
                dispatcher.send("test-probe", probe=probe)
                return any(e.get("probe") == probe for e in events.of("test-probe"))

            wait_until(heard, 30, interval=0.2, message="event receiver listening")
        yield events
    finally:
        receiver.should_stop = True
        thread.join(30)
        connection.release()
    assert not thread.is_alive()


def steps_of(events: Events, execution_id: str) -> dict[str, list[dict[str, Any]]]:
    """The events of each step task of an execution, by state name (received first)."""
    received = {
        e["uuid"]: e
        for e in events.of("task-received")
        if execution_id in (e.get("args") or "") and e.get("name") != "orchestrator.dispatch"
    }
    by_step: dict[str, list[dict[str, Any]]] = {}
    for task_id, event in received.items():
        step = json.loads(event["args"])[2]
        by_step.setdefault(step, []).append(event)
        by_step[step] += [e for e in events.all() if e.get("uuid") == task_id and e is not event]
    return by_step


def finished(events: Events, execution_id: str, steps: dict[str, int]) -> bool:
    """Whether each step's task sent ``task-succeeded`` (at least ``steps[name]`` times)."""
    by_step = steps_of(events, execution_id)
    return all(
        sum(e.get("type") == "task-succeeded" for e in by_step.get(name, [])) >= count
        for name, count in steps.items()
    )


def test_no_task_token_reaches_a_celery_event(
    orchestrator: Any, tag: str, celery_events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The retry's timer hands its dispatch to a worker as an orchestrator.dispatch task
    # (the path of timer bursts), whose arguments hold the callback task's input.
    monkeypatch.setattr("orchestrator.engine.timers.DELEGATE_MIN", 1)
    # Celery's default repr of arguments stops at three levels, deep enough to hide a
    # dispatch batch's inputs; a deployment may raise it (ORCHESTRATOR_CELERY_CONFIG), and
    # no token may depend on that.
    monkeypatch.setitem(app.conf, "task_repr_maxlevels", 10)
    definition = machine(
        {
            # A Task before the callback: an ordinary step would chain into the next one
            # and return its input (token and all) as its result.
            "First": task("echo", Next="Callback", ResultPath="$.first"),
            "Callback": task(
                "sec_flower_callback.waitForTaskToken",
                Parameters={"tag": tag, "note.$": "$.note", "token.$": "$$.Task.Token"},
                Retry=[{"ErrorEquals": ["RuntimeError"], "IntervalSeconds": 1, "MaxAttempts": 2}],
                ResultPath="$.approval",
                Next="Last",
            ),
            "Last": task("echo", ResultPath="$.last"),
        }
    )
    # What the worker's messages carry: `celery inspect active/reserved` answers with the
    # real arguments of the messages a worker holds, and Flower's worker page shows them.
    held: list[Any] = []

    def received(request: Any = None, **_: Any) -> None:
        held.append([request.name, request.args, request.kwargs])

    signals.task_received.connect(received, weak=False)
    try:
        handle = start_workflow(definition, {"note": "hello"})
        tokens = answer_second_attempt(handle, tag)
    finally:
        signals.task_received.disconnect(received)
    execution_id = handle.execution_id
    wait_until(
        lambda: finished(celery_events, execution_id, {"First": 1, "Callback": 2, "Last": 1}),
        20,
        message="the steps' task-succeeded events",
    )
    wait_until(lambda: delegated(celery_events, execution_id), 20, message="dispatch task")
    assert any(name == "orchestrator.dispatch" for name, _, _ in held), held
    events = celery_events.all()
    for token in tokens:
        assert token not in json.dumps(held, default=str), held
        leaks = [e for e in events if token in json.dumps(e, default=str)]
        assert not leaks, leaks

    by_step = steps_of(celery_events, execution_id)
    callback = [e for e in by_step["Callback"] if e["type"] == "task-received"]
    # Shown redacted, not left out: the rest of the input is still there.
    assert all(REDACTED in e["args"] and "hello" in e["args"] for e in callback), callback
    # The callback task is published on its own, not chained from First.
    assert all(e["result"] == "None" for e in by_step["First"] if e["type"] == "task-succeeded")
    # The activity's error (quoting its token) became the step's error, not a task failure.
    assert not [e for e in events if e.get("type") == "task-failed"]


def answer_second_attempt(handle: Any, tag: str) -> list[str]:
    """Answer the callback's second token (the first attempt failed); the tokens."""
    client = get_store().client
    wait_until(lambda: client.llen(ckey("tokens", tag)) >= 2, 20, message="second attempt")
    tokens = [
        t.decode() if isinstance(t, bytes) else t for t in client.lrange(ckey("tokens", tag), 0, -1)
    ]
    assert len(set(tokens)) == 2  # the retry got a token of its own
    send_task_success(tokens[-1], {"approved": True})
    result = handle.result(20)
    assert result.status == "SUCCEEDED", result
    assert result.output["approval"] == {"approved": True}
    assert cget("attempt", tag) == 2
    return tokens


def delegated(events: Events, execution_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in events.of("task-received")
        if e.get("name") == "orchestrator.dispatch" and execution_id in (e.get("args") or "")
    ]


def test_a_dispatch_batch_is_shown_without_its_inputs() -> None:
    token = new_token("e1")
    batch = [["e1", "hash", [["Callback", "Callback", "act", {"token": token, "n": 1}]]]]
    assert json.loads(dispatch_repr(batch)) == [["e1", ["Callback"]]]
    long = [[f"e{i}", "hash", [["S", "S", "act", {"token": token}]]] for i in range(200)]
    assert len(dispatch_repr(long)) <= 1024 and token not in dispatch_repr(long)
