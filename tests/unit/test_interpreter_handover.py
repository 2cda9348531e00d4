"""Runs of inline states of any length: after ``max_inline_states`` the interpreter hands
the rest over to a transition of its own (a ``continue`` step and a timer due at once),
and the history quota is the only bound (no Redis: a dict stands in for the store)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.language.interpreter import (
    Interpreter,
    Recovery,
    RedriveView,
    StepRecord,
    StepStatus,
    TimerKind,
    Transition,
)
from orchestrator.language.slots import Slot
from tests.unit.test_interpreter import NOW, DictReader, apply_fields, interp, machine, types


def loop(iterations_path: str = "$.n", body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Pass/Choice loop counting ``$.i`` up to ``$.n`` (two states per iteration)."""
    return {
        "StartAt": "Count",
        "States": {
            "Count": body
            or {
                "Type": "Pass",
                "Parameters": {"n.$": "$.n", "i.$": "States.MathAdd($.i, 1)"},
                "Next": "More",
            },
            "More": {
                "Type": "Choice",
                "Choices": [
                    {"Variable": "$.i", "NumericLessThanPath": iterations_path, "Next": "Count"}
                ],
                "Default": "Done",
            },
            "Done": {"Type": "Succeed"},
        },
    }


class Store:
    """What the engine keeps of one execution, enough to drive the interpreter: slots,
    the history's length, timers, join counters; transitions go through the history
    quota as the engine's commit sends them."""

    def __init__(self, it: Interpreter) -> None:
        self.it = it
        self.reader = DictReader()
        it.reader = self.reader
        self.events: list[dict[str, Any]] = []
        self.timers: list[tuple[float, list[Any]]] = []
        self.end: dict[str, Any] | None = None
        self.transitions = 0

    def commit(self, tr: Transition, step_key: str | None = None) -> None:
        tr = self.it.within_history(tr, step_key)
        self.transitions += 1
        apply_fields(self.reader, tr)
        for key, status in tr.statuses.items():
            self.reader.slots[Slot.status(key)] = status
        self.events += tr.events
        self.timers += tr.timers
        self.end = tr.end
        for container in tr.joins:
            ended = int(self.reader.slots.get(Slot.ended(container), "0")) + 1
            self.reader.slots[Slot.ended(container)] = str(ended)
            record = StepRecord.loads(self.reader.slots[Slot.record(container)])
            if ended == record.total:
                self.commit(self.it.join(container, record, NOW), container)

    def run(self, tr: Transition) -> None:
        """Commit ``tr``, then fire due timers (continuations) until none is left."""
        self.it.history_base = len(self.events)
        self.commit(tr)
        while self.timers and self.end is None:
            _, (kind, key, attempt) = self.timers.pop(0)
            text = self.reader.slots.get(Slot.record(key))
            self.it.history_base = len(self.events)
            fired = self.it.timer_fired(
                kind,
                key,
                self.reader.slots.get(Slot.status(key)),
                None if text is None else StepRecord.loads(text),
                attempt,
                NOW,
            )
            if fired is not None:
                self.commit(fired, key)


def records(store: Store) -> dict[str, str]:
    """Step key -> record text of the steps the store holds."""
    return {s.owner: text for s, text in store.reader.slots.items() if s == Slot.record(s.owner)}


def test_a_long_loop_is_handed_over_every_max_inline_states() -> None:
    it = interp(machine(loop()["States"]), {"n": 30, "i": 0}, max_inline_states=24)
    tr = it.start(NOW)
    # 24 states entered, then the 25th is handed over: not entered, not failed.
    assert types(tr).count("PassStateEntered") + types(tr).count("ChoiceStateEntered") == 24
    assert tr.end is None and not tr.dispatches
    [(key, record)] = [(k, r) for k, r in tr.records.items() if r is not None]
    assert record.kind == "continue" and tr.statuses == {key: StepStatus.SCHEDULED}
    last_event = len(tr.events)
    assert record.entered_event == last_event
    assert tr.timers == [(NOW, [TimerKind.CONTINUE, key, last_event])]
    # The state the run stopped before is entered next, with the input it would have had.
    assert (key, record.state, record.input) == ("Count", "Count", {"n": 30, "i": 12})
    resumed = it.timer_fired(TimerKind.CONTINUE, key, StepStatus.SCHEDULED, record, last_event, NOW)
    assert resumed is not None and resumed.events[0]["type"] == "PassStateEntered"
    assert resumed.records[key] is not None  # (the loop comes back to it: handed over again)
    assert resumed.changes[Slot.status(key)] is None and resumed.statuses[key] == "SCHEDULED"
    assert resumed.events[0]["input"] == {"n": 30, "i": 12}


def test_a_handed_over_loop_runs_to_the_end() -> None:
    it = interp(machine(loop()["States"]), {"n": 500, "i": 0}, max_inline_states=100)
    store = Store(it)
    store.run(it.start(NOW))
    assert store.end == {"status": "SUCCEEDED", "output": {"n": 500, "i": 500}}
    # 1,000 states and a Succeed: 11 transitions, no state entered twice at a seam.
    assert store.transitions == 11
    entered = [e for e in store.events if e["type"].endswith("StateEntered")]
    assert len(entered) == 1001
    assert records(store) == {}  # the last continue step went with its transition


def test_twenty_thousand_iterations_succeed_under_a_raised_history_quota() -> None:
    # 80,002 events: over the default quota, within 100,000 (the integration tests run
    # 5,000 iterations end to end).
    it = interp(
        machine(loop()["States"]),
        {"n": 20_000, "i": 0},
        max_inline_states=1000,
        max_history_events=100_000,
    )
    store = Store(it)
    store.run(it.start(NOW))
    assert store.end == {"status": "SUCCEEDED", "output": {"n": 20_000, "i": 20_000}}
    assert len(store.events) == 80_004


def test_the_history_quota_is_the_only_bound_of_a_loop() -> None:
    it = interp(machine(loop()["States"]), {"n": 20_000, "i": 0})  # defaults: 1000, 25,000
    store = Store(it)
    store.run(it.start(NOW))
    assert store.end is not None and store.end["status"] == "FAILED"
    assert store.end["error"] == "States.Runtime"
    assert store.end["cause"] == (
        "The execution reached the quota of 25000 history events "
        "(ORCHESTRATOR_MAX_HISTORY_EVENTS) in state 'Count'."
    )
    # Every transition before the failing one fitted (each adds about 2,000 events).
    assert 23_000 < len(store.events) <= 25_001
    assert store.events[-1]["type"] == "ExecutionFailed"


def test_variables_assigned_before_a_hand_over_are_read_after_it() -> None:
    body = {
        "Type": "Pass",
        "Parameters": {"n.$": "$.n", "i.$": "States.MathAdd($.i, 1)"},
        "Assign": {"total.$": "States.MathAdd($total, $.i)"},
        "Next": "More",
    }
    states = loop(body=body)["States"]
    states["Done"] = {"Type": "Pass", "Parameters": {"total.$": "$total"}, "End": True}
    states = {"Init": {"Type": "Pass", "Assign": {"total": 0}, "Next": "Count"}, **states}
    it = interp(machine(states), {"n": 40, "i": 0}, max_inline_states=7)
    store = Store(it)
    store.run(it.start(NOW))
    assert store.end == {"status": "SUCCEEDED", "output": {"total": sum(range(1, 41))}}


def test_a_parallel_branch_hands_over_under_its_own_step_key() -> None:
    branch = {**loop(), "StartAt": "Count"}
    definition = machine(
        {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Quick", "States": {"Quick": {"Type": "Pass", "End": True}}},
                    branch,
                ],
                "End": True,
            }
        }
    )
    it = interp(definition, {"n": 20, "i": 0}, max_inline_states=9)
    tr = it.start(NOW)
    assert [t[1][:2] for t in tr.timers] == [[TimerKind.CONTINUE, "P[1]/More"]]
    assert tr.joins == ["P"]  # the quick branch ended; the other one goes on
    store = Store(it)
    store.run(tr)
    output = {"n": 20, "i": 20}
    assert store.end == {"status": "SUCCEEDED", "output": [{"n": 20, "i": 0}, output]}
    resumed = [e for e in store.events if e.get("key", "").startswith("P[1]/")]
    assert len([e for e in resumed if e["type"].endswith("StateEntered")]) == 41


def test_map_iterations_hand_over_and_finish_in_order() -> None:
    item = loop("$.n")
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": item,
                "MaxConcurrency": 2,
                "End": True,
            }
        }
    )
    items = [{"n": n, "i": 0} for n in (3, 12, 1, 8)]
    it = interp(definition, {"items": items}, max_inline_states=5)
    store = Store(it)
    store.run(it.start(NOW))
    assert store.end == {"status": "SUCCEEDED", "output": [{"n": n, "i": n} for n in (3, 12, 1, 8)]}
    assert records(store) == {}  # every continue step went with its iteration


def test_a_continue_timer_that_no_longer_names_its_hand_over_fires_nothing() -> None:
    it = interp(machine(loop()["States"]), {"n": 30, "i": 0}, max_inline_states=4)
    tr = it.start(NOW)
    record = tr.records["Count"]
    assert record is not None
    generation = record.entered_event
    fire = it.timer_fired
    # The next hand-over under the same key, another kind of step, another status, gone.
    assert fire(TimerKind.CONTINUE, "Count", "SCHEDULED", record, generation - 1, NOW) is None
    task = StepRecord(state="Count", input=None, entered=NOW, entered_event=generation)
    assert fire(TimerKind.CONTINUE, "Count", "SCHEDULED", task, generation, NOW) is None
    assert fire(TimerKind.CONTINUE, "Count", "FAILED", record, generation, NOW) is None
    assert fire(TimerKind.CONTINUE, "Count", None, None, generation, NOW) is None
    assert fire(TimerKind.CONTINUE, "Count", "SCHEDULED", record, generation, NOW) is not None


def test_a_continue_step_is_never_dispatched_as_a_lost_task() -> None:
    record = StepRecord(state="Count", input={}, entered=NOW, kind="continue")
    assert Interpreter.recover("Count", StepStatus.SCHEDULED, record) == Recovery()


@pytest.mark.parametrize("prefix", ["", "P[1]/"])
def test_redrive_enters_the_state_a_stopped_hand_over_was_to_enter(prefix: str) -> None:
    branch = {**loop(), "StartAt": "Count"}
    states = (
        loop()["States"]
        if not prefix
        else {
            "P": {
                "Type": "Parallel",
                "Branches": [
                    {"StartAt": "Quick", "States": {"Quick": {"Type": "Pass", "End": True}}},
                    branch,
                ],
                "End": True,
            }
        }
    )
    it = interp(machine(states), {"n": 30, "i": 0}, max_inline_states=6)
    store = Store(it)
    store.commit(it.start(NOW))
    # Stopped here (the engine writes the stop; the continue step and its timer stay).
    key = f"{prefix}Count"
    texts = records(store)
    assert json.loads(texts[key])["kind"] == "continue"
    it.history_base = len(store.events) + 1  # (the ExecutionAborted)
    redriven = it.redrive(RedriveView(texts, [], redrives=0), NOW + 5)
    assert types(redriven)[:2] == ["ExecutionRedriven", "PassStateEntered"]
    assert redriven.events[1]["input"] == {"n": 30, "i": 3}
    assert redriven.events[1].get("key", "Count") == key
    # Handed over again after 6 states: a new hand-over, named by a later event id.
    again = redriven.records[key]
    assert again is not None and again.kind == "continue"
    assert again.entered_event > StepRecord.loads(texts[key]).entered_event
    assert redriven.timers == [(NOW + 5, [TimerKind.CONTINUE, key, again.entered_event])]
    # The old timer, fired late, finds the new hand-over and leaves it to its own timer.
    old = StepRecord.loads(texts[key]).entered_event
    store.commit(redriven)
    current = StepRecord.loads(store.reader.slots[Slot.record(key)])
    assert it.timer_fired(TimerKind.CONTINUE, key, "SCHEDULED", current, old, NOW) is None
