"""Prometheus metrics without Redis: the per-process histograms and counters, the
cluster collector's exposition from given reads, and multiprocess mode across forks
(a prefork worker's pool processes, summed by the endpoint in the parent)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import get_settings
from orchestrator.engine import metrics
from orchestrator.engine.limits import Limits
from orchestrator.engine.records import counter_field, parse_counter_field

REPO = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(name: str, **labels: str) -> float:
    value = metrics.PROCESS_REGISTRY.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_counter_fields_round_trip_workflows_with_bars() -> None:
    for kind, workflow in [("started", "orders"), ("FAILED", "a|b|c"), ("redriven", "wf/None")]:
        assert parse_counter_field(counter_field(kind, workflow)) == (kind, workflow)


def test_a_step_is_timed_and_its_failure_counted_by_error() -> None:
    count = "orchestrator_step_duration_seconds_count"
    failed = "orchestrator_steps_failed_total"
    before = _value(count, activity="unit-act")
    metrics.observe_step("unit-act", 0.2, None)
    metrics.observe_step("unit-act", 3.0, "Boom")
    metrics.observe_step("unit-act", 0.001, "Boom")
    assert _value(count, activity="unit-act") == before + 3
    assert _value(failed, activity="unit-act", error="Boom") == 2
    assert _value("orchestrator_step_duration_seconds_bucket", activity="unit-act", le="0.25") == (
        _value("orchestrator_step_duration_seconds_bucket", activity="unit-act", le="0.005") + 1
    )
    # An error name is a label: an absurdly long one is cut, not refused.
    metrics.observe_step("unit-act", 0.1, "E" * 500)
    assert _value(failed, activity="unit-act", error="E" * metrics.MAX_ERROR_LABEL) == 1


def test_timer_lateness_is_fired_minus_due_never_negative() -> None:
    count = "orchestrator_timer_lateness_seconds_count"
    total = "orchestrator_timer_lateness_seconds_sum"
    before_count, before_sum = _value(count), _value(total)
    metrics.observe_timer_lateness(100.0, [99.5, 98.0, 100.25])
    assert _value(count) == before_count + 3
    assert _value(total) == pytest.approx(before_sum + 0.5 + 2.0 + 0.0)


class _Reads:
    """A stand-in store for the collector: what ``metrics_reads`` returns."""

    def __init__(self, counters: dict[str, str], timers: int, letters: int) -> None:
        self.reads = (counters, timers, letters)

    def metrics_reads(self) -> tuple[dict[str, str], int, int]:
        return self.reads

    def advertised_activities(self) -> dict[str, str]:
        return {"render": "gpu", "echo": "", "resize": "gpu"}

    def live_workers(self, now: float) -> dict[str, list[str]]:
        return {"w1@a": [get_settings().queue, "cpu"], "w2@b": ["gpu"]}

    def permits_in_use(self, activities: list[str]) -> list[int]:
        return [{"render": 1, "resize": 2}[name] for name in activities]


def test_the_cluster_exposition_names_every_counter_and_gauge(monkeypatch) -> None:
    counters = {
        counter_field("started", "orders"): "7",
        counter_field("redriven", "orders"): "1",
        counter_field("SUCCEEDED", "orders"): "5",
        counter_field("FAILED", "orders"): "2",
        counter_field("ABORTED", "wf/label"): "3",
        counter_field("unknown-kind", "orders"): "9",  # a later version's: ignored
    }
    asked: list[list[str]] = []

    def depths(queues: list[str]) -> dict[str, int]:
        asked.append(queues)
        return {queue: 4 for queue in queues}

    monkeypatch.setattr(metrics, "queue_depths", depths)
    limited = {
        "resize": Limits(max_concurrency=3),
        "render": Limits(max_concurrency=2, rate_limit="5/s"),
        "ping": Limits(rate_limit="10/s"),  # no permits: no gauge
    }
    monkeypatch.setattr(metrics, "limited_activities", lambda store: limited)
    text = metrics.cluster_exposition(_Reads(counters, 12, 3)).decode()  # type: ignore[arg-type]
    found = _samples(text)
    assert found == {
        ("orchestrator_executions_started_total", frozenset({("workflow", "orders")})): 7.0,
        ("orchestrator_executions_redriven_total", frozenset({("workflow", "orders")})): 1.0,
        (
            "orchestrator_executions_finished_total",
            frozenset({("workflow", "orders"), ("status", "SUCCEEDED")}),
        ): 5.0,
        (
            "orchestrator_executions_finished_total",
            frozenset({("workflow", "orders"), ("status", "FAILED")}),
        ): 2.0,
        (
            "orchestrator_executions_finished_total",
            frozenset({("workflow", "wf/label"), ("status", "ABORTED")}),
        ): 3.0,
        ("orchestrator_queue_depth", frozenset({("queue", get_settings().queue)})): 4.0,
        ("orchestrator_queue_depth", frozenset({("queue", "gpu")})): 4.0,
        ("orchestrator_queue_depth", frozenset({("queue", "cpu")})): 4.0,
        ("orchestrator_timers_pending", frozenset()): 12.0,
        ("orchestrator_dead_letters", frozenset()): 3.0,
        ("orchestrator_activity_permits_in_use", frozenset({("activity", "render")})): 1.0,
        ("orchestrator_activity_permits_in_use", frozenset({("activity", "resize")})): 2.0,
    }
    # The default queue, the advertised activities' and the live workers', once each.
    assert asked == [[get_settings().queue, "gpu", "cpu"]]
    assert "# TYPE orchestrator_executions_started_total counter" in text
    assert "# TYPE orchestrator_queue_depth gauge" in text


def test_queue_depths_leave_out_what_an_unreachable_broker_cannot_tell(monkeypatch) -> None:
    class Unreachable:
        def connection_for_read(self, **_: Any) -> Any:
            raise ConnectionRefusedError("no broker")

    monkeypatch.setattr(metrics, "publishing_app", lambda: Unreachable())
    assert metrics.queue_depths(["a", "b"]) == {}


# -- multiprocess mode: what a prefork worker's endpoint sums ------------------------------

_FORKED = textwrap.dedent(
    """
    import multiprocessing, os, sys
    from orchestrator.engine import metrics
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = metrics.enable_multiprocess(sys.argv[1])

    def work(n):
        for i in range(n):
            metrics.observe_step("forked", 0.01 * (i + 1), "Boom" if i % 2 else None)

    children = [multiprocessing.get_context("fork").Process(target=work, args=(n,))
                for n in (3, 4)]
    for child in children:
        child.start()
    for child in children:
        child.join()
        assert child.exitcode == 0
    registry = CollectorRegistry()
    MultiProcessCollector(registry, directory)
    sys.stdout.write(generate_latest(registry).decode())
    """
)


def test_multiprocess_mode_sums_the_forked_processes(tmp_path: Path) -> None:
    # A fresh interpreter: the mode is per process, and this one has made metrics.
    result = subprocess.run(
        [sys.executable, "-c", _FORKED, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = _samples(result.stdout)
    activity = ("activity", "forked")
    assert found[("orchestrator_step_duration_seconds_count", frozenset({activity}))] == 7
    assert found[
        ("orchestrator_step_duration_seconds_sum", frozenset({activity}))
    ] == pytest.approx(0.01 * (1 + 2 + 3) + 0.01 * (1 + 2 + 3 + 4))
    failed = ("orchestrator_steps_failed_total", frozenset({activity, ("error", "Boom")}))
    assert found[failed] == 1 + 2  # i = 1 of 3; i = 1, 3 of 4
    assert len(list(tmp_path.glob("*.db"))) >= 2  # one file per process that observed


def test_multiprocess_mode_must_come_before_the_metrics() -> None:
    metrics.observe_step("unit-act", 0.1, None)  # this process has metrics now
    with pytest.raises(RuntimeError, match="multiprocess mode comes first"):
        metrics.enable_multiprocess("/nonexistent-never-made")
