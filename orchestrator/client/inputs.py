"""Values callers hand in (inputs, task outputs, ids, names, causes), checked at the door."""

from __future__ import annotations

import re
from typing import Any

from orchestrator.config import MAX_PRIORITY
from orchestrator.errors import ExecutionNotFound, InvalidInputError
from orchestrator.language.arns import execution_id_from
from orchestrator.language.jsontext import SURROGATE_RE, checked_dumps


def input_text(value: Any, limit: int, what: str = "execution input") -> str:
    """The JSON text of a value from a caller (``what`` names it in errors).

    Raises:
        InvalidInputError: it is not plain JSON (see ``checked_dumps``: lone surrogates
            and nesting deeper than 100 levels included) or over ``limit`` bytes.
    """
    try:
        text = checked_dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{what} is not JSON-serializable: {exc}") from None
    size = len(text.encode())
    if size > limit:
        raise InvalidInputError(
            f"{what} is {size} bytes, over the limit of {limit} bytes "
            "(ORCHESTRATOR_MAX_INPUT_BYTES)"
        )
    return text


#: Execution names: Step Functions' rule (1-80 characters, no whitespace, brackets,
#: wildcards, quotes or control characters), which also keeps them safe in Redis keys;
#: lone surrogates are refused too (no UTF-8 text, and so no Redis key, can hold them).
EXECUTION_NAME = re.compile(
    r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,80}$"
)


def execution_priority(value: object, default: int) -> int:
    """An execution's priority from a caller: an integer from 0 (least urgent) to
    ``MAX_PRIORITY`` (9, most urgent); None is ``default``.

    Raises:
        InvalidInputError: anything else (a bool, a float, a string, out of range).
    """
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise InvalidInputError(
            f"priority {value!r}: use an integer from 0 (least urgent) to {MAX_PRIORITY} "
            f"(most urgent); without one, an execution gets ORCHESTRATOR_DEFAULT_PRIORITY "
            f"({default})"
        )
    return value


#: Longest error name and cause a caller may give (as the engine stores them).
MAX_ERROR_CHARS = 256
MAX_CAUSE_CHARS = 32768


def known_id(value: object) -> str:
    """``value`` as an id an execution (or dead letter) could have; an execution's ARN
    (``arn:aws:states:REGION:ACCOUNT:execution:WORKFLOW:NAME``, any region and account)
    stands for its id.

    Raises:
        ExecutionNotFound: no execution can have this id (not a string, empty, over 80
            characters, or holding characters names may not hold).
    """
    if not isinstance(value, str):
        raise ExecutionNotFound(repr(value))
    execution_id = execution_id_from(value)
    if not EXECUTION_NAME.match(execution_id):
        raise ExecutionNotFound(value)
    return execution_id


def caller_text(value: str | None, what: str, limit: int) -> str | None:
    """A caller's error name or cause, checked: a string of at most ``limit`` characters
    that UTF-8 can carry, or None.

    Raises:
        InvalidInputError: it is not a string, is too long, or holds a lone surrogate.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInputError(f"{what} is {len(value)} characters, over the limit of {limit}")
    if SURROGATE_RE.search(value):
        raise InvalidInputError(f"{what} holds a lone surrogate, which UTF-8 cannot carry")
    return value
