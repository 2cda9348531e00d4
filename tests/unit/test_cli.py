"""CLI tests that need no Redis: arguments, exit codes, rendering, the beat scheduler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import ExecutionResult, ExecutionStatus, HistoryEvent, cli, config
from orchestrator.engine.beat import MIN_SLEEP_S, OrchestratorScheduler
from orchestrator.engine.timers import TickOutcome
from orchestrator.examples import ACTIVITIES_MODULE as DEMO_ACTIVITIES
from orchestrator.testing import restoring_process_state

BROKEN = json.dumps(
    {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "Missing"},
            "Orphan": {"Type": "Pass", "End": True},
        },
    }
)
UNKNOWN_RESOURCE = json.dumps(
    {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "no-such-activity", "End": True}}}
)


@pytest.fixture
def process_restored() -> Iterator[None]:
    """Whatever a command configures in this process (settings, e.g. ``--tasks``; stores;
    the Celery app, e.g. ``worker``) is undone after the test."""
    with restoring_process_state():
        yield


@pytest.fixture(autouse=True)
def no_redis(process_restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """No REDIS_URL: the environment's settings, without it, are in force.

    Set up after ``process_restored`` so that the environment is back before the process's
    settings are restored from it."""
    for name in ("REDIS_URL", "ORCHESTRATOR_REDIS_URL", "BROKER_URL", "ORCHESTRATOR_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)
    config.configure(None)  # re-reads the patched environment


@pytest.fixture
def no_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if `run` tries to start the in-process orchestrator."""
    import orchestrator.testing

    def forbidden(*_: Any, **__: Any) -> None:
        raise AssertionError("the in-process orchestrator must not start")

    monkeypatch.setattr(orchestrator.testing, "local_orchestrator", forbidden)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args))


def test_main_exists_and_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("run", "validate", "worker", "beat", "describe", "history", "list"):
        assert command in result.stdout
    assert callable(cli.main)


# ---------------------------------------------------------------------------- validate


def test_validate_demo_workflow() -> None:
    result = invoke("validate", "order_fulfillment", "--tasks", DEMO_ACTIVITIES)
    assert result.exit_code == 0, result.output
    assert "valid: 11 states" in result.stdout


def test_validate_lists_every_issue_on_its_own_line() -> None:
    result = invoke("validate", BROKEN)
    assert result.exit_code == 2
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert "$.States.A.Next: no state named 'Missing'" in lines
    assert any(line.startswith("$.States.Orphan:") for line in lines)
    assert "2 issues" in result.stderr


def test_validate_unknown_resource() -> None:
    result = invoke("validate", UNKNOWN_RESOURCE)
    assert result.exit_code == 2
    assert "$.States.A.Resource:" in result.stderr


def test_validate_unparseable_definition() -> None:
    result = invoke("validate", "{not json")
    assert result.exit_code == 2
    assert "$:" in result.stderr


def test_unimportable_task_module() -> None:
    result = invoke("validate", "order_fulfillment", "--tasks", "no_such_module_xyz")
    assert result.exit_code == 2
    assert "cannot import task module 'no_such_module_xyz'" in result.stderr


# --------------------------------------------------------------------- run: bad input


@pytest.mark.usefixtures("no_embedded")
def test_run_invalid_input_json() -> None:
    result = invoke("run", "order_fulfillment", "--input", "{bad")
    assert result.exit_code == 2
    assert "--input is not valid JSON" in result.stderr


@pytest.mark.usefixtures("no_embedded")
def test_run_input_and_input_file_are_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text("{}")
    result = invoke("run", "order_fulfillment", "--input", "{}", "--input-file", str(path))
    assert result.exit_code == 2
    assert "not both" in result.stderr


@pytest.mark.usefixtures("no_embedded")
def test_run_missing_input_file(tmp_path: Path) -> None:
    result = invoke("run", "order_fulfillment", "--input-file", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "cannot read input file" in result.stderr


@pytest.mark.usefixtures("no_embedded")
def test_run_invalid_json_in_input_file(tmp_path: Path) -> None:
    path = tmp_path / "in.json"
    path.write_text("[1,")
    result = invoke("run", "order_fulfillment", "--input-file", str(path))
    assert result.exit_code == 2
    assert "is not valid JSON" in result.stderr


@pytest.mark.usefixtures("no_embedded")
def test_run_bad_definition_exits_2_before_starting_anything() -> None:
    result = invoke("run", BROKEN, "--input", "{}")
    assert result.exit_code == 2
    assert "$.States.A.Next: no state named 'Missing'" in result.stderr


@pytest.mark.usefixtures("no_embedded")
def test_run_bad_definition_json_keeps_last_line_contract() -> None:
    result = invoke("run", BROKEN, "--json")
    assert result.exit_code == 2
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(last) == {"execution_id", "status", "output", "error", "cause"}
    assert last["execution_id"] is None
    assert last["error"] == "DefinitionError"
    assert "Missing" in last["cause"]


def test_run_negative_timeout_is_a_usage_error() -> None:
    result = invoke("run", "order_fulfillment", "--timeout", "-1")
    assert result.exit_code == 2


# ------------------------------------------------------------- commands needing Redis


@pytest.mark.parametrize(
    "args",
    [
        ["describe", "some-id"],
        ["history", "some-id"],
        ["list"],
        ["list", "--json"],
        ["worker"],
        ["beat"],
    ],
)
def test_commands_needing_redis_explain_it(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr
    assert result.stdout == ""


def test_list_rejects_unknown_status() -> None:
    result = invoke("list", "--status", "SLEEPING")
    assert result.exit_code == 2


# ------------------------------------------------------------------------- rendering


def event(type_: str, state: str | None = None, **details: Any) -> HistoryEvent:
    return HistoryEvent(
        id=1, type=type_, timestamp=datetime(2024, 1, 1, tzinfo=UTC), state=state, details=details
    )


def test_failure_details_show_error_and_cause() -> None:
    text = cli.event_details(event("TaskFailed", "Charge", error="Boom", cause="it broke"), 80)
    assert text == "Boom: it broke"


def test_exit_details_show_output_on_one_truncated_line() -> None:
    output = {"text": "line one\nline two", "big": "x" * 500}
    text = cli.event_details(event("TaskStateExited", "A", output=output), 60)
    assert text.startswith('output={"text": "line one\\nline two"')
    assert len(text) <= 60 and text.endswith("…")
    assert "\n" not in text


def test_entered_details_skip_the_repeated_input() -> None:
    assert cli.event_details(event("TaskStateEntered", "A", input={"a": 1}), 80) == ""
    assert cli.event_details(event("ExecutionStarted", input={"a": 1}), 80) == 'input={"a": 1}'


def test_render_event_is_one_line_with_type_and_state() -> None:
    line = cli.render_event(event("TaskSucceeded", "Validate", output={"ok": True}), 100)
    assert "\n" not in line.plain
    assert "TaskSucceeded" in line.plain and "Validate" in line.plain
    assert line.plain.endswith('output={"ok": true}')


# ---------------------------------------------------------------------------- follow


class FakeHandle:
    """An execution that gains one event per wait and ends after ``events``."""

    def __init__(self, events: list[HistoryEvent], end: ExecutionStatus | None) -> None:
        self.events = [e.model_copy(update={"id": i}) for i, e in enumerate(events, 1)]
        self.visible = 0
        self.end = end

    def wait_events(self, after: int, timeout: float) -> list[HistoryEvent]:
        assert timeout <= cli.FOLLOW_SLICE_S
        self.visible = min(self.visible + 1, len(self.events))
        return self.events[after : self.visible]

    def result(self, timeout: float | None = None) -> ExecutionResult:
        assert timeout == 0  # follow only looks: the waiting is wait_events'
        if self.end is None or self.visible < len(self.events):
            raise TimeoutError("still running")
        return ExecutionResult(execution_id="x", status=self.end, output={"done": True})

    def history(self, after: int = 0) -> list[HistoryEvent]:
        return self.events[after : self.visible]


def test_follow_reports_each_event_once_until_the_end() -> None:
    events = [event(f"Event{i}") for i in range(5)]
    seen: list[str] = []
    result = cli.follow(
        FakeHandle(events, ExecutionStatus.SUCCEEDED),  # type: ignore[arg-type]
        lambda e: seen.append(e.type),
        timeout=10,
    )
    assert seen == [f"Event{i}" for i in range(5)]
    assert result is not None and result.status is ExecutionStatus.SUCCEEDED


def test_follow_gives_up_at_the_deadline() -> None:
    handle = FakeHandle([event("ExecutionStarted")], end=None)
    result = cli.follow(handle, lambda e: None, timeout=0.05)  # type: ignore[arg-type]
    assert result is None


# ----------------------------------------------------------------------------- beat


def scheduler() -> OrchestratorScheduler:
    from orchestrator.engine.celery_app import app

    return OrchestratorScheduler(app=app, lazy=True)


def test_scheduler_tick_runs_the_timer_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    pools: list[object] = []

    busy = [False, True]

    def fake_tick(owner: str = "", pool: object = None) -> TickOutcome:
        calls.append(owner)
        pools.append(pool)
        return TickOutcome(0, busy=busy[len(calls) - 1])

    monkeypatch.setattr("orchestrator.engine.timers.run_tick", fake_tick)
    sched = scheduler()
    interval = sched.tick()
    # A tick cut short by its budget with timers still due: beat comes back at once.
    assert sched.tick() == MIN_SLEEP_S
    assert calls == [sched.tick_owner, sched.tick_owner]
    assert pools == [sched.firing_pool, sched.firing_pool]
    assert sched.firing_pool._pool is None  # a lazy scheduler starts no processes
    assert MIN_SLEEP_S <= interval <= config.get_settings().tick_interval_seconds


def test_scheduler_tick_survives_timer_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(owner: str = "", pool: object = None) -> TickOutcome:
        raise ConnectionError("redis went away")

    monkeypatch.setattr("orchestrator.engine.timers.run_tick", broken)
    interval = scheduler().tick()
    assert 0 < interval <= config.get_settings().tick_interval_seconds


def test_a_beat_scheduler_starts_and_stops_its_firing_processes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.engine.celery_app import app

    monkeypatch.setattr(config.get_settings(), "timer_processes", 2)
    sched = OrchestratorScheduler(app=app)  # not lazy: as celery beat makes it
    try:
        assert sched.firing_pool.processes == 2 and sched.firing_pool._pool is not None
    finally:
        sched.close()
    assert sched.firing_pool._pool is None


# ------------------------------------------------------------- version, exit codes, tokens


def test_version_prints_the_package_version() -> None:
    import importlib.metadata

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"orchestrator {importlib.metadata.version('orchestrator')}"


def test_help_lists_the_exit_codes() -> None:
    text = " ".join(invoke("--help").stdout.split())
    for code in ("0 success", "1 the execution ended", "2 bad definition", "3 Redis unreachable"):
        assert code in text


@pytest.mark.parametrize(
    "args",
    [
        ("task", "success", "tok", "--output", "{}"),
        ("task", "failure", "tok", "--error", "E", "--cause", "c"),
        ("task", "heartbeat", "tok"),
        ("list",),
    ],
)
def test_commands_that_need_redis_say_so_without_it(args: tuple[str, ...]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr


def test_task_success_rejects_a_bad_token_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # A malformed token is refused before any Redis call (its execution cannot be read).
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    config.configure(None)
    result = invoke("task", "success", "not-a-token", "--output", '{"ok": true}')
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid task token")


def test_task_success_output_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    config.configure(None)
    result = invoke("task", "success", "tok", "--output", "{nope")
    assert result.exit_code == 2
    assert "--output is not valid JSON" in result.stderr


@pytest.mark.parametrize("value", ["not json", "[1, 2]", '{"charge": 3}'])
def test_malformed_resource_aliases_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_RESOURCE_ALIASES", value)
    config.configure(None)
    result = invoke("validate", "order_fulfillment", "--tasks", DEMO_ACTIVITIES)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(
        "error: ORCHESTRATOR_RESOURCE_ALIASES must be a JSON object of resource string -> "
        "activity name"
    )


def test_resource_aliases_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_RESOURCE_ALIASES", '{"urn:billing:charge": "charge-payment"}')
    config.configure(None)
    assert config.get_settings().resource_aliases == {"urn:billing:charge": "charge-payment"}


def test_data_with_brackets_prints_as_itself(capsys: pytest.CaptureFixture[str]) -> None:
    # A dead message's cause quotes "[args, kwargs, embed]"; markup would swallow it.
    cli.stdout_console().print("body must be [args, kwargs, embed], not [bold red]x[/]")
    assert "body must be [args, kwargs, embed], not [bold red]x[/]" in capsys.readouterr().out
