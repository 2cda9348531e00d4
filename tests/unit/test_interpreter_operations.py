"""The interpreter's operations from outside a step: timers firing, stop, redrive and
lost workers (no Redis: the engine only reads, calls these and commits)."""

from __future__ import annotations

import json
import tokenize
from pathlib import Path
from typing import Any

import pytest

from orchestrator.language import interpreter as interpreter_module
from orchestrator.language import slots as slots_module
from orchestrator.language.interpreter import (
    Dispatch,
    Interpreter,
    Recovery,
    RedriveView,
    StepRecord,
    StepStatus,
    TimerKind,
    Transition,
)
from orchestrator.language.slots import Slot, SlotKind
from tests.unit.test_interpreter import NOW, DictReader, interp, machine, types

TASK = {"Type": "Task", "Resource": "work", "End": True}


def started(definition: Any, execution_input: Any = None) -> tuple[Interpreter, Transition]:
    it = interp(definition, execution_input)
    return it, it.start(NOW)


# -- timers ---------------------------------------------------------------------------


def test_an_execution_timeout_times_the_execution_out() -> None:
    it = interp(machine({"T": TASK}, TimeoutSeconds=5))
    tr = it.timer_fired(TimerKind.EXECUTION_TIMEOUT, "", None, None, 0, NOW)
    assert tr is not None and types(tr) == ["ExecutionTimedOut"]
    assert tr.end == {
        "status": "TIMED_OUT",
        "error": "States.Timeout",
        "cause": "execution exceeded its TimeoutSeconds of 5",
    }


@pytest.mark.parametrize(
    ("kind", "error", "cause"),
    [
        (TimerKind.TIMEOUT, "States.Timeout", "Task timed out"),
        (TimerKind.HEARTBEAT, "States.HeartbeatTimeout", "Task did not send a heartbeat in time"),
    ],
)
@pytest.mark.parametrize("status", [StepStatus.SCHEDULED, StepStatus.RUNNING, StepStatus.WAITING])
def test_a_task_timeout_fails_the_attempt_with_its_cause(
    kind: str, error: str, cause: str, status: str
) -> None:
    it, tr = started(machine({"T": TASK}))
    record = tr.records["T"]
    assert record is not None
    fired = it.timer_fired(kind, "T", status, record, 0, NOW + 1)
    assert fired is not None
    assert fired.events[0] == {
        "type": "TaskTimedOut",
        "ts": NOW + 1,
        "state": "T",
        "error": error,
        "cause": cause,
    }
    assert fired.end is not None and fired.end["error"] == error


def test_a_timer_that_no_longer_applies_triggers_nothing() -> None:
    it, tr = started(machine({"T": TASK}))
    record = tr.records["T"]
    assert record is not None
    fire = it.timer_fired
    assert fire(TimerKind.TIMEOUT, "T", None, record, 0, NOW) is None  # step gone
    assert fire(TimerKind.TIMEOUT, "T", StepStatus.SCHEDULED, None, 0, NOW) is None
    assert fire(TimerKind.TIMEOUT, "T", StepStatus.SCHEDULED, record, 1, NOW) is None  # attempt
    assert fire(TimerKind.TIMEOUT, "T", StepStatus.RETRYING, record, 0, NOW) is None
    assert fire(TimerKind.RETRY, "T", StepStatus.SCHEDULED, record, 0, NOW) is None
    assert fire(TimerKind.WAIT, "T", StepStatus.RUNNING, record, 0, NOW) is None
    assert fire("unknown", "T", StepStatus.RUNNING, record, 0, NOW) is None


def test_a_retry_timer_schedules_the_next_attempt() -> None:
    retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2}]
    it, tr = started(machine({"T": {**TASK, "Retry": retry}}))
    record = tr.records["T"]
    assert record is not None
    failed = it.task_failed("T", record, "Boom", "x", NOW)
    assert failed.statuses["T"] == StepStatus.RETRYING
    (due, (kind, key, attempt)), *_ = failed.timers
    retried = failed.records["T"]
    assert retried is not None and (kind, key, attempt) == (TimerKind.RETRY, "T", 1)
    fired = it.timer_fired(kind, key, StepStatus.RETRYING, retried, attempt, due)
    assert fired is not None and types(fired) == ["TaskScheduled"]
    assert fired.statuses["T"] == StepStatus.SCHEDULED and fired.dispatches[0].step_key == "T"


def test_a_wait_timer_leaves_the_wait_state() -> None:
    it, tr = started(machine({"W": {"Type": "Wait", "Seconds": 3, "Next": "T"}, "T": TASK}))
    (due, (kind, key, attempt)), *_ = tr.timers
    assert (kind, key, attempt) == (TimerKind.WAIT, "W", 0)
    record = tr.records["W"]
    assert record is not None
    fired = it.timer_fired(kind, key, StepStatus.WAITING, record, attempt, due)
    assert fired is not None
    assert types(fired) == ["WaitStateExited", "TaskStateEntered", "TaskScheduled"]


# -- stop -----------------------------------------------------------------------------


def test_stop_aborts_the_execution() -> None:
    tr = Interpreter.stop(NOW, "Halt", "by hand")
    assert tr.events == [
        {"type": "ExecutionAborted", "ts": NOW, "error": "Halt", "cause": "by hand"}
    ]
    assert tr.end == {"status": "ABORTED", "error": "Halt", "cause": "by hand"}
    assert not (tr.records or tr.statuses or tr.changes or tr.dispatches or tr.timers)
    bare = Interpreter.stop(NOW, None, None)
    assert bare.events == [{"type": "ExecutionAborted", "ts": NOW}]
    assert bare.end == {"status": "ABORTED", "error": None, "cause": None}


# -- lost workers ---------------------------------------------------------------------


def test_a_lost_step_is_dispatched_again_joined_or_forgotten() -> None:
    record = StepRecord(state="T", input={"a": 1}, entered=NOW, activity="work", params={"p": 2})
    again = Recovery(dispatch=Dispatch("M[0]/T", "T", "work", {"p": 2}))
    for status in (StepStatus.SCHEDULED, StepStatus.RUNNING):
        assert Interpreter.recover("M[0]/T", status, record) == again
    assert Interpreter.recover("M", StepStatus.JOINING, record) == Recovery(join=True)
    for other in (StepStatus.WAITING, StepStatus.RETRYING, StepStatus.FAILED, "", None):
        assert Interpreter.recover("M[0]/T", other, record) == Recovery()
    assert Interpreter.recover("M", StepStatus.JOINING, None) == Recovery()


# -- redrive --------------------------------------------------------------------------


def stored(tr: Transition) -> tuple[dict[str, str], DictReader]:
    """The record texts a transition leaves, and a reader over what it writes."""
    texts = {key: record.dumps() for key, record in tr.records.items() if record is not None}
    reader = DictReader({Slot.record(k): v for k, v in texts.items()})
    reader.slots.update({s: v for s, v in tr.changes.items() if v is not None})
    return texts, reader


def test_redrive_schedules_a_failed_task_again_from_attempt_zero() -> None:
    retry = [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1}]
    it, tr = started(machine({"T": {**TASK, "Retry": retry}}), {"x": 1})
    record = tr.records["T"]
    assert record is not None
    retried = it.task_failed("T", record, "Boom", "x", NOW).records["T"]
    assert retried is not None
    failed = it.task_failed("T", retried, "Boom", "x", NOW)
    assert failed.statuses["T"] == StepStatus.FAILED
    texts, reader = stored(failed)
    it.reader = reader
    tr = it.redrive(RedriveView(texts, [], redrives=2), NOW + 10)
    assert types(tr) == ["ExecutionRedriven", "TaskScheduled"]
    assert tr.events[0]["redriveCount"] == 3
    again = tr.records["T"]
    assert again is not None and again.attempt == 0 and again.retries == {}
    assert tr.statuses["T"] == StepStatus.SCHEDULED
    assert tr.dispatches == [Dispatch("T", "T", "work", {"x": 1})]


def test_redrive_enters_the_inline_state_a_scope_failed_in_and_clears_its_mark() -> None:
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "T"}],
            },
            "T": TASK,
        }
    )
    it, tr = started(definition, {"go": False})
    assert tr.end is not None and tr.end["error"] == "States.NoChoiceMatched"
    (mark, text), *others = [(s, v) for s, v in tr.changes.items() if v is not None]
    assert not others and mark == Slot.failed_at("", 0) and json.loads(text) == ["C", {"go": False}]
    texts, reader = stored(tr)
    it.reader = reader
    redriven = it.redrive(RedriveView(texts, [(mark, text)], redrives=0), NOW)
    # The same input fails the same way again, and marks it again.
    assert types(redriven) == ["ExecutionRedriven", "ChoiceStateEntered", "ExecutionFailed"]
    assert redriven.changes[mark] == text
    # A mark whose state now goes on: the mark goes, the scope goes on.
    view = RedriveView(texts, [(mark, '["C", {"go": true}]')], redrives=0)
    redriven = it.redrive(view, NOW)
    assert types(redriven) == [
        "ExecutionRedriven",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "TaskStateEntered",
        "TaskScheduled",
    ]
    assert redriven.changes[mark] is None and redriven.dispatches[0].step_key == "T"


def test_redrive_events_go_on_from_the_history_length() -> None:
    # A state entered by the redrive quotes its own StateEntered id in runtime errors:
    # the ids count from the start of the history, as on Step Functions.
    wait = {"Type": "Wait", "Seconds": 5, "End": True}
    it, tr = started(machine({"W": wait}), {})
    texts, reader = stored(tr)
    it.reader = reader
    it.history_base = 40
    redriven = it.redrive(RedriveView(texts, [], redrives=0), NOW)
    assert types(redriven) == ["ExecutionRedriven", "WaitStateEntered"]
    entered = redriven.records["W"]
    assert entered is not None and entered.entered_event == 42


def test_redrive_restarts_a_map_only_where_it_did_not_succeed() -> None:
    item = {
        "StartAt": "Pick",
        "States": {
            "Pick": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 1, "Next": "Work"}],
                "Default": "Bad",
            },
            "Work": TASK,
            "Bad": {"Type": "Fail", "Error": "Odd"},
        },
    }
    definition = machine({"M": {"Type": "Map", "ItemProcessor": item, "End": True}})
    it, tr = started(definition, [1, 2])
    # Item 1 failed in an inline state (its Fail), which failed the Map and the execution.
    assert tr.end is not None and tr.end["error"] == "Odd"
    assert tr.statuses["M"] == StepStatus.FAILED
    assert json.loads(tr.changes[Slot.failed_at("M", 1)] or "") == ["Bad", 2]
    texts, reader = stored(tr)
    marks = [(s, v) for s, v in tr.changes.items() if s.kind is SlotKind.FAILED_AT and v]
    it.reader = reader
    # A Fail state fails again: the Map fails again, before item 0's task is sent.
    again = it.redrive(RedriveView(texts, marks, redrives=0), NOW)
    assert types(again) == [
        "ExecutionRedriven",
        "TaskScheduled",
        "FailStateEntered",
        "MapIterationFailed",
        "MapStateFailed",
        "ExecutionFailed",
    ]
    assert again.statuses["M"] == StepStatus.FAILED and not again.dispatches
    # The failures are marked again, where they happened.
    assert again.changes[Slot.failed_at("M", 1)] == '["Bad",2]'
    assert again.changes[Slot.failed_at("", 0)] == '["M",[1,2]]'
    # Had item 1 failed where it can go on now, only it and item 0's task run again.
    marks = [(Slot.failed_at("M", 1), '["Pick", 1]')]
    redriven = it.redrive(RedriveView(texts, marks, redrives=0), NOW)
    assert redriven.statuses["M"] == StepStatus.RUNNING
    assert [d.step_key for d in redriven.dispatches] == ["M[0]/Work", "M[1]/Work"]
    assert redriven.changes[Slot.failed_at("M", 1)] is None
    assert "MapIterationStarted" not in types(redriven)


def test_redrive_skips_marks_of_ended_containers_and_of_scopes_restarted_by_a_step() -> None:
    definition = machine({"T": TASK})
    it = interp(definition)
    record = StepRecord(state="T", input=None, entered=NOW, activity="work")
    view = RedriveView(
        {"T": record.dumps()},
        # The top scope's mark goes with the restarted task; the mark of a container
        # that no longer runs is left.
        [(Slot.failed_at("", 0), '["T", null]'), (Slot.failed_at("Gone", 0), '["X", 1]')],
        redrives=0,
    )
    tr = it.redrive(view, NOW)
    assert types(tr) == ["ExecutionRedriven", "TaskScheduled"]
    assert not tr.changes


def test_redrive_starts_an_interrupted_wait_over_and_reissues_a_callback_token() -> None:
    callback = {"Type": "Task", "Resource": "work.waitForTaskToken", "End": True}
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 5, "End": True}}},
                    {"StartAt": "CB", "States": {"CB": callback}},
                ],
            }
        }
    )
    tokens = iter(["first", "second"])
    it = interp(definition, new_token=lambda: next(tokens))
    tr = it.start(NOW)
    texts, reader = stored(tr)
    it.reader = reader
    redriven = it.redrive(RedriveView(texts, [], redrives=0), NOW + 100)
    assert redriven.statuses["P"] == StepStatus.RUNNING
    assert "WaitStateEntered" in types(redriven)
    assert (NOW + 105, [TimerKind.WAIT, "P[0]/W", 0]) in redriven.timers
    assert redriven.tokens == {"second": ["P[1]/CB", 0], "first": None}
    cb = redriven.records["P[1]/CB"]
    assert cb is not None and cb.token == "second"


# -- the layout of the store is the engine's ------------------------------------------


def test_the_interpreter_names_no_step_hash_field() -> None:
    """No string literal of the language's interpreter holds a step-hash field name
    (``M|next``, ``|vars``...): it names slots, engine/records.py names fields."""
    for module in (interpreter_module, slots_module):
        path = Path(module.__file__ or "")
        with path.open("rb") as source:
            literals = [
                token.string
                for token in tokenize.tokenize(source.readline)
                if token.type == tokenize.STRING and "|" in token.string
            ]
        assert literals == [], f"{path.name} names step-hash fields: {literals}"
