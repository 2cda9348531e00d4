"""Definition text nested past the limit is refused by a linear scan before any parser
recurses through it (PyYAML took seconds to reach Python's recursion limit)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.errors import DefinitionError
from orchestrator.language.definition import parse_definition
from orchestrator.language.definition.validate import MAX_NESTING_DEPTH

#: Generous bound for refusing a ~20 KB text on a loaded machine (it takes about 1 ms).
FAST_S = 0.5


def pass_with_result(result: str) -> str:
    return "StartAt: P\nStates:\n  P: {Type: Pass, End: true, Result: " + result + "}\n"


def block_nested(levels: int) -> str:
    lines = ["StartAt: P", "States:", "  P:", "    Type: Pass", "    End: true", "    Result:"]
    lines += [" " * (6 + 2 * i) + f"k{i}:" for i in range(levels)]
    lines.append(" " * (6 + 2 * levels) + "x: 1")
    return "\n".join(lines) + "\n"


DEEP_TEXTS = {
    "yaml flow": pass_with_result("[" * 10_000 + "]" * 10_000),
    "yaml flow mappings": pass_with_result("{a: " * 10_000 + "1" + "}" * 10_000),
    "json": json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})[:-2]
    + ', "Result": '
    + "[" * 10_000
    + "]" * 10_000
    + "}}}",
    "yaml block": block_nested(300),
    "yaml compact sequences": "StartAt: P\nStates:\n  P:\n    Result:\n" + "- " * 5_000 + "x\n",
}


@pytest.mark.parametrize("name", sorted(DEEP_TEXTS))
def test_deep_text_is_refused_quickly(name: str, tmp_path: Path) -> None:
    text = DEEP_TEXTS[name]
    suffix = ".json" if name == "json" else ".yaml"
    path = tmp_path / f"deep{suffix}"
    path.write_text(text, encoding="utf-8")
    for source in (text, path):
        started = time.perf_counter()
        with pytest.raises(DefinitionError) as caught:
            parse_definition(source)
        elapsed = time.perf_counter() - started
        assert elapsed < FAST_S, (name, elapsed)
        assert f"nested more than {MAX_NESTING_DEPTH} levels deep" in str(caught.value)


def test_text_within_the_limit_still_loads() -> None:
    # Brackets inside quoted strings and comments are text, not nesting.
    quoted = json.dumps("[" * 500)
    text = (
        "StartAt: P\nStates:\n  P:\n    Type: Pass\n    End: true  # " + "[" * 500 + "\n"
        "    Result:\n      a: " + quoted + "\n      b: '" + "{" * 500 + "'\n"
        "      c: " + "[" * 80 + "]" * 80 + "\n"
    )
    machine = parse_definition(text)
    assert machine.states["P"].result["a"] == "[" * 500
    assert parse_definition(block_nested(80)).states["P"].type == "Pass"
    # Nor are brackets inside block-style plain scalars, however many.
    plain = "".join(f"      k{i}: x[y {{z\n" for i in range(300))
    machine = parse_definition(text.split("    Result:")[0] + "    Result:\n" + plain)
    assert machine.states["P"].result["k299"] == "x[y {z"


def test_deep_but_within_the_scan_still_meets_the_validation() -> None:
    # The scan never overcounts; what it lets through is refused by the validation.
    with pytest.raises(DefinitionError, match=f"nested more than {MAX_NESTING_DEPTH}"):
        parse_definition(pass_with_result("[" * 99 + "]" * 99))
