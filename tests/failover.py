"""What the failover tests share (tests/e2e/test_sentinel_failover.py, a Sentinel master
SIGKILLed; tests/e2e/test_cluster_failover.py, a cluster master): starting executions
through the outage, reading what they did, reporting what the failover cost and checking
that every execution ended once."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import ExecutionHandle
from orchestrator.errors import ExecutionNotFound, StoreUnavailable
from tests.activities import counter, scoped_key, side_effects
from tests.helpers import count_events, wait_until
from tests.mix import EXPECTED_CALLS, EXPECTED_EVENTS, Engine, Planned, Started, expected_output

EXECUTIONS = 200
KINDS = ("chain", "map", "parallel", "wait", "retry", "catch")
#: A lost commit comes back through the step's lease; a broker message the new master
#: never had, through the dispatch timeout. Both short so that the test takes seconds.
LEASE_S = 2
DISPATCH_TIMEOUT_S = 5
WORKERS = 2
WORKER_THREADS = 4
BEATS = 2
#: The master is killed once this many are started...
KILL_AFTER = EXECUTIONS // 3
#: ... at the latest when this many are (a third is still to start through the failover)...
KILL_BY = 2 * EXECUTIONS // 3
#: ... checked every so many starts...
CHECK_EVERY = 5
#: ... and of those, at least this many have ended and this many are still running.
ENDED_AT_KILL = 10
RUNNING_AT_KILL = 5
#: How long a start is tried again through the failover; how long the promotion may take.
START_RETRY_S = 60
PROMOTION_TIMEOUT_S = 60
#: For every execution to end, from the last start.
RUN_TIMEOUT_S = 90

#: Each kind's value that is a side effect's count: (path in the output, its value when
#: each side effect happened once as expected).
COUNTED: dict[str, tuple[tuple[Any, ...], int]] = {
    "chain": (("count", "calls"), 1),
    "map": (("count", "calls"), 1),
    "parallel": (("branches", 0, "calls"), 1),
    "wait": (("count", "calls"), 1),
    "retry": (("flaky", "attempt"), 2),
}
#: Events that are a step's or a timer's effect: once each, whatever ran again.
ONCE = ("TaskSucceeded", "WaitStateEntered", "WaitStateExited")


@dataclass
class Starts:
    """What starting the executions met."""

    killed_at: float | None = None
    #: Seconds from the kill to the first start taken after it.
    first_write: float | None = None
    #: Starts tried more than once, and the failed tries.
    retried: int = 0
    failed_tries: int = 0
    #: The errors of the failed tries (type, maybe_applied) -> count.
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Their messages, a few.
    samples: list[str] = field(default_factory=list)


def start(state: Engine, planned: Planned, starts: Starts) -> ExecutionHandle:
    """Start ``planned``, again under its name while the store is unavailable."""
    deadline = time.monotonic() + START_RETRY_S
    tries = 0
    while True:
        try:
            handle = state.client.start_workflow(
                planned.definition, planned.input, name=planned.name
            )
        except StoreUnavailable as exc:
            tries += 1
            starts.failed_tries += 1
            starts.errors[f"StoreUnavailable(maybe_applied={exc.maybe_applied})"] += 1
            if len(starts.samples) < 3:
                starts.samples.append(str(exc)[:300])
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
            continue
        if starts.killed_at is not None and starts.first_write is None:
            starts.first_write = time.monotonic() - starts.killed_at
        starts.retried += 1 if tries else 0
        return handle


def status(state: Engine, execution_id: str) -> str:
    return state.client.describe_execution(execution_id).status


@dataclass
class Killing:
    """The starts of a run with a kill among them."""

    handles: list[ExecutionHandle]
    #: How many were started, and how many of those had ended, when the kill came.
    started_at_kill: int
    ended_at_kill: int
    #: What ``kill`` returned (a watch of the failover).
    watch: Any


def start_with_a_kill(
    state: Engine,
    planned: list[Planned],
    starts: Starts,
    kill: Callable[[], Any],
    started: Callable[[ExecutionHandle], None] = lambda handle: None,
) -> Killing:
    """Start ``planned`` one after the other; between two starts, once a third are
    started and some have ended while others run (the starts waiting for that past two
    thirds), ``kill()`` (it records ``starts.killed_at``). ``started``: called with each
    handle."""
    handles: list[ExecutionHandle] = []

    def under_way() -> int:
        """How many of those started have ended, if enough have and enough have not
        (else 0)."""
        statuses = [status(state, h.execution_id) for h in handles]
        ended = sum(1 for s in statuses if s != "RUNNING")
        return ended if ended >= ENDED_AT_KILL and len(statuses) - ended >= RUNNING_AT_KILL else 0

    killing = Killing(handles, 0, 0, None)
    for index, item in enumerate(planned):
        if killing.watch is None and index >= KILL_AFTER and index % CHECK_EVERY == 0:
            if index >= KILL_BY:
                message = f"executions under way\n{state.log_text()}"
                killing.ended_at_kill = wait_until(under_way, 30, message=message)
            else:
                killing.ended_at_kill = under_way()
            if killing.ended_at_kill:
                killing.watch = kill()
                killing.started_at_kill = index
        handle = start(state, item, starts)
        handles.append(handle)
        started(handle)
    assert killing.watch is not None, "the kill never came"
    return killing


def restart_lost(
    state: Engine, planned: list[Planned], handles: list[ExecutionHandle], starts: Starts
) -> tuple[list[ExecutionHandle], list[str]]:
    """The starts that returned but that the new master does not have (lost with the
    old one), started again under their names: every handle, and the lost names."""
    lost = []
    for p, handle in zip(planned, handles, strict=True):
        try:
            state.client.describe_execution(handle.execution_id)
        except ExecutionNotFound:
            lost.append(p.name)
    again = {p.name: start(state, p, starts) for p in planned if p.name in lost}
    return [again.get(p.name, h) for p, h in zip(planned, handles, strict=True)], lost


@dataclass
class Runs:
    """What the executions did, read once they ended."""

    #: Per execution: its calls as the side-effects file saw them, as Redis counted them
    #: (a lost commit can lose an increment too), and its history.
    seen: list[tuple[int, int, list[Any]]]
    repeated: list[str]
    lost_increments: int
    dead_letters: list[str]
    claimed_again: list[str]


def read_runs(state: Engine, started: list[Started], ledger: Path) -> Runs:
    """What ``started`` did (inside the engine's context: its client reads)."""
    calls = side_effects(ledger)
    with state.client.bound():
        seen = [
            (
                calls.get(scoped_key("calls", one.tag), 0),
                counter("calls", one.tag),
                one.handle.history(),
            )
            for one in started
        ]
    repeated = [
        f"{one.handle.execution_id} ran {ran} of {EXPECTED_CALLS[one.kind]} (Redis: {counted})"
        for one, (ran, counted, _) in zip(started, seen, strict=True)
        if ran != EXPECTED_CALLS[one.kind]
    ]
    # A step claimed again (its lease lapsed) has one TaskStarted more than it was scheduled.
    claimed_again = []
    for one, (_, _, history) in zip(started, seen, strict=True):
        for name in sorted({str(e.state) for e in history if e.type == "TaskScheduled"}):
            scheduled = count_events(history, "TaskScheduled", name)
            claims = count_events(history, "TaskStarted", name)
            if claims > scheduled:
                claimed_again.append(
                    f"{one.handle.execution_id}/{name}: started {claims}, scheduled {scheduled}"
                )
    return Runs(
        seen=seen,
        repeated=repeated,
        lost_increments=sum(max(0, ran - counted) for ran, counted, _ in seen),
        dead_letters=[
            f"{d.execution_id} {d.state}: {d.error}: {d.cause}"
            for d in state.client.list_dead_letters(1000)
        ],
        claimed_again=claimed_again,
    )


@dataclass
class Logged:
    """The processes' log lines, and those that tell of the failover's recovery."""

    lines: list[str]
    errors: list[str]
    #: Beat's recovery: a step whose message the broker lost, published again after the
    #: dispatch timeout; a step whose worker's commit failed, dispatched again after its
    #: lease.
    republished: list[str]
    redispatched: list[str]


def read_logs(logs: Path) -> Logged:
    lines = [
        f"{path.name}: {line}"
        for path in sorted(logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]
    return Logged(
        lines=lines,
        errors=[line for line in lines if " ERROR " in line or " CRITICAL " in line],
        republished=[line for line in lines if "was not claimed" in line],
        redispatched=[line for line in lines if "lost its worker" in line],
    )


def report(
    label: str, lost: list[str], runs: Runs, logged: Logged, starts: Starts, exited: list[str]
) -> None:
    """Print, under ``label``, each kind of thing the failover cost, listed."""
    errors = logged.errors
    for title, shown in (
        ("starts lost (started again)", lost),
        ("side effects repeated", runs.repeated),
        ("steps claimed again", runs.claimed_again),
        ("steps redispatched after their lease", logged.redispatched),
        ("dead letters", runs.dead_letters),
        ("start errors (samples)", starts.samples),
        ("processes that exited", exited),
        ("ERROR lines logged", errors[:20] + ([f"... {len(errors)} in all"] if errors else [])),
    ):
        if shown:
            print(f"{label} {title}:\n  " + "\n  ".join(shown))


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def _with(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` (a copy) with the item at ``path`` replaced by ``new``."""
    if not path:
        return new
    copy: Any = list(value) if isinstance(value, list) else dict(value)
    copy[path[0]] = _with(value[path[0]], path[1:], new)
    return copy


def check_ended_once(
    label: str, started: list[Started], results: list[Any], runs: Runs, log_text: str
) -> None:
    """Every execution SUCCEEDED with its kind's output and each of its events once;
    one whose steps ran again (its side effects repeated) may show the later count in
    its output and miss a failed attempt's events lost with their commit (printed),
    never an event doubled."""
    deviations = []
    for one, result, (ran, counted, history) in zip(started, results, runs.seen, strict=True):
        assert result.status == "SUCCEEDED", (one.kind, result, log_text)
        expected_calls = EXPECTED_CALLS[one.kind]
        # Every step that succeeded ran: never fewer side effects than expected.
        assert ran >= expected_calls, (one.kind, one.tag, ran, expected_calls)
        output = result.output
        if one.kind in COUNTED:
            path, once = COUNTED[one.kind]
            value = _at(output, path)
            # The count of one of the calls that happened (the file's or Redis').
            assert once <= value <= max(ran, counted), (one.kind, result, ran, counted)
            if ran == expected_calls:
                assert value == once, (one.kind, result, ran)
            output = _with(output, path, once)
        assert output == expected_output(one.kind, one.n, one.tag), (one.kind, result)

        wanted: dict[tuple[str, Any], int] = {
            **EXPECTED_EVENTS[one.kind],
            ("ExecutionStarted", None): 1,
            ("ExecutionSucceeded", None): 1,
        }
        seen = {key: count_events(history, key[0], key[1]) for key in wanted}
        if ran == expected_calls:
            assert seen == wanted, (one, seen)
            continue
        # Its steps ran again: still no event doubled, each success and timer's effect
        # once; the rest (a failed attempt lost with its commit) reported.
        for key, count in wanted.items():
            if key[0] in ONCE or key[0].startswith("Execution"):
                assert seen[key] == count, (one, key, seen)
            else:
                assert seen[key] <= count, (one, key, seen)
        if seen != wanted:
            deviations.append(f"{one.handle.execution_id}: {seen}")
    if deviations:
        print(
            f"{label} histories of re-run steps not as expected (none doubled):\n  "
            + "\n  ".join(deviations)
        )
