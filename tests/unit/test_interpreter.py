"""The pure interpreter: transitions computed without Redis or Celery."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.language.definition import parse_definition
from orchestrator.language.interpreter import (
    MAP_REFILL,
    MAP_START_BUDGET,
    MAP_WINDOW,
    ExecutionInfo,
    Interpreter,
    Reader,
    StepRecord,
    StepStatus,
    Transition,
    ancestors,
    state_name,
)
from orchestrator.language.slots import Slot

NOW = 1_700_000_000.0


class DictReader(Reader):
    """A reader over a plain dict of slots standing in for the step hash."""

    def __init__(self, slots: dict[Slot, str] | None = None) -> None:
        self.slots = slots or {}

    def get(self, slot: Slot) -> str | None:
        return self.slots.get(slot)


def machine(states: dict[str, Any], start: str | None = None, **top: Any) -> Any:
    return parse_definition({"StartAt": start or next(iter(states)), "States": states, **top})


def interp(definition: Any, execution_input: Any = None, **kw: Any) -> Interpreter:
    info = ExecutionInfo("exec-1", "exec-1", "wf", NOW, execution_input)
    return Interpreter(definition, info, lambda state: state.resource, rand=lambda: 0.5, **kw)


def types(tr: Transition) -> list[str]:
    return [e["type"] for e in tr.events]


def apply_fields(reader: DictReader, tr: Transition) -> None:
    for slot, value in tr.changes.items():
        if value is None:
            reader.slots.pop(slot, None)
        else:
            reader.slots[slot] = value
    for key, record in tr.records.items():
        if record is None:
            reader.slots.pop(Slot.record(key), None)
        else:
            reader.slots[Slot.record(key)] = record.dumps()


def test_inline_states_run_until_a_task() -> None:
    sm = machine(
        {
            "P": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.p", "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.p.x", "NumericEquals": 1, "Next": "T"}],
                "Default": "F",
            },
            "T": {"Type": "Task", "Resource": "work", "InputPath": "$.p", "End": True},
            "F": {"Type": "Fail", "Error": "E"},
        }
    )
    tr = interp(sm, {"a": 1}).start(NOW)
    assert types(tr) == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "TaskStateEntered",
        "TaskScheduled",
    ]
    [dispatch] = tr.dispatches
    assert (dispatch.step_key, dispatch.activity, dispatch.params) == ("T", "work", {"x": 1})
    assert tr.statuses == {"T": StepStatus.SCHEDULED}
    assert tr.records["T"].input == {"a": 1, "p": {"x": 1}}
    assert tr.end is None


def test_task_success_applies_result_path_and_ends() -> None:
    sm = machine({"T": {"Type": "Task", "Resource": "w", "ResultPath": "$.r", "End": True}})
    it = interp(sm, {"a": 1})
    record = it.start(NOW).records["T"]
    tr = it.task_succeeded("T", record, 42, NOW + 1)
    assert types(tr) == ["TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"]
    assert tr.end == {"status": "SUCCEEDED", "output": {"a": 1, "r": 42}}
    assert "T" not in tr.statuses and tr.changes[Slot.status("T")] is None  # finished: forgotten
    assert tr.released == ["T"]


def test_retry_sets_a_timer_with_backoff_and_counts_per_retrier() -> None:
    sm = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "w",
                "End": True,
                "Retry": [
                    {
                        "ErrorEquals": ["A"],
                        "IntervalSeconds": 2,
                        "BackoffRate": 3,
                        "MaxAttempts": 2,
                    },
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 0},
                ],
            }
        }
    )
    it = interp(sm, {})
    record = it.start(NOW).records["T"]
    first = it.task_failed("T", record, "A", "boom", NOW)
    assert first.statuses["T"] == StepStatus.RETRYING
    assert first.timers == [(NOW + 2, ["retry", "T", 1])]
    second = it.task_failed("T", first.records["T"], "A", "boom", NOW)  # type: ignore[arg-type]
    assert second.timers == [(NOW + 6, ["retry", "T", 2])]
    third = it.task_failed("T", second.records["T"], "A", "boom", NOW)  # type: ignore[arg-type]
    assert third.end is not None and third.end["status"] == "FAILED"
    # The second retrier matches everything else but never retries.
    other = it.task_failed("T", StepRecord.loads(record.dumps()), "B", "x", NOW)
    assert other.end == {
        "status": "FAILED",
        "error": "B",
        "cause": "x",
        "state": "T",
        "state_input": {},
    }


def test_retry_due_schedules_the_next_attempt_with_retry_count() -> None:
    sm = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "w",
                "Parameters": {"n.$": "$$.State.RetryCount"},
                "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL"]}],
            }
        }
    )
    it = interp(sm)
    record = it.start(NOW).records["T"]
    failed = it.task_failed("T", record, "E", "", NOW)
    again = it.retry_due("T", failed.records["T"], NOW + 1)  # type: ignore[arg-type]
    assert again.dispatches[0].params == {"n": 1}
    assert again.statuses["T"] == StepStatus.SCHEDULED


def test_catch_puts_error_at_result_path_and_continues() -> None:
    sm = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "w",
                "Catch": [
                    {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.err", "Next": "H"}
                ],
                "End": True,
            },
            "H": {"Type": "Pass", "End": True},
        }
    )
    it = interp(sm, {"a": 1})
    record = it.start(NOW).records["T"]
    tr = it.task_failed("T", record, "Oops", "bad", NOW)
    assert "T" not in tr.statuses and tr.changes[Slot.status("T")] is None  # caught: forgotten
    assert tr.end == {
        "status": "SUCCEEDED",
        "output": {"a": 1, "err": {"Error": "Oops", "Cause": "bad"}},
    }


def test_timeout_is_a_timer_and_fails_with_states_timeout() -> None:
    sm = machine({"T": {"Type": "Task", "Resource": "w", "TimeoutSeconds": 5, "End": True}})
    it = interp(sm)
    start = it.start(NOW)
    assert start.timers == [(NOW + 5, ["timeout", "T", 0])]
    tr = it.task_failed("T", start.records["T"], "States.Timeout", "late", NOW + 5, timed_out=True)
    assert types(tr)[0] == "TaskTimedOut"
    assert tr.end is not None and tr.end["error"] == "States.Timeout"


def test_no_choice_matched_fails_execution() -> None:
    sm = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "D"}],
            },
            "D": {"Type": "Succeed"},
        }
    )
    tr = interp(sm, {}).start(NOW)
    assert tr.end is not None and tr.end["error"] == "States.NoChoiceMatched"


def test_missing_path_is_states_runtime() -> None:
    sm = machine({"P": {"Type": "Pass", "InputPath": "$.missing", "End": True}})
    tr = interp(sm, {}).start(NOW)
    assert tr.end is not None and tr.end["error"] == "States.Runtime"


def test_wait_sets_a_timer_and_exits_when_due() -> None:
    sm = machine(
        {
            "W": {"Type": "Wait", "SecondsPath": "$.s", "Next": "D"},
            "D": {"Type": "Succeed"},
        }
    )
    it = interp(sm, {"s": 30})
    tr = it.start(NOW)
    assert tr.timers == [(NOW + 30, ["wait", "W", 0])]
    assert tr.statuses["W"] == StepStatus.WAITING
    done = it.wait_over("W", tr.records["W"], NOW + 30)  # type: ignore[arg-type]
    assert types(done)[:1] == ["WaitStateExited"]
    assert done.end == {"status": "SUCCEEDED", "output": {"s": 30}}


def test_execution_timeout_timer() -> None:
    sm = machine({"W": {"Type": "Wait", "Seconds": 100, "End": True}}, TimeoutSeconds=10)
    it = interp(sm)
    assert (NOW + 10, ["exec_timeout", "", 0]) in it.start(NOW).timers
    assert it.timed_out(NOW + 10).end["status"] == "TIMED_OUT"  # type: ignore[index]


def test_parallel_fans_out_and_joins_in_branch_order() -> None:
    sm = machine(
        {
            "P": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {
                        "StartAt": "A",
                        "States": {"A": {"Type": "Task", "Resource": "a", "End": True}},
                    },
                    {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": 2, "End": True}}},
                ],
            }
        }
    )
    reader = DictReader()
    it = interp(sm, {"in": 1}, reader=reader)
    tr = it.start(NOW)
    assert [d.step_key for d in tr.dispatches] == ["P[0]/A"]
    assert tr.joins == ["P"]  # branch B ended inline
    assert tr.changes[Slot.total("P")] == "2" and tr.changes[Slot.result("P", 1)] == "2"
    apply_fields(reader, tr)
    done = it.task_succeeded("P[0]/A", tr.records["P[0]/A"], 1, NOW)  # type: ignore[arg-type]
    assert done.joins == ["P"]
    apply_fields(reader, done)
    joined = it.join("P", StepRecord.loads(reader.slots[Slot.record("P")]), NOW)
    assert joined.end == {"status": "SUCCEEDED", "output": [1, 2]}


def test_map_starts_a_window_and_refills_it() -> None:
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "w", "End": True}},
                },
                "End": True,
            }
        }
    )
    reader = DictReader()
    it = interp(sm, [10, 20, 30], reader=reader)
    tr = it.start(NOW)
    assert [d.params for d in tr.dispatches] == [{"v": 10, "i": 0}, {"v": 20, "i": 1}]
    assert tr.changes[Slot.next_item("M")] == "2"
    scheduled = [e for e in tr.events if e["type"] == "TaskScheduled"]
    assert [(e["state"], e["key"]) for e in scheduled] == [("T", "M[0]/T"), ("T", "M[1]/T")]
    apply_fields(reader, tr)
    done = it.task_succeeded("M[0]/T", tr.records["M[0]/T"], "a", NOW)  # type: ignore[arg-type]
    assert [d.params for d in done.dispatches] == [{"v": 30, "i": 2}]
    assert done.changes[Slot.next_item("M")] == "3"


def unbounded_map() -> Any:
    """A Map (MaxConcurrency 0) whose iterations run one Task."""
    return machine(
        {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "w", "End": True}},
                },
                "End": True,
            }
        }
    )


def test_map_window_is_bounded_when_unlimited() -> None:
    sm = unbounded_map()
    tr = interp(sm, list(range(MAP_WINDOW + 10))).start(NOW)
    assert len(tr.dispatches) == MAP_WINDOW
    assert json.loads(tr.changes[Slot.item_input("M", MAP_WINDOW)]) == MAP_WINDOW  # type: ignore[arg-type]
    assert tr.changes[Slot.refill("M")] == str(MAP_REFILL)


def test_an_ending_item_of_an_unbounded_map_starts_a_batch_of_items() -> None:
    sm = unbounded_map()
    reader = DictReader()
    items = list(range(MAP_WINDOW + MAP_REFILL + 5))
    it = interp(sm, items, reader=reader)
    tr = it.start(NOW)
    apply_fields(reader, tr)
    first = it.task_succeeded("M[0]/T", tr.records["M[0]/T"], "a", NOW)  # type: ignore[arg-type]
    started = [int(d.step_key[2:].split("]")[0]) for d in first.dispatches]
    assert started == list(range(MAP_WINDOW, MAP_WINDOW + MAP_REFILL))
    assert first.changes[Slot.next_item("M")] == str(MAP_WINDOW + MAP_REFILL)
    apply_fields(reader, first)
    second = it.task_succeeded("M[1]/T", tr.records["M[1]/T"], "b", NOW)  # type: ignore[arg-type]
    assert len(second.dispatches) == 5  # only what is left
    apply_fields(reader, second)
    third = it.task_succeeded("M[2]/T", tr.records["M[2]/T"], "c", NOW)  # type: ignore[arg-type]
    assert third.dispatches == [] and Slot.next_item("M") not in third.changes


def test_a_transition_starts_the_window_and_a_budget_of_inline_items() -> None:
    """Pass items end inline and start the next ones: the first transition starts the
    window (MAP_WINDOW) plus MAP_START_BUDGET items, and defers the rest to a refill."""
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        }
    )
    whole = interp(sm, list(range(MAP_WINDOW + MAP_START_BUDGET)), reader=DictReader())
    tr = whole.start(NOW)
    assert types(tr).count("MapIterationStarted") == MAP_WINDOW + MAP_START_BUDGET
    assert tr.timers == [] and tr.joins.count("M") == MAP_WINDOW + MAP_START_BUDGET
    more = interp(sm, list(range(MAP_WINDOW + MAP_START_BUDGET + 7)), reader=DictReader())
    tr = more.start(NOW)
    assert types(tr).count("MapIterationStarted") == MAP_WINDOW + MAP_START_BUDGET
    assert int(tr.changes[Slot.deferred("M")]) >= 7  # what the ending items asked for
    assert [timer for _, timer in tr.timers] == [["refill", "M", 0]]


def test_a_bounded_map_refills_one_item_at_a_time() -> None:
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "MaxConcurrency": 2,
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "w", "End": True}},
                },
                "End": True,
            }
        }
    )
    tr = interp(sm, list(range(10))).start(NOW)
    assert Slot.refill("M") not in tr.changes and len(tr.dispatches) == 2


def test_a_failing_item_reads_the_maps_tolerance_not_its_record() -> None:
    """The Map's record holds its whole input (589 KB for 100,000 numbers): a failing
    item reads the tolerance kept beside it, not the record (nor does a refill)."""
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "ToleratedFailureCount": 1,
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "w", "End": True}},
                },
                "End": True,
            }
        }
    )

    class NoMapRecord(DictReader):
        record_allowed = False

        def get(self, slot: Slot) -> str | None:
            assert self.record_allowed or slot != Slot.record("M"), "read the Map's record"
            return super().get(slot)

    reader = NoMapRecord()
    it = interp(sm, [1, 2, 3], reader=reader)
    tr = it.start(NOW)
    assert json.loads(tr.changes[Slot.tolerance("M")]) == [1, None]  # type: ignore[arg-type]
    apply_fields(reader, tr)
    first = it.task_failed("M[0]/T", tr.records["M[0]/T"], "E", "x", NOW)  # type: ignore[arg-type]
    assert "MapIterationFailed" in types(first) and "MapStateFailed" not in types(first)
    assert first.changes[Slot.failures("M")] == "1"
    refill = it.timer_fired("refill", "M", StepStatus.RUNNING, None, 0, NOW)
    assert refill is not None and refill.events == []  # nothing deferred
    apply_fields(reader, first)
    # The second failure is over the tolerance: the Map fails (its record is read then).
    reader.record_allowed = True
    second = it.task_failed("M[1]/T", tr.records["M[1]/T"], "E", "x", NOW)  # type: ignore[arg-type]
    assert "MapStateFailed" in types(second) and second.end is not None
    assert second.end["error"] == "States.ExceedToleratedFailureThreshold"


def test_a_map_started_before_its_tolerance_slot_reads_its_record() -> None:
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "ToleratedFailurePercentage": 50,
                "ItemProcessor": {
                    "StartAt": "T",
                    "States": {"T": {"Type": "Task", "Resource": "w", "End": True}},
                },
                "End": True,
            }
        }
    )
    reader = DictReader()
    it = interp(sm, [1, 2, 3, 4], reader=reader)
    tr = it.start(NOW)
    apply_fields(reader, tr)
    del reader.slots[Slot.tolerance("M")]  # as a Map started by an earlier version left it
    first = it.task_failed("M[0]/T", tr.records["M[0]/T"], "E", "x", NOW)  # type: ignore[arg-type]
    assert first.changes[Slot.failures("M")] == "1" and first.end is None


def test_empty_map_succeeds_at_once() -> None:
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}},
                "End": True,
            }
        }
    )
    assert interp(sm, []).start(NOW).end == {"status": "SUCCEEDED", "output": []}


def test_wait_for_task_token_puts_token_in_context() -> None:
    sm = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "ask.waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token"},
                "End": True,
            }
        }
    )
    it = Interpreter(
        sm,
        ExecutionInfo("e", "e", "wf", NOW),
        lambda s: "ask",
        new_token=lambda: "tok-1",
    )
    tr = it.start(NOW)
    assert tr.dispatches[0].params == {"token": "tok-1"}
    assert tr.tokens == {"tok-1": ["T", 0]}
    waiting = it.task_waiting("T", tr.records["T"], NOW, {"sent": True})  # type: ignore[arg-type]
    assert waiting.statuses["T"] == StepStatus.WAITING
    assert waiting.events[0]["type"] == "TaskSubmitted"
    assert waiting.events[0]["output"] == {"sent": True}


def test_lambda_invoke_takes_function_name_and_wraps_result() -> None:
    sm = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "fn", "Payload": {"x.$": "$.x"}},
                "End": True,
            }
        }
    )
    info = ExecutionInfo("e", "e", "wf", NOW, {"x": 1})
    it = Interpreter(sm, info, lambda s: "x", resolve_name=str.upper)
    tr = it.start(NOW)
    assert (tr.dispatches[0].activity, tr.dispatches[0].params) == ("FN", {"x": 1})
    record = tr.records["T"]
    assert record is not None and record.envelope
    done = it.task_succeeded("T", record, {"ok": True}, NOW)
    assert done.end is not None
    assert done.end["output"]["Payload"] == {"ok": True}
    assert done.end["output"]["StatusCode"] == 200


@pytest.mark.parametrize(
    ("key", "expected"),
    [("A", []), ("P[0]/A", ["P"]), ("M[3]/P[1]/A", ["M", "M[3]/P"])],
)
def test_ancestors(key: str, expected: list[str]) -> None:
    assert ancestors(key) == expected
    assert state_name(key) == "A"


# -- failures while computing a transition, quotas ---------------------------------------


def _broken_resolver(state: Any) -> str:
    raise RuntimeError("resolver exploded")


def test_an_unexpected_exception_is_a_runtime_failure_of_the_state() -> None:
    sm = machine({"T": {"Type": "Task", "Resource": "work", "End": True}})
    info = ExecutionInfo("exec-1", "exec-1", "wf", NOW, {})
    tr = Interpreter(sm, info, _broken_resolver).start(NOW)
    assert types(tr) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "EvaluationFailed",
        "ExecutionFailed",
    ]
    assert tr.events[2]["error"] == "States.Runtime"
    assert "RuntimeError: resolver exploded" in tr.events[2]["cause"]
    assert tr.end is not None and tr.end["error"] == "States.Runtime"
    assert not tr.dispatches


def test_a_value_that_cannot_be_stored_fails_its_state() -> None:
    sm = machine(
        {"P": {"Type": "Pass", "Output": "{% $string('\\ud800') %}", "End": True}},
        QueryLanguage="JSONata",
    )
    tr = interp(sm, {}).start(NOW)
    assert types(tr)[-2:] == ["EvaluationFailed", "ExecutionFailed"]
    assert tr.end is not None and tr.end["error"] == "States.Runtime"
    assert "cannot be stored as JSON" in tr.end["cause"]
    for event in tr.events:  # everything the transition holds is storable
        json.dumps(event).encode()


def test_evaluation_failures_are_recorded_before_each_retry() -> None:
    sm = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "work",
                "Arguments": "{% $error('boom') %}",
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 1}],
                "End": True,
            }
        },
        QueryLanguage="JSONata",
    )
    machine_interp = interp(sm, {})
    tr = machine_interp.start(NOW)
    assert types(tr) == ["ExecutionStarted", "TaskStateEntered", "EvaluationFailed"]
    assert tr.statuses["T"] == StepStatus.RETRYING
    record = tr.records["T"]
    assert record is not None
    again = machine_interp.retry_due("T", record, NOW + 1)
    assert types(again) == ["EvaluationFailed", "ExecutionFailed"]
    assert again.events[0]["state"] == "T"


def test_no_choice_matched_is_not_an_evaluation_failure() -> None:
    sm = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "S"}],
            },
            "S": {"Type": "Succeed"},
        }
    )
    tr = interp(sm, {}).start(NOW)
    assert "EvaluationFailed" not in types(tr)
    assert tr.end is not None and tr.end["error"] == "States.NoChoiceMatched"


def test_an_output_over_the_quota_is_data_limit_exceeded() -> None:
    sm = machine(
        {"P": {"Type": "Pass", "Output": "{% $pad('', 2000, 'x') %}", "End": True}},
        QueryLanguage="JSONata",
    )
    tr = interp(sm, {}, max_result_bytes=1000).start(NOW)
    assert tr.end is not None and tr.end["error"] == "States.DataLimitExceeded"
    assert "over the payload quota of 1000 bytes" in tr.end["cause"]
    assert all(len(json.dumps(e)) < 1000 for e in tr.events)


def test_task_parameters_and_assign_over_the_quota() -> None:
    big = "{% $pad('', 2000, 'x') %}"
    for state in (
        {"Type": "Task", "Resource": "work", "Arguments": {"a": big}, "End": True},
        {"Type": "Pass", "Assign": {"v": big}, "End": True},
    ):
        tr = interp(
            machine({"S": state}, QueryLanguage="JSONata"), {}, max_result_bytes=1000
        ).start(NOW)
        assert tr.end is not None and tr.end["error"] == "States.DataLimitExceeded", state
        assert not tr.dispatches
        assert Slot.variables("") not in tr.changes


def test_variables_of_a_scope_have_their_own_quota() -> None:
    sm = machine(
        {
            "A": {"Type": "Pass", "Assign": {"a": "{% $pad('', 600, 'x') %}"}, "Next": "B"},
            "B": {"Type": "Pass", "Assign": {"b": "{% $pad('', 600, 'x') %}"}, "End": True},
        },
        QueryLanguage="JSONata",
    )
    fine = interp(sm, {}, max_result_bytes=1000, max_variables_bytes=5000).start(NOW)
    assert fine.end is not None and fine.end["status"] == "SUCCEEDED"
    over = interp(sm, {}, max_result_bytes=1000, max_variables_bytes=1000).start(NOW)
    assert over.end is not None and over.end["error"] == "States.DataLimitExceeded"
    assert "ORCHESTRATOR_MAX_VARIABLES_BYTES" in over.end["cause"]


def test_a_map_result_over_the_quota_fails_the_map() -> None:
    sm = machine(
        {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "P",
                    "States": {"P": {"Type": "Pass", "Result": "x" * 300, "End": True}},
                },
                "Catch": [{"ErrorEquals": ["States.DataLimitExceeded"], "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        }
    )
    machine_interp = interp(sm, [1, 2, 3, 4], max_result_bytes=1000)
    reader = DictReader()
    machine_interp.reader = reader
    tr = machine_interp.start(NOW)
    apply_fields(reader, tr)
    record = StepRecord.loads(reader.slots[Slot.record("M")])
    joined = machine_interp.join("M", record, NOW)
    # Caught by its name (States.ALL would not catch it, as on Step Functions).
    assert "EvaluationFailed" in types(joined)
    assert joined.end is not None and joined.end["status"] == "SUCCEEDED"


def test_the_history_quota_fails_the_execution() -> None:
    sm = machine({"P": {"Type": "Pass", "Next": "Q"}, "Q": {"Type": "Pass", "End": True}})
    machine_interp = interp(sm, {}, max_history_events=10)
    tr = machine_interp.start(NOW)
    assert machine_interp.within_history(tr, None) is tr  # 6 events
    machine_interp.history_base = 8
    late = machine_interp.start(NOW)
    failed = machine_interp.within_history(late, "P")
    assert types(failed) == ["ExecutionFailed"]
    assert failed.end is not None and failed.end["error"] == "States.Runtime"
    assert "quota of 10 history events" in failed.end["cause"]


def test_failed_transition_keeps_only_storable_text() -> None:
    sm = machine({"T": {"Type": "Task", "Resource": "work", "End": True}})
    tr = interp(sm, {}).failed_transition(NOW, "T", ValueError("bad \ud800 " + "x" * 40000))
    assert tr.released == ["T"]
    assert tr.end is not None and tr.end["error"] == "States.Runtime"
    cause = tr.end["cause"]
    assert len(cause) <= 32768
    cause.encode()


def test_task_failure_causes_are_bounded() -> None:
    sm = machine({"T": {"Type": "Task", "Resource": "work", "End": True}})
    machine_interp = interp(sm, {})
    tr = machine_interp.start(NOW)
    record = tr.records["T"]
    assert record is not None
    failed = machine_interp.task_failed("T", record, "E", "\ud800" + "y" * 100_000, NOW)
    assert failed.end is not None
    assert len(failed.end["cause"]) <= 32768
    failed.end["cause"].encode()


@pytest.mark.parametrize(
    "state, execution_input",
    [
        ({"Type": "Wait", "SecondsPath": "$.s", "End": True}, {"s": 1e30}),
        ({"Type": "Wait", "SecondsPath": "$.s", "End": True}, {"s": 100_000_000}),
        ({"Type": "Wait", "TimestampPath": "$.t", "End": True}, {"t": "9999-01-01T00:00:00Z"}),
        ({"Type": "Wait", "Seconds": "{% 1e30 %}", "QueryLanguage": "JSONata", "End": True}, {}),
        (
            {"Type": "Wait", "Timestamp": "{% $states.input.t %}", "QueryLanguage": "JSONata"}
            | {"End": True},
            {"t": "9999-01-01T00:00:00Z"},
        ),
        ({"Type": "Wait", "Timestamp": "9999-01-01T00:00:00Z", "End": True}, {}),
        (
            {"Type": "Task", "Resource": "w", "TimeoutSecondsPath": "$.s", "End": True},
            {"s": 1e300},
        ),
        (
            {"Type": "Task", "Resource": "w", "HeartbeatSecondsPath": "$.s", "End": True},
            {"s": 1e300},
        ),
        (
            {"Type": "Task", "Resource": "w", "QueryLanguage": "JSONata", "End": True}
            | {"TimeoutSeconds": "{% 1e300 %}"},
            {},
        ),
    ],
)
def test_a_timer_past_the_maximum_fails_the_state(
    state: dict[str, Any], execution_input: Any
) -> None:
    tr = interp(machine({"S": state}), execution_input).start(NOW)
    assert tr.end is not None and tr.end["error"] == "States.Runtime", tr.end
    assert "99999999" in tr.end["cause"]
    assert not tr.timers


def test_a_wait_of_the_maximum_is_accepted() -> None:
    it = interp(
        machine({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}), {"s": 99_999_999}
    )
    assert it.start(NOW).timers == [(NOW + 99_999_999, ["wait", "W", 0])]
