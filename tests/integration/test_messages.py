"""Messages no worker can process end in the dead-letter queue; pickle is refused."""

from __future__ import annotations

import json
import pickle
from typing import Any

from orchestrator import list_dead_letters
from orchestrator.celery_app import app
from tests.helpers import wait_until


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
