"""Per-activity queues on the session's Redis and broker (issue 13 item 1): a step goes
to its activity's queue — first dispatch, a straight run's chain, a re-publish from the
outbox, from a process that only knows the advertised queue — and waits there, said so,
while no worker consumes it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from orchestrator import activity, start_workflow, stop_execution
from orchestrator.engine import activities
from orchestrator.engine.celery_app import app
from orchestrator.engine.records import lease_member
from orchestrator.engine.store import get_store
from orchestrator.engine.timers import recover_step
from orchestrator.testing import LocalOrchestrator
from tests.helpers import machine, task, wait_until


def queue_size(queue: str) -> int:
    """Messages waiting in ``queue`` (0 if the broker has no such queue)."""
    try:
        with app.connection_for_write() as connection:
            return int(connection.default_channel.queue_declare(queue, passive=True)[1])
    except Exception:  # noqa: BLE001 - not declared (yet)
        return 0


@pytest.fixture
def gpu_activity(orchestrator: LocalOrchestrator) -> Iterator[tuple[str, str]]:
    """An activity on a queue of its own that no worker consumes: (name, queue).

    Registered after the session's worker started, so that worker does not consume it."""
    run = uuid.uuid4().hex[:10]
    name, queue = f"render-{run}", f"gpu-{run}"

    def render(request: object) -> dict[str, object]:
        return {"rendered": request}

    activity(name, queue=queue)(render)
    try:
        yield name, queue
    finally:
        activities._registry.pop(name, None)
        try:
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(queue)
        except Exception:  # noqa: BLE001 - best effort
            pass


def test_a_step_waits_on_its_activity_s_queue(
    orchestrator: LocalOrchestrator, gpu_activity: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator import cli

    name, queue = gpu_activity
    # Echo then Render: one straight run, a Celery chain; Render's task goes to its queue.
    definition = machine({"Echo": task("echo", Next="Render"), "Render": task(name)})
    handle = start_workflow(definition, {"frame": 1})  # starts: nobody consumes the queue

    def render_scheduled() -> bool:
        steps = handle.describe().steps
        return any(s.state == "Render" and s.status == "SCHEDULED" for s in steps)

    wait_until(render_scheduled, 20, message="Render scheduled")
    wait_until(lambda: queue_size(queue) == 1, 10, message="Render's message in its queue")
    assert cli.unserved_queues(handle.describe().steps) == [queue]
    assert activities.unserved_queues(["echo"]) == []  # the session's worker consumes it

    # The outbox sends it again (a lost message) to the same queue...
    store = get_store()
    member = lease_member(handle.execution_id, "Render")
    recover_step(store, member, time.time(), outbox=True)
    wait_until(lambda: queue_size(queue) == 2, 10, message="re-published to the queue")
    # ...as does a process that does not import the activity: it has the advertised queue.
    registered = activities._registry.pop(name)
    try:
        store.advertise_activities({name: queue})
        activities._advertised.forget()
        assert activities.queue_for(name) == queue
        recover_step(store, member, time.time(), outbox=True)
        wait_until(lambda: queue_size(queue) == 3, 10, message="re-published from advertised")
    finally:
        activities._registry[name] = registered
        store.client.hdel(store.keys.activity_queues, name)
        store.client.srem(store.keys.activities, name)
    assert handle.describe().status == "RUNNING"
    stop_execution(handle.execution_id)
