"""Messages no worker can process end in the dead-letter queue; pickle is refused."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from orchestrator import (
    get_dead_letter,
    list_dead_letters,
    redrive_execution,
    start_workflow,
)
from orchestrator.client.control import dead_letter_message
from orchestrator.engine.celery_app import app
from orchestrator.engine.messages import EXCERPT_CHARS
from orchestrator.engine.store import get_store
from orchestrator.testing import process_settings
from tests.helpers import machine, task, wait_until


def _letter_with(marker: str) -> Any:
    for letter in list_dead_letters(limit=1000):
        if marker in json.dumps(letter.model_dump(mode="json")):
            return letter
    return None


def _publish_raw(queue: str, body: Any, **options: Any) -> None:
    with app.connection_for_write() as connection:
        producer = connection.Producer()
        producer.publish(
            body,
            exchange=queue,
            routing_key=queue,
            headers={"task": "echo", "id": "raw-message", "lang": "py"},
            **options,
        )


def test_pickled_message_is_refused_and_dead_lettered(orchestrator, tag):
    class Bomb:
        # Unpickling this would run code: the worker must never do it.
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, (f"unpickled {tag}",))

    payload = pickle.dumps([Bomb(), tag])
    _publish_raw(
        orchestrator.settings.queue,
        payload,
        content_type="application/x-python-serialize",
        content_encoding="binary",
    )
    letter = wait_until(lambda: _letter_with("x-python-serialize"), 15, message="dead letter")
    assert letter.error == "ContentDisallowed"
    assert letter.execution_id is None


def test_malformed_json_is_dead_lettered(orchestrator, tag):
    _publish_raw(
        orchestrator.settings.queue,
        f'{{"not json {tag}',
        content_type="application/json",
        content_encoding="utf-8",
    )
    letter = wait_until(lambda: _letter_with(tag), 15, message="dead letter")
    assert "undecodable message (application/json)" in (letter.cause or "")


def test_unknown_task_is_dead_lettered(orchestrator, tag):
    app.send_task("no-such-activity", args=[{"tag": tag}], queue=orchestrator.settings.queue)
    letter = wait_until(lambda: _letter_with(tag), 15, message="dead letter")
    assert letter.error == "UnknownTask"
    assert "no-such-activity" in (letter.cause or "")


def test_step_of_unknown_execution_is_dead_lettered(orchestrator, tag):
    execution_id = f"missing-{tag}"
    app.send_task(
        "echo", args=[{"tag": tag}, execution_id, "Step"], queue=orchestrator.settings.queue
    )
    letter = wait_until(lambda: _letter_with(execution_id), 15, message="dead letter")
    assert letter.error == "ExecutionNotFound"
    assert (letter.execution_id, letter.state) == (execution_id, "Step")
    assert letter.input == {"tag": tag}


@pytest.fixture
def few_dead_letters(orchestrator):
    """At most 5 dead letters for the duration of the test (for the session's worker too,
    which dead-letters a failed execution: hence the process's settings)."""
    limited = orchestrator.settings.model_copy(update={"max_dead_letters": 5})
    with process_settings(limited):
        yield 5


def test_dead_letters_are_bounded_in_count_and_size(few_dead_letters, tag):
    store = get_store()
    ids = [
        dead_letter_message("Forged", f"forged {tag} {i}", b"A" * (1024 * 1024)) for i in range(12)
    ]
    letters = [store.keys.dead_letters(p) for p in store.keys.all_partitions()]
    assert sum(store.client.zcard(index) for index in letters) <= few_dead_letters
    # The oldest went, index entry and letter together; the newest stay.
    for letter_id in ids[:7]:
        assert not store.client.exists(store.keys.dead_letter(letter_id))
    for letter_id in ids[-5:]:
        letter = get_dead_letter(letter_id)
        assert len(letter.input) <= EXCERPT_CHARS + 40  # an excerpt, not 1 MiB
        assert len(store.client.get(store.keys.dead_letter(letter_id))) < 4096


def test_a_failed_execution_whose_letter_was_trimmed_can_be_redriven(few_dead_letters, tag):
    definition = machine({"Flaky": task("flaky", Parameters={"tag": tag, "fail": 1})})
    handle = start_workflow(definition, {"big": "B" * 10_000})
    assert handle.result(20).status == "FAILED"
    letter = get_dead_letter(handle.execution_id)
    assert len(json.dumps(letter.input)) <= EXCERPT_CHARS + 40
    for i in range(few_dead_letters + 1):
        dead_letter_message("Forged", f"flood {tag} {i}", "x")
    with pytest.raises(LookupError):
        get_dead_letter(handle.execution_id)
    # The execution itself is referenced by its letter, not copied into it: still whole.
    assert redrive_execution(handle.execution_id).result(20).status == "SUCCEEDED"
