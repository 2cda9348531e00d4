"""engine/records.py: the one place that decodes step statuses, records and set members."""

from __future__ import annotations

import json

from orchestrator.engine import records
from orchestrator.language.slots import Slot, SlotKind


def test_a_claimed_status_splits_into_status_and_claim_token() -> None:
    assert records.base_status("RUNNING:abc:def") == "RUNNING"
    assert records.claim_token("RUNNING:abc:def") == "abc:def"
    assert records.base_status("WAITING") == "WAITING"
    assert records.claim_token("WAITING") is None
    assert records.base_status(None) == "" and records.claim_token(None) is None


def test_live_steps_skip_statuses_counters_and_records_that_are_not_objects() -> None:
    raw = {
        "Map[0]/A": json.dumps({"state": "A", "attempt": 1, "token": "t"}),
        "Map[0]/A|s": "RUNNING:claim",
        "Map": json.dumps({"state": "Map"}),
        "Map|s": "RUNNING",
        "Map|t": "3",
        "Map|i2": '{"x": 1}',
        "Bad": "[1, 2]",
        "Broken": "{",
        "Loose": json.dumps({"state": "Loose"}),
    }
    steps = {step.key: step for step in records.live_steps(raw)}
    assert sorted(steps) == ["Loose", "Map", "Map[0]/A"]
    assert steps["Map[0]/A"].status == "RUNNING" and steps["Map[0]/A"].claim == "claim"
    assert steps["Map[0]/A"].record["attempt"] == 1
    assert steps["Loose"].status == "" and steps["Loose"].claim is None
    assert records.step_statuses(raw) == {"Map[0]/A": "RUNNING", "Map": "RUNNING"}
    assert sorted(records.record_texts(raw)) == ["Bad", "Broken", "Loose", "Map", "Map[0]/A"]
    assert records.step_record(raw, "Bad") is None and records.step_record(raw, "Map|t") is None
    assert records.step_record(raw, "Map") == {"state": "Map"}


def test_field_names_follow_the_documented_layout() -> None:
    assert records.status_field("Map[3]/Charge") == "Map[3]/Charge|s"
    in_steps = {
        Slot.record("M[0]/T"): "M[0]/T",
        Slot.status("M[0]/T"): "M[0]/T|s",
        Slot.variables(""): "|vars",
        Slot.next_item("M"): "M|next",
        Slot.total("M"): "M|t",
        Slot.refill("M"): "M|c",
        Slot.ended("M"): "M|n",
        Slot.failures("M"): "M|f",
        Slot.deferred("M"): "M|d",
        Slot.tolerance("M"): "M|tol",
        Slot.failed_at("", 0): "|x0",
    }
    in_branches = {
        Slot.variables("M[3]/"): ("M", "v3"),
        Slot.variables("P[1]/M[30]/"): ("P[1]/M", "v30"),
        Slot.item_input("M", 12): ("M", "k0"),
        Slot.item_input("M", records.ITEM_CHUNK * 2 + 5): ("M", "k2"),
        Slot.result("P", 0): ("P", "r0"),
        Slot.failed_at("M[1]/P", 2): ("M[1]/P", "x2"),
    }
    # Every kind is laid out somewhere; BRANCHES is only ever deleted (the whole hash).
    kinds = {slot.kind for slot in [*in_steps, *in_branches]}
    assert kinds | {SlotKind.BRANCHES} == set(SlotKind)
    for slot, field in in_steps.items():
        assert records.branch_location(slot) is None
        assert records.field_name(slot) == field
        assert records.slot_of(field) == slot
    for slot, location in in_branches.items():
        assert records.branch_location(slot) == location, slot
    assert records.branch_location(Slot.branches("M")) is None


def test_item_chunks_round_trip() -> None:
    text = records.item_chunk_text(130, ['{"a":1}', "2", '"x"'])
    assert json.loads(text) == [130, {"a": 1}, 2, "x"]
    assert records.chunk_items(text) == {130: '{"a":1}', 131: "2", 132: '"x"'}


def test_branch_scopes_and_marks() -> None:
    assert records.branch_scope("") is None
    assert records.branch_scope("Map[3]/") == ("Map", 3)
    assert records.branch_scope("P[0]/Map[12]/") == ("P[0]/Map", 12)
    assert records.branch_scope("odd]/") is None
    marks = [("M", "x4", '["B", 1]'), ("M", "xy", "no"), ("M[1]/P", "x0", '["C", 2]')]
    assert records.branch_failure_marks(marks) == [
        (Slot.failed_at("M", 4), '["B", 1]'),
        (Slot.failed_at("M[1]/P", 0), '["C", 2]'),
    ]


def test_fields_of_no_known_layout_are_no_slot() -> None:
    for field in ("M|q", "M|i", "M|ix", "M|r-1", "M|n2", "M|"):
        assert records.slot_of(field) is None, field


def test_failure_marks_in_hash_order() -> None:
    raw = {
        "M|x1": '["B", 1]',
        "M": "{}",
        "|x0": '["M", []]',
        "M|x": "not a mark",
        "M[0]/|vars": "{}",
    }
    assert records.failure_marks(raw) == [
        (Slot.failed_at("M", 1), '["B", 1]'),
        (Slot.failed_at("", 0), '["M", []]'),
    ]


def test_timer_and_lease_members_round_trip() -> None:
    member = records.timer_member("retry", "exec-1", 'P[0]/"odd" key', 2)
    assert records.parse_timer_member(member) == ("retry", "exec-1", 'P[0]/"odd" key', 2)
    lease = records.lease_member("exec-1", "Map[1]/B")
    assert records.parse_lease_member(lease) == ("exec-1", "Map[1]/B")
    assert json.loads(lease) == ["exec-1", "Map[1]/B"]
