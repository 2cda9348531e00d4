"""Task tokens: live only while their task waits, and never shown.

A token is a bearer credential (whoever holds it completes the task). It must go when its
task ends and when its execution ends, however either ends; a redrive issues new ones;
and it appears in no history event, no Flower ``argsrepr`` and no log line — only in the
activity's own input.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from celery import signals

import tests.control_activities  # noqa: F401 - registers ctl_* before the worker starts
from orchestrator import (
    TaskTokenError,
    activity,
    get_dead_letter,
    redrive_execution,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
    start_workflow,
    stop_execution,
)
from orchestrator.engine.logs import install
from orchestrator.engine.store import get_store
from orchestrator.language.tokens import REDACTED, execution_of, new_token, redact, redact_text
from tests.control_activities import ckey, ctext
from tests.helpers import machine, task, wait_until

log = logging.getLogger("tests.security.tokens")


@activity("sec_token_talker")
def sec_token_talker(value: dict[str, Any]) -> Any:
    """Keep the token for the test, log it (as careless code does) and return it."""
    get_store().client.set(ckey("token", value["tag"]), value["token"])
    log.warning("got task token %s for %s", value["token"], value["tag"])
    return {"submitted": value["token"]}


def token_task(tag: str, resource: str = "ctl_token_sink", **fields: Any) -> dict:
    return task(
        f"{resource}.waitForTaskToken",
        Parameters={"tag": tag, "token.$": "$$.Task.Token"},
        **fields,
    )


def wait_token(tag: str) -> str:
    return wait_until(lambda: ctext("token", tag), 10, message="task token stored")


def live_tokens(execution_id: str) -> dict[str, str]:
    store = get_store()
    return store.client.hgetall(store.keys.task_tokens(execution_id))


def waiting(handle: Any) -> bool:
    return any(s.status.startswith("WAITING") for s in handle.describe().steps)


# -- the form -----------------------------------------------------------------------------


def test_a_token_names_its_execution_and_is_unguessable():
    first, second = new_token("exec/1 ü"), new_token("exec/1 ü")
    assert first != second
    assert execution_of(first) == "exec/1 ü"
    assert execution_of("tt1.x.y") is None and execution_of("") is None
    text = json.dumps({"a": [first], "b": f"token={second};"})
    assert first not in redact_text(text) and second not in redact_text(text)
    assert redact({"t": first, first: [second]}) == {"t": REDACTED, REDACTED: [REDACTED]}


# -- lifecycle ----------------------------------------------------------------------------


def test_answered_token_is_gone(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag)}))
    token = wait_token(tag)
    wait_until(lambda: waiting(handle), 10)
    assert list(live_tokens(handle.execution_id)) == [token]
    send_task_success(token, {"ok": True})
    assert handle.result(15).status == "SUCCEEDED"
    assert live_tokens(handle.execution_id) == {}
    for answer in (
        lambda: send_task_success(token, {}),
        lambda: send_task_failure(token, "E"),
        lambda: send_task_heartbeat(token),
    ):
        with pytest.raises(TaskTokenError):
            answer()
    # Nothing goes to the global table of earlier versions.
    assert not get_store().client.exists(get_store().keys.tokens)


def test_failed_token_is_gone(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag)}))
    token = wait_token(tag)
    wait_until(lambda: waiting(handle), 10)
    send_task_failure(token, "Nope", "refused")
    assert handle.result(15).status == "FAILED"
    assert live_tokens(handle.execution_id) == {}
    with pytest.raises(TaskTokenError):
        send_task_heartbeat(token)


@pytest.mark.parametrize("fields", [{"TimeoutSeconds": 1}, {"HeartbeatSeconds": 1}])
def test_timed_out_token_is_gone(orchestrator, tag, fields):
    handle = start_workflow(machine({"T": token_task(tag, **fields)}))
    token = wait_token(tag)
    result = handle.result(20)
    assert result.status == "FAILED" and result.error in (
        "States.Timeout",
        "States.HeartbeatTimeout",
    )
    assert live_tokens(handle.execution_id) == {}
    with pytest.raises(TaskTokenError):
        send_task_heartbeat(token)


def test_stop_revokes_tokens_and_heartbeats(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag, HeartbeatSeconds=30)}))
    token = wait_token(tag)
    wait_until(lambda: waiting(handle), 10)
    send_task_heartbeat(token)  # accepted while it waits
    stop_execution(handle.execution_id, "Stop", "by test")
    assert live_tokens(handle.execution_id) == {}
    with pytest.raises(TaskTokenError):
        send_task_heartbeat(token)
    with pytest.raises(TaskTokenError):
        send_task_success(token, {})


def test_an_execution_that_fails_elsewhere_takes_its_waiting_tokens(orchestrator, tag):
    definition = machine(
        {
            "Both": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    machine({"Wait": token_task(tag)}),
                    machine({"Boom": task("ctl_fail_after_token", Parameters={"tag": tag})}),
                ],
            }
        }
    )
    handle = start_workflow(definition)
    token = wait_token(tag)
    get_store().client.set(ckey("fail", tag), "1")
    assert handle.result(20).status == "FAILED"
    assert live_tokens(handle.execution_id) == {}
    with pytest.raises(TaskTokenError):
        send_task_success(token, {})


@activity("ctl_fail_after_token")
def ctl_fail_after_token(value: dict[str, Any]) -> Any:
    """Fail once the test says so (after the sibling branch got its token)."""
    import time

    deadline = time.monotonic() + 20
    while not get_store().client.get(ckey("fail", value["tag"])):
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    raise RuntimeError("the other branch fails")


def test_redrive_issues_a_new_token_and_the_revoked_one_stays_invalid(orchestrator, tag):
    handle = start_workflow(machine({"T": token_task(tag)}), {"v": 1})
    old = wait_token(tag)
    wait_until(lambda: waiting(handle), 10)
    stop_execution(handle.execution_id)
    get_store().client.delete(ckey("token", tag))
    redrive_execution(handle.execution_id)
    new = wait_token(tag)
    assert new != old
    wait_until(lambda: waiting(handle), 10)
    with pytest.raises(TaskTokenError):
        send_task_success(old, {"by": "old"})
    send_task_success(new, {"by": "new"})
    result = handle.result(15)
    assert result.status == "SUCCEEDED" and result.output == {"by": "new"}


# -- redaction ----------------------------------------------------------------------------


@pytest.fixture
def published() -> Any:
    """The headers of every task message this process publishes during the test."""
    seen: list[dict[str, Any]] = []

    def record(headers: dict[str, Any] | None = None, **_: Any) -> None:
        seen.append(dict(headers or {}))

    signals.before_task_publish.connect(record, weak=False)
    try:
        yield seen
    finally:
        signals.before_task_publish.disconnect(record)


def test_tokens_are_redacted_from_history_argsrepr_and_logs(orchestrator, tag, published, caplog):
    install(caplog.handler, json_logs=False)  # what the worker's handlers get
    caplog.set_level(logging.INFO)
    definition = machine(
        {
            # A Task before the callback task (which is published on its own, not chained:
            # see test_flower_redaction.py).
            "First": task("echo", Next="Callback", ResultPath="$.first"),
            "Callback": token_task(tag, resource="sec_token_talker"),
        }
    )
    handle = start_workflow(definition, {"v": 1})
    token = wait_token(tag)
    wait_until(lambda: waiting(handle), 10)
    send_task_success(token, {"approved": True})
    assert handle.result(15).status == "SUCCEEDED"

    history = json.dumps([e.model_dump(mode="json") for e in handle.history()])
    assert token not in history
    assert REDACTED in history  # TaskScheduled's parameters and TaskSubmitted's output
    reprs = [h.get("argsrepr", "") for h in published if "Callback" in h.get("argsrepr", "")]
    assert reprs, published
    assert all(token not in r for r in reprs), reprs
    assert any(REDACTED in r for r in reprs), reprs
    for h in published:
        assert token not in json.dumps(h, default=str)
    assert f"got task token {REDACTED} for {tag}" in caplog.text
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in record.getMessage()


@pytest.mark.parametrize(
    "around", [("", ""), ("pre", "post"), ("https://approve.example/cb?t=", "&x=1"), ("a.", "_")]
)
def test_a_token_glued_into_a_longer_string_is_redacted(around: tuple[str, str]) -> None:
    token = new_token("exec-1")
    before, after = around
    assert redact_text(before + token + after) == before + REDACTED + after
    assert redact({"url": before + token + after}) == {"url": before + REDACTED + after}


def test_a_dead_letter_quoting_a_token_shows_it_redacted(orchestrator):
    from orchestrator.client.control import dead_letter_message

    token = new_token("exec-1")
    letter_id = dead_letter_message("Forged", f"cause {token}!", {"body": f"x{token}y"})
    letter = get_dead_letter(letter_id)
    assert token not in json.dumps(letter.model_dump(mode="json"))
    assert letter.cause == f"cause {REDACTED}!"
