"""engine/records.py: the one place that decodes step statuses, records and set members."""

from __future__ import annotations

import json

from orchestrator.engine import records


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
    assert records.window_fields("M") == ("M|next", "M|t", "M|c")
    assert records.item_field("M", 7) == "M|i7"


def test_timer_and_lease_members_round_trip() -> None:
    member = records.timer_member("retry", "exec-1", 'P[0]/"odd" key', 2)
    assert records.parse_timer_member(member) == ("retry", "exec-1", 'P[0]/"odd" key', 2)
    lease = records.lease_member("exec-1", "Map[1]/B")
    assert records.parse_lease_member(lease) == ("exec-1", "Map[1]/B")
    assert json.loads(lease) == ["exec-1", "Map[1]/B"]
