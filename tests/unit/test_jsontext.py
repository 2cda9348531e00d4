"""JSON text: orjson's speed, the standard library's values."""

from __future__ import annotations

import datetime
import enum
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.language.interpreter import StepRecord
from orchestrator.language.jsontext import MAX_JSON_DEPTH, checked_dumps, dumps, json_depth, loads

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",))), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_any_json_value_reads_back_as_itself(value: Any) -> None:
    text = dumps(value)
    assert json.loads(text) == value
    assert loads(text) == value


@given(json_values)
def test_checked_dumps_accepts_every_json_value(value: Any) -> None:
    assert json.loads(checked_dumps(value)) == value


# 2**64 + 1: orjson reads it as a float (hypothesis found it coming back as 1.8e19).
@pytest.mark.parametrize(
    "number", [-(2**63) - 1, -(2**70), 2**64, 2**64 + 1, 10**30, -(2**63), 2**64 - 1]
)
def test_integers_beyond_64_bits_read_back_exactly(number: int) -> None:
    for value in (number, [number], {"n": number, "s": "-1234567890123456789012"}):
        assert loads(dumps(value)) == value


def test_compact_and_unescaped() -> None:
    assert dumps({"a": [1, 2.5, None, True], "b": "é✓"}) == '{"a":[1,2.5,null,true],"b":"é✓"}'


class Level(enum.IntEnum):
    HIGH = 2


class Name(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**70, 2**70),  # over 64 bits: orjson refuses, the fallback writes it
        ({1: "a"}, {"1": "a"}),  # non-string keys, written as the standard library does
        (Level.HIGH, 2),
        (Name("x"), "x"),
        ({"k": (1, 2)}, {"k": [1, 2]}),
    ],
)
def test_values_orjson_refuses_are_written_by_the_standard_library(
    value: Any, expected: Any
) -> None:
    text = dumps(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert loads(text) == expected


@dataclass
class Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        {"x": float("inf")},
        [float("-inf")],
        {1, 2},
        b"bytes",
        object(),
        uuid.uuid4(),
        datetime.datetime(2026, 1, 1),
        Point(1),
    ],
    ids=["nan", "inf", "-inf", "set", "bytes", "object", "uuid", "datetime", "dataclass"],
)
def test_checked_dumps_refuses_what_json_cannot_carry(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        checked_dumps(value)


def test_loads_reads_what_earlier_versions_wrote() -> None:
    # The standard library wrote NaN as a bare token, which orjson does not read.
    assert math.isnan(loads('{"x":NaN}')["x"])
    assert loads(str(2**70)) == 2**70


def test_a_record_stores_only_what_differs_from_the_defaults() -> None:
    record = StepRecord("T", {"a": 1}, 10.0, params={"a": 1}, activity="work", entered_event=3)
    assert json.loads(record.dumps()) == {
        "state": "T",
        "input": {"a": 1},
        "entered": 10.0,
        "params": {"a": 1},
        "activity": "work",
        "entered_event": 3,
    }
    assert StepRecord.loads(record.dumps()) == record


@pytest.mark.parametrize(
    ("name", "value"),
    [("params", 0), ("params", False), ("total", False), ("envelope", 0), ("retries", [])],
)
def test_a_record_keeps_a_value_equal_to_its_default_but_of_another_type(
    name: str, value: Any
) -> None:
    record = StepRecord("T", None, 1.0)
    setattr(record, name, value)
    assert StepRecord.loads(record.dumps()) == record
    assert type(getattr(StepRecord.loads(record.dumps()), name)) is type(value)


def test_a_full_record_from_an_earlier_version_still_loads() -> None:
    text = json.dumps(
        {
            "state": "T",
            "input": 1,
            "entered": 2.0,
            "attempt": 0,
            "retries": {},
            "params": 1,
            "activity": "a",
            "timeout": None,
            "kind": "task",
            "total": 0,
            "token": None,
            "envelope": False,
            "entered_event": 4,
            "tolerated_count": None,
            "tolerated_percentage": None,
        }
    )
    expected = StepRecord("T", 1, 2.0, params=1, activity="a", entered_event=4)
    assert StepRecord.loads(text) == expected


def _nested(depth: int, *, as_list: bool = False) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if as_list else {"a": value}
    return value


@pytest.mark.parametrize("as_list", [False, True])
def test_checked_dumps_refuses_nesting_over_the_limit(as_list: bool) -> None:
    assert json.loads(checked_dumps(_nested(MAX_JSON_DEPTH, as_list=as_list)))
    for depth in (MAX_JSON_DEPTH + 1, 100_000):
        with pytest.raises(ValueError, match=f"nested more than {MAX_JSON_DEPTH} levels deep"):
            checked_dumps(_nested(depth, as_list=as_list))


def test_checked_dumps_counts_only_real_brackets() -> None:
    value = {"text": "[{" * 500 + '\\"]', "list": [[["]]]"]]]}
    assert json.loads(checked_dumps(value)) == value
    assert json_depth(checked_dumps(value)) == 4
    assert json_depth("3") == 0


@pytest.mark.parametrize("value", ["\ud800", {"k\udfff": 1}, ["ok", "a\udc00b"]])
def test_checked_dumps_refuses_lone_surrogates(value: Any) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        checked_dumps(value)
    assert checked_dumps("\U0001f600") == '"\U0001f600"'  # a proper pair is fine
