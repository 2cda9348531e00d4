"""The execution page says when a step waits on a queue no worker consumes (issue 13)."""

from __future__ import annotations

import uuid

from orchestrator import activity, start_workflow, stop_execution
from orchestrator.engine import activities
from orchestrator.engine.celery_app import app
from tests.helpers import machine, task, wait_until


def test_execution_page_names_a_queue_nobody_consumes(client) -> None:
    run = uuid.uuid4().hex[:10]
    name, queue = f"ui-render-{run}", f"ui-gpu-{run}"

    def render(request: object) -> object:
        return request

    # Registered after the session's worker started: that worker does not consume it.
    activity(name, queue=queue)(render)
    try:
        handle = start_workflow(machine({"Render": task(name)}), {})
        wait_until(lambda: [s.status for s in handle.describe().steps] == ["SCHEDULED"], 15)
        html = client.get(f"/executions/{handle.execution_id}").text
        assert f"No worker consumes queue <code>{queue}</code>" in html
        assert f"--queues {queue} --tasks" in html
        stop_execution(handle.execution_id)
        html = client.get(f"/executions/{handle.execution_id}").text
        assert "No worker consumes queue" not in html  # not running: nothing waits
    finally:
        activities._registry.pop(name, None)
        try:
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(queue)
        except Exception:  # noqa: BLE001 - best effort
            pass
