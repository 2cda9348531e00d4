"""The ``ui``'s ``/metrics``: cluster-wide counters kept in Redis by the commits that start,
redrive and end executions, and gauges read from Redis and the broker when scraped."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from orchestrator import redrive_execution, start_workflow, stop_execution
from orchestrator.config import get_settings
from orchestrator.engine.activities import get_activity
from orchestrator.engine.celery_app import publishing_app
from orchestrator.engine.metrics import CONTENT_TYPE, queue_depths
from orchestrator.testing import LocalOrchestrator
from tests import limit_activities  # registered before the session's worker starts
from tests.conftest import TaskLog
from tests.helpers import machine, task, wait_until


def _scrape(client: Any) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _count(found: dict, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_executions_are_counted_once_by_the_commits_that_start_and_end_them(
    client: Any, tag: str, task_log: TaskLog
) -> None:
    workflow = f"metrics-{tag}"
    ok = machine({"Echo": task("echo")}, Comment=workflow)
    failing = machine({"Boom": task("fail", Parameters={"error": "Boom"})}, Comment=workflow)
    waiting = machine({"Sleep": {"Type": "Wait", "Seconds": 600, "End": True}}, Comment=workflow)
    before = _scrape(client)
    assert _count(before, "orchestrator_executions_started_total", workflow=workflow) == 0

    succeeded = [start_workflow(ok, {"n": n}, name=f"{tag}-ok-{n}") for n in range(3)]
    # The same name and input again: the same execution, not a second start.
    assert start_workflow(ok, {"n": 0}, name=f"{tag}-ok-0").execution_id == f"{tag}-ok-0"
    failed = start_workflow(failing, {})
    stopped = start_workflow(waiting, {})
    for handle in succeeded:
        assert handle.result(30).status == "SUCCEEDED"
    assert failed.result(30).status == "FAILED"
    wait_until(lambda: stopped.describe().status == "RUNNING", 10, message="the Wait")
    stop_execution(stopped.execution_id, error="Enough")
    # A redriven execution runs again and fails again: a second end, no second start.
    assert redrive_execution(failed.execution_id).result(30).status == "FAILED"

    # A step message delivered again after its execution ended (run here, as a worker
    # runs it: the same task body) is dropped at the claim and changes nothing.
    step_runs = task_log.step_messages(succeeded[0].execution_id, "Echo")
    redelivered = get_activity("echo").task.apply(
        args=({"n": 0}, succeeded[0].execution_id, "Echo")
    )
    assert redelivered.get() is None
    assert task_log.step_messages(succeeded[0].execution_id, "Echo") == step_runs + 1

    after = _scrape(client)
    started = "orchestrator_executions_started_total"
    finished = "orchestrator_executions_finished_total"
    assert _count(after, started, workflow=workflow) == 5
    assert _count(after, "orchestrator_executions_redriven_total", workflow=workflow) == 1
    assert _count(after, finished, workflow=workflow, status="SUCCEEDED") == 3
    assert _count(after, finished, workflow=workflow, status="FAILED") == 2
    assert _count(after, finished, workflow=workflow, status="ABORTED") == 1
    assert _count(after, finished, workflow=workflow, status="TIMED_OUT") == 0
    # The redrive took the first failure's dead letter back; the second failure left one.
    assert (
        _count(after, "orchestrator_dead_letters")
        == _count(before, "orchestrator_dead_letters") + 1
    )
    assert ("orchestrator_timers_pending", frozenset()) in after
    assert ("orchestrator_queue_depth", frozenset({("queue", get_settings().queue)})) in after


def test_queue_depth_is_read_from_the_broker(orchestrator: LocalOrchestrator, tag: str) -> None:
    queue = f"metrics-depth-{tag}"
    absent = f"metrics-absent-{tag}"
    app = publishing_app()
    try:
        for n in range(5):
            # A queue no worker consumes: the messages wait there.
            app.send_task("orchestrator.metrics-test", args=(n,), queue=queue, ignore_result=True)
        wait_until(lambda: queue_depths([queue]) == {queue: 5}, 15, message="5 messages")
        assert queue_depths([absent, queue]) == {absent: 0, queue: 5}
    finally:
        with app.connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)


def test_metrics_need_the_token_like_any_read(orchestrator: LocalOrchestrator) -> None:
    from fastapi.testclient import TestClient

    from orchestrator.ui import create_app

    token = "metrics-token-0123456789abcdef"
    with TestClient(create_app(token=token, public_read=False), base_url="http://localhost") as c:
        refused = c.get("/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        scraped = c.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert scraped.status_code == 200
        assert "orchestrator_executions_started_total" in scraped.text


def test_permits_in_use_follow_a_limited_activity(client: Any) -> None:
    permits = "orchestrator_activity_permits_in_use"
    limited = limit_activities.LIMITED  # max_concurrency=2
    branches = [machine({f"B{i}": task(limited, Parameters={"sleep": 1.0})}) for i in range(4)]
    fan = machine({"Fan": {"Type": "Parallel", "Branches": branches, "End": True}})
    handle = start_workflow(fan, {})
    wait_until(
        lambda: _count(_scrape(client), permits, activity=limited) == 2,
        15,
        message="two permits held",
    )
    assert handle.result(30).status == "SUCCEEDED"
    wait_until(
        lambda: _count(_scrape(client), permits, activity=limited) == 0,
        15,
        message="every permit given back",
    )
    # Only activities with a max_concurrency have the gauge.
    found = _scrape(client)
    assert (permits, frozenset({("activity", limit_activities.RATED)})) not in found
    assert (permits, frozenset({("activity", limited)})) in found
