"""Task tokens of ``.waitForTaskToken`` tasks: their form, and their redaction.

A token names its execution and carries 256 random bits: ``tt1.{execution id, base64url}
.{secret}``. The execution part lets a callback find the token among its own
execution's tokens (``{p}:x:{id}:tok``, see :mod:`orchestrator.engine.keys`), so an execution
that ends takes its tokens with it in the same write, and nothing scans a global table.

A token is a bearer credential: whoever holds it completes the task. The activity gets
it in its input; everywhere else the orchestrator writes text — history events, the
``argsrepr`` Flower shows, log lines — it appears as :data:`REDACTED`. The fixed form
makes that a pattern match, wherever the token was copied to.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from typing import Any

#: What a task token is replaced with in history, Flower's arguments and logs.
REDACTED = "<task token redacted>"

#: Every token starts with this (a cheap test before the pattern).
MARK = "tt1."

#: A token: the mark, the execution id in base64url, and 43 characters of secret. Nothing
#: is required around it: a token glued into a longer string (``pre{token}post``, a
#: callback URL) is found too, and exactly its 43 secret characters are replaced.
TOKEN_PATTERN = re.compile(r"tt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")


def new_token(execution_id: str) -> str:
    """A new, unguessable task token of ``execution_id``."""
    encoded = base64.urlsafe_b64encode(execution_id.encode()).decode().rstrip("=")
    return f"{MARK}{encoded}.{secrets.token_urlsafe(32)}"


def execution_of(token: str) -> str | None:
    """The execution id a token names, or None when it is not a token of this form."""
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        return None
    encoded = token[len(MARK) : token.rindex(".")]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def redact_text(text: str) -> str:
    """``text`` with every task token in it replaced by :data:`REDACTED`."""
    if MARK not in text:
        return text
    return TOKEN_PATTERN.sub(REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of a JSON value with every task token in its strings redacted."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(k): redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value
