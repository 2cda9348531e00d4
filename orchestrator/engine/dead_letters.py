"""Writing dead letters: messages no worker could process, kept where an operator sees them.

The engine writes them (the consumer refusing a message, a step of an unknown
execution, a failed execution's Flower marker); the client reads them
(:func:`orchestrator.list_dead_letters`) and re-exports these two functions.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from orchestrator.config import get_settings
from orchestrator.engine.messages import excerpt
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.language.jsontext import dumps
from orchestrator.language.tokens import redact_text


def dead_letter_message(
    error: str, cause: str, body: Any, *, execution_id: str | None = None, state: str | None = None
) -> str:
    """Record a message no worker could process; returns the dead letter's id.

    The letter keeps an excerpt of ``body`` (at most 2 KiB of text, or the value itself
    when its JSON fits), and the queue keeps at most ``ORCHESTRATOR_MAX_DEAD_LETTERS``.
    """
    store = get_store()
    settings = get_settings()
    letter_id = f"msg-{uuid.uuid4().hex}"
    now = time.time()
    letter = {
        "execution_id": execution_id,
        "state": state,
        "error": excerpt(error, 200),
        "cause": excerpt(cause),
        "input": excerpt(body),
        "timestamp": now,
    }
    # A dead letter quotes message bodies and causes: a task token in them must not show.
    store.add_dead_letter(letter_id, redact_text(dumps(letter)), now, settings.retention_seconds)
    trim_dead_letters(store)
    return letter_id


def trim_dead_letters(store: RedisStore) -> int:
    """Keep at most ``max_dead_letters`` dead letters (the oldest go); returns how many
    were dropped. One call after each write: it drops one letter, or none."""
    return store.trim_dead_letters(get_settings().max_dead_letters)
