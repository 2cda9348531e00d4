"""Values callers hand in (execution inputs, task outputs): checked and turned into JSON text."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import InvalidInputError
from orchestrator.language.jsontext import checked_dumps


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
