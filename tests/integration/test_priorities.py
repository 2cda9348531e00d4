"""Execution priorities (issue 13 item 5): recorded in the start's write, carried by every
task message of the execution whichever process publishes it (the starting client, the
worker after a step, the timer loop after a Wait, a Distributed Map's children).

The session's worker and timer loop run in this process, so Celery's
``before_task_publish`` signal sees every message. Overtaking a backlog is
tests/e2e/test_priorities.py's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from celery import signals

from orchestrator import (
    config,
    list_map_run_children,
    list_map_runs,
    redrive_execution,
    start_workflow,
)
from orchestrator.engine.celery_app import broker_priority, publishing_app
from orchestrator.engine.store import get_store
from orchestrator.errors import ConfigurationError, InvalidInputError
from tests.helpers import machine, task

pytestmark = pytest.mark.usefixtures("orchestrator")


class Published:
    """The priority property of every activity message, by execution id."""

    def __init__(self) -> None:
        self.priorities: dict[str, list[tuple[str, Any]]] = {}
        self._lock = threading.Lock()

    def record(self, headers: Any = None, body: Any = None, properties: Any = None, **_: Any):
        args = body[0] if isinstance(body, list | tuple) and body else None
        if not isinstance(args, list | tuple) or len(args) < 2:
            return
        execution_id, step_key = args[-2], args[-1]
        with self._lock:
            self.priorities.setdefault(str(execution_id), []).append(
                (str(step_key), (properties or {}).get("priority"))
            )

    def of(self, execution_id: str) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.priorities.get(execution_id, []))


@pytest.fixture
def published() -> Iterator[Published]:
    log = Published()
    signals.before_task_publish.connect(log.record, weak=False)
    try:
        yield log
    finally:
        signals.before_task_publish.disconnect(log.record)


def _on_broker(priority: int) -> int:
    return broker_priority(priority, publishing_app().conf.broker_url)


def test_every_message_of_an_execution_carries_its_priority(
    published: Published, unique_name: str
) -> None:
    definition = machine(
        {
            "First": task("echo", Next="Pause"),
            "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Second"},
            "Second": task("echo", Next="Third"),
            "Third": task("echo"),
        }
    )
    handle = start_workflow(definition, {"x": 1}, name=unique_name, priority=7)
    assert handle.result(30).status == "SUCCEEDED"
    assert handle.describe().priority == 7
    assert get_store().execution_meta(unique_name)[4] == "7"  # type: ignore[index]
    # First (this process), Second (the timer loop, after the Wait) and Third (the
    # worker: the rest of Second's chain), each with priority 7 on the broker's scale.
    sent = published.of(unique_name)
    assert [key for key, _ in sent] == ["First", "Second", "Third"]
    assert {priority for _, priority in sent} == {_on_broker(7)}


def test_a_redrive_publishes_with_the_recorded_priority(
    published: Published, unique_name: str, tag: str
) -> None:
    # The redrive's process knows the execution only by its id: the record says.
    handle = start_workflow(
        machine({"Flaky": task("flaky")}), {"tag": tag, "fail": 1}, name=unique_name, priority=6
    )
    assert handle.result(30).status == "FAILED"
    assert redrive_execution(unique_name).result(30).status == "SUCCEEDED"
    assert published.of(unique_name) == [("Flaky", _on_broker(6))] * 2


def test_without_a_priority_an_execution_gets_the_configured_default(
    published: Published, unique_name: str
) -> None:
    handle = start_workflow(machine({"Only": task("echo")}), {}, name=unique_name)
    assert handle.result(30).status == "SUCCEEDED"
    default = config.get_settings().default_priority
    assert handle.describe().priority == default
    assert [priority for _, priority in published.of(unique_name)] == [_on_broker(default)]


def test_the_broker_scale_puts_nine_first() -> None:
    # RabbitMQ delivers the highest number first, kombu's Redis transport the lowest.
    assert [broker_priority(p, "amqp://guest@host//") for p in (0, 4, 9)] == [0, 4, 9]
    assert [broker_priority(p, "redis://host/0") for p in (0, 4, 9)] == [9, 5, 0]
    assert broker_priority(9, "rediss://host/0") == 0


@pytest.mark.parametrize("priority", [10, -1, True, "5", 2.0])
def test_a_priority_outside_0_to_9_is_refused_and_nothing_starts(
    priority: Any, unique_name: str
) -> None:
    with pytest.raises(InvalidInputError, match="priority .*0 \\(least urgent\\) to 9"):
        start_workflow(machine({"Only": task("echo")}), {}, name=unique_name, priority=priority)
    assert get_store().execution(unique_name) == {}


def test_the_default_priority_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DEFAULT_PRIORITY", "10")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_DEFAULT_PRIORITY"):
        config.settings_from_env()
    monkeypatch.setenv("ORCHESTRATOR_DEFAULT_PRIORITY", "9")
    assert config.settings_from_env().default_priority == 9


def test_distributed_map_children_inherit_the_priority(
    published: Published, unique_name: str
) -> None:
    definition = {
        "StartAt": "M",
        "States": {
            "M": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Echo",
                    "States": {"Echo": task("echo")},
                },
                "End": True,
            }
        },
    }
    handle = start_workflow(definition, {"items": [1, 2, 3]}, name=unique_name, priority=8)
    assert handle.result(30).status == "SUCCEEDED"
    (run,) = list_map_runs(unique_name)
    children = list_map_run_children(run.map_run_arn)
    assert len(children) == 3
    for child in children:
        assert get_store().execution_meta(child.execution_id)[4] == "8"  # type: ignore[index]
        assert [p for _, p in published.of(child.execution_id)] == [_on_broker(8)]
