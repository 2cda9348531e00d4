"""Prometheus metrics (prometheus-client): what is counted, where, and who serves it.

Cluster-wide, read at scrape time from Redis and the broker by :class:`ClusterCollector`
(served by the ``ui``'s ``/metrics``; any process may serve it, every one gives the same
figures)::

    orchestrator_executions_started_total{workflow}          counter   {p}:metrics:executions
    orchestrator_executions_redriven_total{workflow}         counter   (HINCRBY in the commit
    orchestrator_executions_finished_total{workflow,status}  counter    that starts, redrives
                                                                        or ends an execution)
    orchestrator_queue_depth{queue}       gauge   messages ready in each known queue (the
                                                  broker: a passive queue declare)
    orchestrator_timers_pending           gauge   ZCARD {P}:timers, summed (Waits, retries...)
    orchestrator_dead_letters             gauge   ZCARD {P}:dlq, summed
    orchestrator_activity_permits_in_use{activity}  gauge  ZCARD {p}:permits:{activity:<a>} of each
                                                  activity with a max_concurrency

Per process, kept in the process that does the work (:func:`observe_step`,
:func:`observe_timer_lateness`) and served by its own endpoint (:func:`serve_process_metrics`:
``orchestrator worker --metrics-port``, ``orchestrator beat --metrics-port``)::

    orchestrator_step_duration_seconds{activity}       histogram  a worker: the activity
    orchestrator_steps_failed_total{activity,error}    counter    function's run, and its
                                                                  failed attempts
    orchestrator_timer_lateness_seconds                histogram  beat: fired - due time

A prefork worker runs activities in its pool processes: :func:`enable_multiprocess` puts
prometheus-client in multiprocess mode (each process writes its samples to files in a
directory of the worker's own; the endpoint, in the parent, sums them), before any pool
process starts. Every read is bounded: the hashes read whole hold one field per workflow
and kind (the counters), per activity (queues, limits) or per worker, a ``ZCARD`` is O(1)
(one per limited activity for the permits), and the queues are the known ones (the
default queue, those of the advertised activities and those live workers consume),
never a scan of executions or keys.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import values as prometheus_values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from orchestrator.config import get_settings
from orchestrator.engine.celery_app import publishing_app
from orchestrator.engine.keys import EXECUTION_STATUSES
from orchestrator.engine.limits import limited_activities
from orchestrator.engine.records import parse_counter_field
from orchestrator.engine.store import RedisStore, get_store

logger = logging.getLogger("orchestrator.engine.metrics")

#: The exposition's content type (Prometheus text format).
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Where prometheus-client's multiprocess mode keeps its files (its own variable).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

#: Step durations: from a quick activity (milliseconds) to a long one (an hour).
STEP_BUCKETS = (
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    *(120.0, 300.0, 600.0, 1800.0, 3600.0, float("inf")),
)
#: Timer lateness: within a tick (0.25 s) is on time; seconds late is a backlog.
LATENESS_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
    float("inf"),
)
#: Longest ``error`` label kept (an error name is an exception's class name, or a
#: StatesError's name: short, but nothing bounds what an activity raises).
MAX_ERROR_LABEL = 100
#: Connect and reply timeout of the broker read at a scrape (seconds).
BROKER_TIMEOUT_S = 5.0

# -- per process: steps (workers) and timers (beat) ------------------------------------

#: This process's own metrics (not prometheus-client's default registry, which an
#: application embedding the orchestrator may serve for itself).
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def _metric(name: str) -> Any:
    """The process metric ``name``, made on first use: in a prefork worker, in the pool
    process that observes it (after :func:`enable_multiprocess` set the mode), and a
    process shows only the metrics it observed."""
    metric = _metrics.get(name)
    if metric is None:
        with _lock:
            metric = _metrics.get(name)
            if metric is None:
                metric = _metrics[name] = _make(name)
    return metric


def _make(name: str) -> Any:
    if name == "step_duration":
        return Histogram(
            "orchestrator_step_duration_seconds",
            "Time an activity's function ran for a workflow step, in this worker",
            ["activity"],
            buckets=STEP_BUCKETS,
            registry=PROCESS_REGISTRY,
        )
    if name == "steps_failed":
        return Counter(
            "orchestrator_steps_failed_total",
            "Workflow step attempts whose activity failed, in this worker, by error name",
            ["activity", "error"],
            registry=PROCESS_REGISTRY,
        )
    if name == "timer_lateness":
        return Histogram(
            "orchestrator_timer_lateness_seconds",
            "How long after its due time a timer fired, in this timer process (beat)",
            buckets=LATENESS_BUCKETS,
            registry=PROCESS_REGISTRY,
        )
    raise KeyError(name)


def observe_step(activity: str, seconds: float, error: str | None) -> None:
    """Record one run of an activity for a step: how long it took, and its error when
    it failed (None: it succeeded)."""
    try:
        _metric("step_duration").labels(activity).observe(seconds)
        if error is not None:
            _metric("steps_failed").labels(activity, error[:MAX_ERROR_LABEL]).inc()
    except Exception:  # noqa: BLE001 - a metric must never fail a step
        logger.warning("could not record step metrics", exc_info=True)


def observe_timer_lateness(now: float, due_times: Iterable[float]) -> None:
    """Record how late the timers due at ``due_times`` fired (at ``now``)."""
    try:
        histogram = _metric("timer_lateness")
        for due in due_times:
            histogram.observe(max(0.0, now - due))
    except Exception:  # noqa: BLE001 - a metric must never fail a tick
        logger.warning("could not record timer lateness", exc_info=True)


def enable_multiprocess(directory: str | None = None) -> str:
    """Put this process and those it forks afterwards in prometheus-client's
    multiprocess mode; returns the directory of their files.

    ``directory``: ``PROMETHEUS_MULTIPROC_DIR`` if set (it must be empty, and of this
    process alone: files left there would be counted again), else a new temporary
    directory, removed when this process exits. Call it before any process metric is
    made (:func:`serve_process_metrics` does, before the worker starts its pool).
    """
    if _metrics:
        raise RuntimeError("process metrics exist already: multiprocess mode comes first")
    chosen = directory or os.environ.get(MULTIPROC_ENV)
    if not chosen:
        chosen = tempfile.mkdtemp(prefix="orchestrator-metrics-")
        atexit.register(shutil.rmtree, chosen, ignore_errors=True)
    os.makedirs(chosen, exist_ok=True)
    os.environ[MULTIPROC_ENV] = chosen
    # prometheus-client picks its value class when imported; pick again, now that the
    # variable is set (metrics made from now on, here and in forked processes, use it).
    prometheus_values.ValueClass = prometheus_values.get_value_class()
    return chosen


def serve_process_metrics(port: int, host: str = "0.0.0.0", *, multiprocess: bool) -> Any:
    """Serve this process's metrics on ``host:port`` from a daemon thread; returns the
    server (``.shutdown()``). ``multiprocess``: sum those of the processes it forks (a
    prefork worker's pool), through :func:`enable_multiprocess`.

    Raises:
        OSError: the port cannot be bound.
    """
    if multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, enable_multiprocess())
    else:
        registry = PROCESS_REGISTRY
    server, _ = start_http_server(port, host, registry=registry)
    return server


# -- cluster-wide: Redis and the broker --------------------------------------------------


class ClusterCollector:
    """The cluster's execution counters, queue depths, pending timers and dead letters,
    read when scraped (a custom prometheus-client collector)."""

    def __init__(self, store: RedisStore | None = None) -> None:
        self._store = store

    def describe(self) -> list[Metric]:
        return []  # read only when collected: registering it reads nothing

    def collect(self) -> Iterator[Metric]:
        store = self._store or get_store()
        counters, timers, letters = store.metrics_reads()
        started = CounterMetricFamily(
            "orchestrator_executions_started",
            "Executions started, cluster-wide",
            labels=["workflow"],
        )
        redriven = CounterMetricFamily(
            "orchestrator_executions_redriven",
            "Executions redriven (run again from where they failed), cluster-wide",
            labels=["workflow"],
        )
        finished = CounterMetricFamily(
            "orchestrator_executions_finished",
            "Executions that ended, by final status, cluster-wide",
            labels=["workflow", "status"],
        )
        for field, value in sorted(counters.items()):
            kind, workflow = parse_counter_field(field)
            if kind == "started":
                started.add_metric([workflow], float(value))
            elif kind == "redriven":
                redriven.add_metric([workflow], float(value))
            elif kind in EXECUTION_STATUSES:
                finished.add_metric([workflow, kind], float(value))
        yield from (started, redriven, finished)
        depth = GaugeMetricFamily(
            "orchestrator_queue_depth",
            "Messages waiting in the broker's queue (ready, not yet taken by a worker)",
            labels=["queue"],
        )
        for queue, messages in queue_depths(known_queues(store)).items():
            depth.add_metric([queue], float(messages))
        yield depth
        yield GaugeMetricFamily(
            "orchestrator_timers_pending",
            "Timers set and not fired yet (Waits, retry backoffs, timeouts, heartbeats)",
            value=float(timers),
        )
        yield GaugeMetricFamily(
            "orchestrator_dead_letters",
            "Dead letters kept (failed executions and unprocessable messages)",
            value=float(letters),
        )
        permits = GaugeMetricFamily(
            "orchestrator_activity_permits_in_use",
            "Permits of an activity's max_concurrency its steps hold, cluster-wide",
            labels=["activity"],
        )
        limited = sorted(
            name for name, limits in limited_activities(store).items() if limits.max_concurrency
        )
        for activity, held in zip(limited, store.permits_in_use(limited), strict=True):
            permits.add_metric([activity], float(held))
        yield permits


def known_queues(store: RedisStore) -> list[str]:
    """The queues whose depth is reported: the default queue (``ORCHESTRATOR_QUEUE``),
    the queues of the activities workers advertised (``{p}:activity-queues``) and those
    live workers consume (``{p}:workers``): one entry per activity and per worker."""
    queues = dict.fromkeys([get_settings().queue])
    queues.update(dict.fromkeys(q for q in store.advertised_activities().values() if q))
    for consumed in store.live_workers(time.time()).values():
        queues.update(dict.fromkeys(consumed))
    return list(queues)


def queue_depths(queues: list[str]) -> dict[str, int]:
    """Messages ready in each queue, read from the broker with a passive declare (Redis:
    the lengths of the queue's priority lists; RabbitMQ: the queue's message count). A
    queue the broker does not know holds nothing. On a broker error, the queues not read
    are left out (logged), so the rest of a scrape still answers."""
    depths: dict[str, int] = {}
    try:
        with publishing_app().connection_for_read(
            connect_timeout=BROKER_TIMEOUT_S,
            transport_options={"socket_timeout": BROKER_TIMEOUT_S},
        ) as connection:
            connection.ensure_connection(max_retries=1)
            for queue in queues:
                channel = connection.channel()
                try:
                    depths[queue] = int(channel.queue_declare(queue, passive=True).message_count)
                except connection.channel_errors:
                    depths[queue] = 0  # no such queue (RabbitMQ closed the channel)
                finally:
                    try:
                        channel.close()
                    except Exception:  # noqa: BLE001 - a channel the broker closed
                        pass
    except Exception as exc:  # noqa: BLE001 - the store's metrics still answer
        logger.warning("could not read queue depths from the broker: %s", exc)
    return depths


def cluster_exposition(store: RedisStore | None = None) -> bytes:
    """The cluster-wide metrics in Prometheus' text format (the ``ui``'s ``/metrics``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ClusterCollector(store))
    return generate_latest(registry)
