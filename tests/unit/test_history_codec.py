"""The compact stored form of history events (orchestrator/engine/history.py): every
event reads back as it was written, old entries (field ``event``) still read."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.engine.history import (
    CODES,
    FIELD,
    OLD_FIELD,
    TYPES,
    base_ms,
    decode,
    decode_text,
    encode_event,
    event_type,
)
from orchestrator.errors import StatesError

START = 1764700000.1234567
BASE = math.floor(START * 1000)  # the record's start, in milliseconds

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.sampled_from(["A", "Pass 1", "M", "", "a/b", "x[0]"])
step_keys = st.sampled_from(["M[0]/A", "P[1]/M[3]/B", "M[12]/", "a/b/c"])
timestamps = (
    st.integers(-(10**6), 10**10).map(lambda ms: (BASE + ms) / 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(0, 2**40)
    | st.sampled_from([START, 0.0, -0.0, True, "2026-12-03", None])
)
detail_names = st.sampled_from(
    ["input", "output", "index", "error", "cause", "resource", "length", "type", "ts", "x", "id"]
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        event["type"] = draw(st.sampled_from(sorted(CODES)) | st.text(max_size=6) | json_values)
    if draw(st.integers(0, 9)):
        event["ts"] = draw(timestamps)
    shape = draw(st.integers(0, 4))
    if shape == 1:  # a top-level state, as Interpreter.event writes it
        event["state"] = draw(names)
    elif shape == 2:  # a state inside a branch or an item
        key = draw(step_keys)
        event["state"] = key.rpartition("/")[2]
        event["key"] = key
    elif shape == 3:  # anything else
        event["state"] = draw(names | json_values)
        event["key"] = draw(step_keys | names | json_values)
    elif shape == 4:
        event["key"] = draw(step_keys)
    for name, value in draw(st.lists(st.tuples(detail_names, json_values), max_size=4)):
        if name != "id":
            event.setdefault(name, value)
    return event


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 and 1.0, False and 0 differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def stored(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as the old form stored and read it: through JSON."""
    return json.loads(json.dumps(event))


@settings(max_examples=600, deadline=None)
@given(events(), st.booleans())
def test_every_event_reads_back_as_it_was_written(event: dict[str, Any], known: bool) -> None:
    text = encode_event(event, BASE if known else None)
    back = decode({FIELD: text}, 7, BASE)
    assert back is not None
    assert back.pop("id") == 7
    assert back == stored(event)


def interpreter_events() -> list[dict[str, Any]]:
    ts = round(START + 12.3456, 3)
    return [
        {"type": "ExecutionStarted", "ts": round(START, 3), "input": {"items": [1, 2]}},
        {"type": "MapStateEntered", "ts": ts, "state": "M", "input": {"items": [1, 2]}},
        {"type": "MapStateStarted", "ts": ts, "state": "M", "length": 2},
        {"type": "MapIterationStarted", "ts": ts, "state": "M", "index": 1},
        {"type": "PassStateEntered", "ts": ts, "state": "P", "key": "M[1]/P", "input": 2},
        {"type": "PassStateExited", "ts": ts, "state": "P", "key": "M[1]/P", "output": 2},
        {"type": "MapIterationSucceeded", "ts": ts, "state": "M", "index": 1},
        {"type": "MapStateSucceeded", "ts": ts, "state": "M"},
        {"type": "TaskStarted", "ts": START + 1.0000001, "state": "T", "key": "M[1]/T"},
        {
            "type": "TaskScheduled",
            "ts": ts,
            "state": "T",
            "resource": "orders.pay",
            "parameters": {"order": 1},
            "timeoutInSeconds": 30,
        },
        {"type": "MapStateFailed", "ts": ts, "state": "M"},
        {"type": "ExecutionFailed", "ts": ts, "error": "E", "cause": "c"},
    ]


@pytest.mark.parametrize("event", interpreter_events(), ids=lambda e: e["type"])
def test_the_interpreters_events_read_back_with_their_keys_in_order(event: dict[str, Any]) -> None:
    back = decode({FIELD: encode_event(event, BASE)}, 1, BASE)
    assert back is not None
    assert same(back, {**event, "id": 1})


def test_a_map_items_events_are_short() -> None:
    item = interpreter_events()[3:7]
    texts = [encode_event(e, BASE) for e in item]
    assert texts == [
        '[0,12346,"M",1]',
        '[2,12346,"M[1]/P",2]',
        '[3,12346,"M[1]/P",2]',
        '[1,12346,"M",1]',
    ]
    old = sum(len(json.dumps(e, separators=(",", ":"))) for e in item)
    assert sum(map(len, texts)) * 3 < old


def test_without_a_main_detail_or_a_code_the_type_is_named() -> None:
    # MapStateFailed without its error; a type the table does not know.
    assert (
        encode_event({"type": "MapStateFailed", "state": "M"}, BASE)
        == '["MapStateFailed",null,"M"]'
    )
    assert encode_event({"type": "Custom", "x": 1}, BASE) == '["Custom",null,null,{"x":1}]'
    assert encode_event({}, BASE) == "[null]"


def test_timestamps_count_from_the_start_in_milliseconds_where_exact() -> None:
    assert encode_event({"ts": round(START, 3)}, BASE) == "[null,0]"
    assert encode_event({"ts": round(START + 2, 3)}, BASE) == "[null,2000]"
    # Finer than a millisecond, or no start known: the timestamp itself.
    assert encode_event({"ts": START}, BASE) == f"[null,{START!r}]"
    assert encode_event({"ts": round(START, 3)}, None) == f"[null,{round(START, 3)!r}]"
    # Not a float: in the rest, as it was.
    assert encode_event({"ts": 5}, BASE) == '[null,null,null,{"ts":5}]'


def test_an_entry_with_a_relative_timestamp_needs_the_start() -> None:
    text = encode_event({"type": "TaskStarted", "ts": round(START, 3)}, BASE)
    assert decode({FIELD: text}, 1, None) is None
    assert decode_text(text, BASE) == {"type": "TaskStarted", "ts": round(START, 3)}


def test_old_entries_still_read() -> None:
    old = {"type": "PassStateEntered", "ts": 1764700000.5, "state": "P", "input": {"a": 1}}
    text = json.dumps(old)
    assert decode({OLD_FIELD: text}, 3, None) == {**old, "id": 3}
    assert decode({OLD_FIELD: text}, 3, BASE) == {**old, "id": 3}
    # In a LIST history, and the compact form appended after them.
    assert decode_text(text, None) == old


def test_the_base_is_the_records_start_in_whole_milliseconds() -> None:
    assert base_ms(START) == base_ms(repr(START)) == BASE == 1764700000123
    assert base_ms(None) is None


def test_codes_are_one_per_type() -> None:
    assert len(CODES) == len(TYPES)
    assert CODES["MapIterationStarted"] == 0  # stored: never renumbered


def test_an_event_that_cannot_be_stored_fails_as_the_interpreters_encode_does() -> None:
    with pytest.raises(StatesError):
        encode_event({"type": "PassStateExited", "output": {"x": object()}}, BASE)


@given(events(), st.booleans())
def test_an_events_type_reads_without_decoding_the_rest(event: dict[str, Any], known: bool) -> None:
    # What result() looks at in the newest entry: the type a full decode gives, if a string.
    text = encode_event(event, BASE if known else None)
    kind = event.get("type")
    expected = kind if isinstance(kind, str) else None
    assert event_type({FIELD: text}) == expected
    assert event_type({OLD_FIELD: json.dumps(event)}) == expected


@pytest.mark.parametrize("text", ["5", '"x"', "[]", "[99999]", "[-1]", "[null]", "[true]", "{}"])
def test_an_entry_of_no_known_shape_has_no_type(text: str) -> None:
    assert event_type({FIELD: text}) is None
