"""Shape checks of task messages (orchestrator.engine.messages): pure logic."""

from __future__ import annotations

import pytest

from orchestrator.engine.messages import (
    EXCERPT_CHARS,
    BadMessage,
    activity_arguments,
    check_body,
    check_headers,
    dead_letter_arguments,
    dispatch_arguments,
    excerpt,
)

GOOD = {"lang": "py", "task": "echo", "id": "1", "timelimit": [None, None], "retries": 0}


def test_celery_headers_pass():
    headers = {
        **GOOD,
        "eta": "2030-01-01T00:00:00+00:00",
        "expires": None,
        "stamped_headers": ["a"],
        "stamps": {"a": 1},
        "argsrepr": "[]",
        "group_index": 2,
        "ignore_result": False,
        "custom": {"anything": 1},
    }
    assert check_headers(headers) == "echo"


@pytest.mark.parametrize(
    "change",
    [
        {"task": None},
        {"task": 5},
        {"task": ""},
        {"task": "x" * 300},
        {"id": None},
        {"id": []},
        {"timelimit": "x"},
        {"timelimit": [1]},
        {"timelimit": [True, None]},
        {"timelimit": [float("nan"), None]},
        {"retries": "1"},
        {"retries": -1},
        {"stamped_headers": 5},
        {"stamped_headers": [1]},
        {"eta": "tomorrow"},
        {"expires": 12},
        {"argsrepr": 5},
        {"ignore_result": "yes"},
        {"get": 1},
        {"_private": 1},
        {"stamps": []},
    ],
)
def test_bad_headers_are_refused(change):
    with pytest.raises(BadMessage):
        check_headers({**GOOD, **change})


def test_headers_that_are_not_a_mapping():
    for headers in (None, [], "x"):
        with pytest.raises(BadMessage):
            check_headers(headers)


@pytest.mark.parametrize(
    "body",
    [None, {}, 42, "str", [1, 2], [[], {}], [1, 2, 3], [[], [], {}], [[], {1: 2}, {}]]
    + [[[], {}, 5], [[], {}, {"chain": [5]}], [[], {}, {"update": None}]]
    + [[[], {}, {"chord": {"task": 1}}], [[], {}, {"callbacks": [{"task": "t", "args": 1}]}]],
)
def test_bad_bodies_are_refused(body):
    with pytest.raises(BadMessage):
        check_body(body)


def test_celery_bodies_pass():
    chain = [{"task": "t", "args": [1], "kwargs": {}, "options": {}, "subtask_type": None}]
    assert check_body([[1], {"a": 1}, {"chain": chain, "callbacks": None}]) == (
        [1],
        {"a": 1},
        {"chain": chain, "callbacks": None},
    )
    assert check_body([[], {}, None]) == ([], {}, {})


def test_activity_arguments():
    activity_arguments([{"x": 1}, "exec", "Step"], {}, 100, 50)
    activity_arguments([{"x": 1}], {}, 100, 50)  # a plain Celery call
    activity_arguments([], {"input": 1, "execution_id": "e", "step_key": "S"}, 100, 50)
    for args, kwargs in [
        ([{}, 5, "S"], {}),
        ([{}, "e", None], {}),
        ([{}, "e", ""], {}),
        ([{}, "e", "S", 4], {}),
        ([], {"bogus": 1}),
        ([{}], {"input": 1}),
    ]:
        with pytest.raises(BadMessage):
            activity_arguments(args, kwargs, 100, 50)
    with pytest.raises(BadMessage, match="over the 100-byte limit"):
        activity_arguments(["x" * 200, "e", "S"], {}, 100, 300)


def test_dispatch_and_dead_letter_arguments():
    dispatch_arguments([[["e", "h", [["S", "S", "echo", {"p": 1}]]]]], {})
    dead_letter_arguments(["e", "S", None, "cause"], {})
    for args in ([], [[["x"]]], [[["e", "h", [["S", 1, "echo", {}]]]]], [5], [[], []]):
        with pytest.raises(BadMessage):
            dispatch_arguments(args, {})
    for args in ([1, 2], [None, None, None, None], ["e", 1, None, None]):
        with pytest.raises(BadMessage):
            dead_letter_arguments(args, {})


def test_excerpt_is_bounded():
    assert excerpt({"small": 1}) == {"small": 1}
    assert excerpt(b"null") == "null"
    for body in (b"A" * 10**6, "A" * 10**6, {"a": "A" * 10**6}, b"\xff" * 10**5):
        text = excerpt(body)
        assert isinstance(text, str) and len(text) <= EXCERPT_CHARS + 40
