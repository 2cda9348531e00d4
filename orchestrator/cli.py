"""The ``orchestrator`` command line (also ``python -m orchestrator``).

Commands are thin: they parse and check their arguments, call the public API
(:mod:`orchestrator`) and render the result with rich. Shared pieces live in the helpers
below so that later commands (``dlq``, ``redrive``, ``stop``, ``ui``) can reuse them:

* :func:`require_redis` for commands that need a shared Redis,
* :func:`use_task_modules` to import activity modules and put them into the settings,
* :func:`fail` / :func:`emit_json` / the ``EXIT_*`` codes for consistent exits,
* ``render_*`` functions for descriptions, histories and event lines.

A command group is a typer sub-app registered with ``app.add_typer(...)``, e.g.::

    dlq_app = typer.Typer(help="Inspect the dead-letter queue.", no_args_is_help=True)
    app.add_typer(dlq_app, name="dlq")

Exit codes (:data:`EXIT_CODES`): 0 success; 1 the execution did not succeed (or was not
found, or did not end in time); 2 bad usage, bad definition or input, or missing or
malformed configuration; 3 Redis (the store) unreachable. A ``StoreUnavailable`` or
``ConfigurationError`` raised by any command ends it with one line on stderr (see
:class:`OrchestratorGroup`), never a traceback.
"""

import dataclasses
import importlib
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from orchestrator import (
    DefinitionError,
    ExecutionDescription,
    ExecutionHandle,
    ExecutionNotFound,
    ExecutionResult,
    ExecutionStatus,
    HistoryEvent,
    InvalidInputError,
    MapRunDescription,
    OrchestratorError,
    TaskTokenError,
    config,
    describe_execution,
    describe_map_run,
    get_dead_letter,
    get_execution_history,
    list_dead_letters,
    list_executions,
    list_map_run_children,
    list_map_runs,
    redrive_execution,
    send_task_failure,
    send_task_heartbeat,
    send_task_success,
    start_workflow,
    stop_execution,
    validate_definition,
)
from orchestrator.client import schedules as schedule_api
from orchestrator.client.api import END_EVENTS
from orchestrator.client.machines import (
    create_state_machine,
    create_state_machine_alias,
    delete_state_machine,
    delete_state_machine_alias,
    delete_state_machine_version,
    deploy_workflows,
    describe_state_machine,
    list_state_machine_aliases,
    list_state_machine_versions,
    list_state_machines,
    publish_state_machine_version,
    update_state_machine,
    update_state_machine_alias,
)
from orchestrator.client.models import (
    StateMachineAlias,
    StateMachineDescription,
    StateMachineVersion,
    StepInfo,
)
from orchestrator.errors import ConfigurationError, StoreUnavailable, mask_url
from orchestrator.language.stepkeys import display_key

EXIT_OK = 0
#: The execution ended in anything but SUCCEEDED, was not found, or outlived --timeout.
EXIT_FAILED = 1
#: Bad arguments, definition, input or configuration (click's own usage errors use 2 too).
EXIT_USAGE = 2
#: The orchestrator's Redis could not be reached (refused, or no answer in time).
EXIT_STORE_UNAVAILABLE = 3
#: Ctrl-C, as shells report a SIGINT death (128 + 2).
EXIT_INTERRUPTED = 130

#: The exit codes, as ``--help`` and the README list them.
EXIT_CODES = (
    "Exit codes: 0 success; 1 the execution ended in anything but SUCCEEDED (or was not "
    "found, or --timeout passed); 2 bad definition, input, options or configuration; "
    "3 Redis unreachable."
)

#: `run` with REDIS_URL: a step still unclaimed after this long makes it ask whether any
#: worker consumes its queue (and say so if none does).
NO_WORKER_AFTER_S = 3.0

#: Where `run` runs the execution (shown in its header line).
REMOTE = "REDIS_URL"
EMBEDDED = "in-process, embedded Redis"

#: The longest `run` waits for new history events in one blocking read before it looks
#: at the execution's status (and whether a worker consumes the queue) again.
FOLLOW_SLICE_S = 1.0
#: Width of one-line details when output is not a terminal (a terminal uses its width).
PLAIN_DETAILS_WIDTH = 120
#: Console width when output is not a terminal (and COLUMNS is not set).
PIPED_WIDTH = 160
#: A run's final output is pretty-printed up to this size (as compact JSON), else cut.
MAX_PRETTY_OUTPUT_CHARS = 4000


class OrchestratorGroup(TyperGroup):
    """The command group: what any command can meet ends it the same way, in one line.

    ``StoreUnavailable`` exits 3, ``ConfigurationError`` (REDIS_URL unset, a malformed
    setting) exits 2; click's usage errors and ``typer.Exit`` pass through.
    """

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (StoreUnavailable, ConfigurationError) as exc:
            fail(str(exc), exit_code_for(exc))


def exit_code_for(exc: BaseException, default: int = EXIT_USAGE) -> int:
    """The exit code of an error: 3 for an unreachable store, 2 for configuration or for
    what the caller gave (a definition, an input, a name, a cause, a task token)."""
    if isinstance(exc, StoreUnavailable):
        return EXIT_STORE_UNAVAILABLE
    if isinstance(exc, ConfigurationError | DefinitionError | InvalidInputError | TaskTokenError):
        return EXIT_USAGE
    return default


app = typer.Typer(
    name="orchestrator",
    cls=OrchestratorGroup,
    help="Run and inspect Step Functions-compatible workflows (Amazon States Language).",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    # Markdown: docstring paragraphs are re-flowed to the terminal instead of keeping
    # their source line breaks.
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"orchestrator {package_version()}")
        raise typer.Exit(EXIT_OK)


def package_version() -> str:
    """The installed package's version (``orchestrator --version``)."""
    try:
        return importlib.metadata.version("orchestrator")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


@app.callback()
def _options(
    version: Annotated[
        bool | None,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = None,
) -> None:
    """Run and inspect Step Functions-compatible workflows (Amazon States Language)."""


# --------------------------------------------------------------------------- helpers


def _console(stderr: bool) -> Console:
    # No markup: what the CLI prints is data (ids, causes, inputs, dead messages), and a
    # "[...]" in it must show as itself, never vanish or restyle the output.
    console = Console(stderr=stderr, soft_wrap=True, markup=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped or captured output: rich would assume 80 columns and squeeze tables;
        # a log file or a pager has room for more.
        console.width = PIPED_WIDTH
    return console


def stdout_console() -> Console:
    """A console on the current stdout (created per call so test runners can swap it)."""
    return _console(stderr=False)


def stderr_console() -> Console:
    """A console on the current stderr, for diagnostics and --json runs' progress."""
    return _console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE, *, lines: Sequence[str] = ()) -> NoReturn:
    """Print ``message`` (and each of ``lines`` on its own line) on stderr and exit."""
    err = stderr_console()
    err.print(Text(f"error: {message}", style="bold red"))
    for line in lines:
        err.print(Text(f"  {line}"))
    raise typer.Exit(code)


def fail_definition(error: DefinitionError) -> NoReturn:
    """Exit 2 listing every issue of an invalid definition, one per line."""
    count = len(error.issues)
    fail(
        f"invalid state machine definition ({count} issue{'s' if count != 1 else ''})",
        lines=[str(issue) for issue in error.issues],
    )


def emit_json(value: Any) -> None:
    """Print ``value`` as one line of JSON on stdout (machine-readable output)."""
    # Plain print, not rich: no markup, highlighting or wrapping may alter the line.
    print(json.dumps(value, ensure_ascii=False, default=str), flush=True)


def require_redis() -> str:
    """Return the configured Redis URL, or exit 2 explaining how to set one."""
    url = config.get_settings().redis_url
    if not url:
        fail(
            "REDIS_URL is not set: this command needs the Redis your workers use "
            "(e.g. REDIS_URL=redis://localhost:6379/0). Only `orchestrator run` works "
            "without one, with an embedded Redis that lives as long as the run."
        )
    return url


def use_task_modules(modules: Sequence[str] | None) -> list[str]:
    """Import the activity modules and make them the configured ``task_modules``.

    ``None`` keeps the configured ones (``ORCHESTRATOR_TASK_MODULES``, default none).
    Importing registers their activities, which definition validation needs to resolve
    every Task ``Resource``; a module that fails to import exits 2.
    """
    settings = config.get_settings()
    wanted = list(modules) if modules else list(settings.task_modules)
    if wanted != settings.task_modules:
        config.configure(settings.model_copy(update={"task_modules": wanted}))
    # Make `--tasks my_activities` work from the project folder even when run through the
    # console script (whose sys.path does not start with the current directory).
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    for module in wanted:
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is a usage error here
            fail(f"cannot import task module {module!r}: {type(exc).__name__}: {exc}")
    return wanted


def parse_input(text: str | None, file: Path | None, option: str = "--input") -> Any:
    """The execution input from ``--input`` JSON text or ``--input-file`` (``-``: stdin).

    ``option`` names the pair in messages (``--output`` for ``task success``).
    """
    if text is not None and file is not None:
        fail(f"use either {option} or {option}-file, not both")
    source = option
    if file is not None:
        source = "stdin" if str(file) == "-" else str(file)
        try:
            text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read input file {source!r}: {exc}")
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{source} is not valid JSON: {exc}")


def one_line(value: Any, width: int) -> str:
    """``value`` as compact JSON on one line, cut to ``width`` characters with an ellipsis."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def event_details(event: HistoryEvent, width: int) -> str:
    """The short, one-line summary of an event's details that matters for its type."""
    details = event.details
    if "error" in details or "cause" in details:
        # Failures: the error name first, then as much of the cause as fits.
        error = str(details.get("error") or "")
        cause = details.get("cause")
        text = f"{error}: {one_line(cause, width)}" if cause not in (None, "") else error
        return one_line(text, width)
    if event.type == "TaskScheduled":
        resource = str(details.get("resource", ""))
        if details.get("resourceType"):  # an integration's: "http:invoke"
            resource = f"{details['resourceType']}:{resource}"
        return one_line(f"{resource} {one_line(details.get('parameters'), width)}", width)
    if "output" in details:
        return "output=" + one_line(details["output"], max(1, width - 7))
    if "input" in details:
        # A state's input is the previous state's output, already shown: only the
        # execution's own input is news.
        if event.type != "ExecutionStarted":
            return ""
        return "input=" + one_line(details["input"], max(1, width - 6))
    if not details:
        return ""
    return one_line(" ".join(f"{key}={one_line(v, width)}" for key, v in details.items()), width)


def _event_style(event_type: str) -> str:
    if event_type.endswith(("Failed", "TimedOut", "Aborted")):
        return "bold red"
    if event_type in ("ExecutionSucceeded", "TaskSucceeded"):
        return "green"
    if event_type.startswith("Execution"):
        return "bold"
    return "cyan"


def _local_time(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _iso(when: datetime) -> str:
    return when.astimezone().isoformat(timespec="milliseconds")


def _clock(when: datetime) -> str:
    return when.astimezone().strftime("%H:%M:%S.%f")[:-3]


def render_event(event: HistoryEvent, width: int | None = None) -> Text:
    """One history event as one line: time, type, state, short details."""
    head = Text()
    head.append(f"{_clock(event.timestamp)}  ", style="dim")
    head.append(f"{event.type:<22}", style=_event_style(event.type))
    head.append(f" {event.state or '-':<20} ", style="bold")
    room = (width or PLAIN_DETAILS_WIDTH + head.cell_len) - head.cell_len
    head.append(event_details(event, max(20, room)))
    return head


def render_history(
    events: Sequence[HistoryEvent], title: str | None = None, width: int = PIPED_WIDTH
) -> Table:
    """A table of history events, each on one row that fits ``width`` columns."""
    table = Table(title=title)
    table.add_column("#", justify="right", style="dim", no_wrap=True)
    table.add_column("Time", style="dim", no_wrap=True)
    table.add_column("Type", no_wrap=True)
    table.add_column("State", style="bold", no_wrap=True)
    table.add_column("Details", no_wrap=True, overflow="ellipsis")
    # Details get what the other columns leave (each column costs 3 cells of borders
    # and padding), so every event stays on one row.
    fixed = 12 + 5 * 3 + 1
    fixed += max((len(str(e.id)) for e in events), default=1)
    fixed += max((len(e.type) for e in events), default=4)
    fixed += max((len(e.state or "-") for e in events), default=5)
    room = max(20, width - fixed)
    for event in events:
        table.add_row(
            str(event.id),
            _clock(event.timestamp),
            Text(event.type, style=_event_style(event.type)),
            event.state or "-",
            event_details(event, room),
        )
    return table


def _status_text(status: ExecutionStatus | str | None) -> Text:
    value = status.value if isinstance(status, ExecutionStatus) else str(status)
    style = {"SUCCEEDED": "bold green", "RUNNING": "bold yellow"}.get(value, "bold red")
    return Text(value, style=style)


def render_description(desc: ExecutionDescription) -> Table:
    """An execution's description as a two-column table."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    stop = _iso(desc.stop_time) if desc.stop_time else "-"
    rows: list[tuple[str, Text | str]] = [
        ("Execution", desc.execution_id),
        ("ARN", desc.execution_arn),
        ("Workflow", desc.workflow),
        ("Status", _status_text(desc.status)),
        ("Started", _iso(desc.start_time)),
        ("Stopped", stop),
        ("Redrives", str(desc.redrive_count)),
        ("Input", one_line(desc.input, 10_000)),
    ]
    if desc.state_machine_version_arn is not None:
        rows.append(("Version", desc.state_machine_version_arn))
    if desc.state_machine_alias_arn is not None:
        rows.append(("Alias", desc.state_machine_alias_arn))
    if desc.revision_id is not None:
        rows.append(("Revision", desc.revision_id))
    if desc.output is not None:
        rows.append(("Output", one_line(desc.output, 10_000)))
    if desc.error is not None or desc.cause is not None:
        rows.append(("Error", Text(desc.error or "", style="red")))
        rows.append(("Cause", desc.cause or ""))
    for step in desc.steps:
        rows.append(("Step", f"{display_key(step.key)}: {step.status} (attempts: {step.attempts})"))
    if desc.parent_execution_id is not None and desc.map_run_arn is not None:
        rows.append(("Parent", f"{desc.parent_execution_id} (item {desc.map_index})"))
        rows.append(("Map Run", desc.map_run_arn or ""))
    elif desc.parent_execution_id is not None:
        rows.append(("Parent", f"{desc.parent_execution_id} (state {desc.parent_state})"))
    for child in desc.children:
        rows.append(("Child", f"{child.execution_id} (state {child.state}, {child.mode})"))
    if desc.execution_type == "EXPRESS":
        rows.append(("Type", "EXPRESS (its history keeps only its start and end)"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def render_executions(executions: Sequence[ExecutionDescription]) -> Table:
    """A table of executions, one per row."""
    table = Table()
    table.add_column("Execution", no_wrap=True)
    table.add_column("Workflow")
    table.add_column("Status", no_wrap=True)
    table.add_column("Started", no_wrap=True)
    table.add_column("Stopped", no_wrap=True)
    for desc in executions:
        table.add_row(
            desc.execution_id,
            desc.workflow,
            _status_text(desc.status),
            _local_time(desc.start_time),
            _local_time(desc.stop_time) if desc.stop_time else "-",
        )
    return table


def result_json(
    execution_id: str | None,
    status: str | None,
    output: Any = None,
    error: str | None = None,
    cause: str | None = None,
) -> dict[str, Any]:
    """The object ``run --json`` prints as its last stdout line."""
    return {
        "execution_id": execution_id,
        "status": status,
        "output": output,
        "error": error,
        "cause": cause,
    }


# ------------------------------------------------------------------------ run command


def follow(
    handle: ExecutionHandle,
    on_event: Callable[[HistoryEvent], None],
    timeout: float | None,
    on_poll: Callable[[], None] | None = None,
) -> ExecutionResult | None:
    """Report each new history event until the execution ends; None if ``timeout`` hit.

    Reads only the events past the last one seen, with blocking reads (ids are dense, the
    history append-only): a new event is reported as soon as it is committed. The end
    event is committed together with the final status, so once it is read the result is.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        wait = FOLLOW_SLICE_S if remaining is None else min(FOLLOW_SLICE_S, remaining)
        events = handle.wait_events(seen, wait)
        for event in events:
            on_event(event)
            seen = event.id
        if events and not any(event.type in END_EVENTS for event in events):
            continue
        try:
            result: ExecutionResult | None = handle.result(timeout=0)
        except TimeoutError:
            result = None
        if result is not None:
            # Ended during a quiet read: report whatever came last.
            for event in handle.history(after=seen):
                on_event(event)
            return result
        if deadline is not None and time.monotonic() >= deadline:
            return None
        if on_poll is not None:
            on_poll()


class WorkerWatch:
    """Says (once per queue, on stderr) when a step waits on a queue no worker consumes.

    Without it, `run` against a Redis with no worker would wait forever in silence. A
    step still SCHEDULED (unclaimed) for ``NO_WORKER_AFTER_S`` makes it look up the queue
    of the step's activity and the queues the running workers consume (their entries in
    Redis, :func:`orchestrator.engine.activities.consumed_queues`: on Redis and RabbitMQ
    brokers alike).
    """

    def __init__(self, handle: ExecutionHandle, after: float = NO_WORKER_AFTER_S) -> None:
        self.handle = handle
        self.after = after
        self.started = time.monotonic()
        self.next_check = self.started + after
        self.warned: set[str] = set()

    def check(self) -> None:
        """Called between polls: look again when due, warn if nobody consumes a queue a
        step waits on."""
        now = time.monotonic()
        if now < self.next_check:
            return
        self.next_check = now + self.after
        for queue in unserved_queues(self.handle.describe().steps):
            if queue in self.warned:
                continue
            self.warned.add(queue)
            settings = config.get_settings()
            url = mask_url(settings.redis_url or "")
            option = "" if queue == settings.queue else f"--queues {queue} "
            stderr_console().print(
                Text(
                    f"no worker consumes queue {queue!r} on REDIS_URL={url}; start one with "
                    f"`orchestrator worker {option}--tasks ...` (still waiting)",
                    style="yellow",
                )
            )


def unserved_queues(steps: Sequence[StepInfo]) -> list[str]:
    """The queues that SCHEDULED steps wait on and no running worker consumes."""
    from orchestrator.engine import activities

    return activities.unserved_queues(
        [step.activity for step in steps if step.status == "SCHEDULED" and step.activity]
    )


def _run_and_follow(
    definition: str,
    payload: Any,
    name: str | None,
    priority: int | None,
    timeout: float | None,
    as_json: bool,
    where: str,
) -> int:
    """Start the execution, stream its events and report how it ended; the exit code."""
    # With --json, stdout carries only the final JSON line; progress goes to stderr.
    out = stderr_console() if as_json else stdout_console()
    width = out.width
    try:
        handle = start_workflow(definition, payload, name=name, priority=priority)
    except DefinitionError as exc:
        _json_error(as_json, "DefinitionError", str(exc))
        fail_definition(exc)
    except OrchestratorError as exc:  # bad input or name, name taken with other input
        _json_error(as_json, type(exc).__name__, str(exc))
        fail(str(exc), exit_code_for(exc))
    out.print(
        Text.assemble(("Execution ", "dim"), (handle.execution_id, "bold"), (f" ({where})", "dim"))
    )
    watch = WorkerWatch(handle) if where == REMOTE else None
    try:
        result = follow(
            handle,
            lambda event: out.print(render_event(event, width)),
            timeout,
            on_poll=watch.check if watch is not None else None,
        )
    except KeyboardInterrupt:
        # Say what became of the execution: with a shared Redis it carries on without us.
        fate = "keeps running" if where == REMOTE else "stops with this process"
        stderr_console().print(Text(f"interrupted: execution {handle.execution_id} {fate}"))
        return EXIT_INTERRUPTED
    if result is None:
        cause = f"execution still running after {timeout:g} s (--timeout)"
        out.print(Text(f"TIMEOUT: {cause}", style="bold red"))
        if as_json:
            emit_json(result_json(handle.execution_id, "RUNNING", cause=cause))
        return EXIT_FAILED
    out.print(Text.assemble("Result: ", _status_text(result.status)))
    if result.error is not None or result.cause is not None:
        out.print(Text(": ".join(filter(None, (result.error, result.cause))), style="red"))
    elif not as_json:
        compact = json.dumps(result.output, ensure_ascii=False, default=str)
        if len(compact) <= MAX_PRETTY_OUTPUT_CHARS:
            out.print_json(compact)
        else:
            out.print(Text("Output: " + one_line(compact, MAX_PRETTY_OUTPUT_CHARS)))
    if as_json:
        emit_json(
            result_json(
                result.execution_id,
                result.status.value,
                result.output,
                result.error,
                result.cause,
            )
        )
    return EXIT_OK if result.status is ExecutionStatus.SUCCEEDED else EXIT_FAILED


def _json_error(as_json: bool, error: str, cause: str) -> None:
    # Keep the --json contract (the last stdout line is the result object) even when
    # nothing could be started.
    if as_json:
        emit_json(result_json(None, None, error=error, cause=cause))


TasksOption = Annotated[
    list[str] | None,
    typer.Option(
        "--tasks",
        "-t",
        metavar="MODULE",
        help="Module registering activities (repeatable; default: ORCHESTRATOR_TASK_MODULES;"
        " the demo's: orchestrator.examples.order_activities).",
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=1,
        max=65535,
        help="Serve this process's Prometheus metrics on this port (/metrics); see "
        "docs/deployment.md for which metric is where.",
    ),
]
MetricsHostOption = Annotated[
    str, typer.Option("--metrics-host", help="Interface the metrics port listens on.")
]
DefinitionArg = Annotated[
    str,
    typer.Argument(
        help="A workflow name (looked up in ORCHESTRATOR_WORKFLOWS_DIR, default ./workflows, "
        "then the packaged examples, e.g. order_fulfillment), a file path, or ASL JSON/YAML "
        "text.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@app.command()
def run(
    definition: DefinitionArg,
    input: Annotated[
        str | None, typer.Option("--input", "-i", help="Execution input as JSON text.")
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option("--input-file", "-f", help="Read the JSON input from a file ('-': stdin)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Execution name (its id, and an idempotency key)."),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            "--priority",
            "-p",
            min=0,
            max=9,
            help="0 (least urgent) to 9 (most urgent); default ORCHESTRATOR_DEFAULT_PRIORITY.",
        ),
    ] = None,
    tasks: TasksOption = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="End stdout with one JSON line: execution_id, status, output, error, cause"
            " (progress goes to stderr).",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="Give up waiting after this many seconds (exit 1)."),
    ] = None,
) -> None:
    """Run one execution to its end, showing each step as it happens.

    Without REDIS_URL everything runs in this process (an embedded Redis, a worker and
    the timer loop). With REDIS_URL the execution is started there and followed while
    your workers run it.

    Exit code: 0 SUCCEEDED; 1 FAILED, TIMED_OUT, ABORTED or --timeout reached; 2 bad
    definition, input or options; 3 Redis unreachable.
    """
    payload = parse_input(input, input_file)
    modules = use_task_modules(tasks)
    # Check the definition before starting anything (an embedded Redis takes a moment).
    try:
        validate_definition(definition)
    except DefinitionError as exc:
        _json_error(as_json, "DefinitionError", str(exc))
        fail_definition(exc)
    if config.get_settings().redis_url:
        code = _run_and_follow(definition, payload, name, priority, timeout, as_json, REMOTE)
    else:
        # Imported here: the in-process worker pulls in celery's testing helpers, which
        # the inspection commands do not need.
        from orchestrator.testing import local_orchestrator

        with local_orchestrator(task_modules=modules):
            code = _run_and_follow(definition, payload, name, priority, timeout, as_json, EMBEDDED)
    raise typer.Exit(code)


@app.command()
def validate(definition: DefinitionArg, tasks: TasksOption = None) -> None:
    """Check a definition (every Task Resource must name a registered activity).

    Exit code: 0 valid; 2 invalid, with every issue on its own line on stderr.
    """
    use_task_modules(tasks)
    try:
        machine = validate_definition(definition)
    except DefinitionError as exc:
        fail_definition(exc)
    total = sum(1 for _ in machine.walk())
    nested = total - len(machine.states)
    summary = f"valid: {total} state{'s' if total != 1 else ''}"
    if nested:
        summary += f" ({len(machine.states)} top-level, {nested} nested)"
    stdout_console().print(Text(f"{summary}, starting at {machine.start_at!r}", style="green"))


# ---------------------------------------------------------------- processes: worker, beat


@app.command()
def worker(
    tasks: TasksOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "0.0.0.0",
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", "-c", min=1, help="Worker processes/threads."),
    ] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Log level.")] = "INFO",
    pool: Annotated[
        str | None,
        typer.Option("--pool", "-P", help="Celery pool: prefork, threads, solo, ..."),
    ] = None,
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queues",
            "-Q",
            metavar="QUEUE",
            help="Consume only these queues (repeatable or comma-separated; default: the "
            "default queue plus the queues of the imported activities).",
        ),
    ] = None,
    hostname: Annotated[
        str | None,
        typer.Option(
            "--hostname",
            "-n",
            help="Node name (default: a unique orchestrator-<pid>@<host>; %h is the host).",
        ),
    ] = None,
) -> None:
    """Run a Celery worker executing activities and orchestration steps (needs REDIS_URL)."""
    require_redis()
    use_task_modules(tasks)
    from orchestrator.engine.activities import worker_queues
    from orchestrator.engine.celery_app import app as celery_app
    from orchestrator.engine.celery_app import reconfigure

    # The Celery app read the settings at import: re-apply them with our task modules,
    # which the worker imports (conf.imports) in every pool process.
    reconfigure(config.get_settings())
    named = [q.strip() for item in queues or [] for q in item.split(",") if q.strip()]
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--queues={','.join(worker_queues(named))}",
        f"--hostname={hostname or default_node_name()}",
    ]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    if pool is not None:
        argv.append(f"--pool={pool}")
    if metrics_port is not None:
        # Before the pool starts: its processes record steps in multiprocess mode.
        serve_metrics(metrics_host, metrics_port, multiprocess=True)
    celery_app.worker_main(argv)


def serve_metrics(host: str, port: int, *, multiprocess: bool) -> None:
    """Serve this process's metrics (``--metrics-port``) from a thread; exit 2 when the
    port cannot be bound."""
    from orchestrator.engine.metrics import serve_process_metrics

    try:
        serve_process_metrics(port, host, multiprocess=multiprocess)
    except OSError as exc:
        fail(f"cannot serve metrics on {host}:{port}: {exc}")


def default_node_name() -> str:
    """A worker's node name unless ``--hostname`` gives one: unique per process on a host
    (Celery's default, ``celery@host``, is the same for every worker there: RabbitMQ
    refuses the second one's control queue, and Flower shows them as one)."""
    return f"orchestrator-{os.getpid()}@%h"


@app.command()
def beat(
    loglevel: Annotated[str, typer.Option("--loglevel", "-l", help="Log level.")] = "INFO",
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "0.0.0.0",
) -> None:
    """Run celery beat, which fires the orchestrator's timers (needs REDIS_URL).

    Timers are retry backoffs, task timeouts and Wait states; the same tick dispatches
    again the steps whose worker died. Every firing is guarded, so a second beat for
    redundancy is safe.
    """
    require_redis()
    from orchestrator.engine.beat import OrchestratorScheduler
    from orchestrator.engine.celery_app import app as celery_app

    if metrics_port is not None:
        # orchestrator_timer_lateness_seconds: the tick observes it in this process.
        serve_metrics(metrics_host, metrics_port, multiprocess=False)
    celery_app.Beat(
        scheduler=f"{OrchestratorScheduler.__module__}:{OrchestratorScheduler.__qualname__}",
        loglevel=loglevel,
    ).run()


# ------------------------------------------------------------------ inspection commands


@app.command()
def describe(
    execution_id: Annotated[str, typer.Argument(help="The execution id (its name) or ARN.")],
    as_json: JsonOption = False,
) -> None:
    """Show an execution: status, input, output, error and steps (needs REDIS_URL)."""
    require_redis()
    try:
        desc = describe_execution(execution_id)
    except ExecutionNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        emit_json(desc.model_dump(mode="json"))
    else:
        stdout_console().print(render_description(desc))


@app.command()
def history(
    execution_id: Annotated[str, typer.Argument(help="The execution id (its name) or ARN.")],
    as_json: JsonOption = False,
) -> None:
    """Show an execution's history events, oldest first (needs REDIS_URL)."""
    require_redis()
    try:
        events = get_execution_history(execution_id)
    except ExecutionNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        emit_json([event.model_dump(mode="json") for event in events])
    else:
        console = stdout_console()
        console.print(render_history(events, f"History of {execution_id}", console.width))


@app.command("list")
def list_command(
    status: Annotated[
        ExecutionStatus | None,
        typer.Option("--status", "-s", case_sensitive=False, help="Only executions in it."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List executions, newest first (needs REDIS_URL)."""
    require_redis()
    executions = list_executions(status, limit)
    if as_json:
        emit_json([desc.model_dump(mode="json", exclude={"steps"}) for desc in executions])
    else:
        stdout_console().print(render_executions(executions))


# ------------------------------------------------------------------ operations


@app.command()
def stop(
    execution_id: Annotated[str, typer.Argument(help="The execution id (its name) or ARN.")],
    error: Annotated[str | None, typer.Option("--error", help="Error name to record.")] = None,
    cause: Annotated[str | None, typer.Option("--cause", help="Cause to record.")] = None,
) -> None:
    """Abort a running execution at once (needs REDIS_URL)."""
    require_redis()
    try:
        stop_execution(execution_id, error, cause)
    except OrchestratorError as exc:
        fail(str(exc), exit_code_for(exc, EXIT_FAILED))
    stdout_console().print(f"{execution_id}: ABORTED")


@app.command()
def redrive(
    execution_id: Annotated[str, typer.Argument(help="The execution id (its name) or ARN.")],
    wait: Annotated[
        float | None,
        typer.Option("--wait", min=0, help="Wait up to this many seconds for the end."),
    ] = None,
) -> None:
    """Restart a FAILED, TIMED_OUT or ABORTED execution from what did not succeed."""
    require_redis()
    try:
        handle = redrive_execution(execution_id)
    except OrchestratorError as exc:
        fail(str(exc), exit_code_for(exc, EXIT_FAILED))
    stdout_console().print(f"{execution_id}: redriven")
    if wait is not None:
        try:
            result = handle.result(timeout=wait)
        except TimeoutError:
            fail(f"{execution_id} still running after {wait} s", EXIT_FAILED)
        stdout_console().print(f"{execution_id}: {result.status.value}")
        if result.status is not ExecutionStatus.SUCCEEDED:
            raise typer.Exit(EXIT_FAILED)


map_runs_app = typer.Typer(
    help="Inspect Distributed Map runs and their child executions.", no_args_is_help=True
)
app.add_typer(map_runs_app, name="map-runs")


def render_map_run(run: MapRunDescription) -> Table:
    """A Map Run as a two-column table: what it is and its children by status."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    counts = run.counts
    rows: list[tuple[str, Text | str]] = [
        ("Map Run", run.map_run_arn),
        ("Execution", run.execution_id),
        ("State", run.state_key),
        ("Label", run.label),
        ("Status", _status_text(run.status)),
        ("Started", _iso(run.start_time)),
        ("Stopped", _iso(run.stop_time) if run.stop_time else "-"),
        ("Concurrency", str(run.max_concurrency)),
        (
            "Children",
            f"{counts.total} started: {counts.running} running, {counts.succeeded} succeeded, "
            f"{counts.failed} failed, {counts.timed_out} timed out, {counts.aborted} aborted",
        ),
    ]
    if run.error:
        rows.append(("Error", Text(run.error, style="red")))
        rows.append(("Cause", run.cause or ""))
    for name, value in rows:
        table.add_row(name, value)
    return table


@map_runs_app.command("list")
def map_runs_list(
    execution_id: Annotated[str, typer.Argument(help="The parent execution id or ARN.")],
    as_json: JsonOption = False,
) -> None:
    """The Map Runs of an execution's Distributed Maps (needs REDIS_URL)."""
    require_redis()
    try:
        runs = list_map_runs(execution_id)
    except ExecutionNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        emit_json([run.model_dump(mode="json") for run in runs])
        return
    console = stdout_console()
    if not runs:
        console.print(f"{execution_id} has no Map Run")
    for run in runs:
        console.print(render_map_run(run))


@map_runs_app.command("show")
def map_runs_show(
    map_run_arn: Annotated[str, typer.Argument(help="The Map Run's ARN (map-runs list).")],
    start: Annotated[int, typer.Option("--start", min=0, help="First child index.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 20,
    as_json: JsonOption = False,
) -> None:
    """A Map Run and a page of its child executions (needs REDIS_URL)."""
    require_redis()
    try:
        run = describe_map_run(map_run_arn)
        children = list_map_run_children(map_run_arn, start=start, limit=limit)
    except ExecutionNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    if as_json:
        emit_json(
            {
                **run.model_dump(mode="json"),
                "children": [child.model_dump(mode="json") for child in children],
            }
        )
        return
    console = stdout_console()
    console.print(render_map_run(run))
    table = Table()
    table.add_column("Index", justify="right")
    table.add_column("Child execution", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    for child in children:
        table.add_row(str(child.index), child.execution_id, _status_text(child.status or "-"))
    console.print(table)


dlq_app = typer.Typer(help="Inspect the dead-letter queue.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Dead letters, newest first (needs REDIS_URL)."""
    require_redis()
    letters = list_dead_letters(limit)
    if as_json:
        emit_json([letter.model_dump(mode="json") for letter in letters])
        return
    table = Table("time", "id", "state", "error", "cause")
    for letter in letters:
        table.add_row(
            letter.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
            letter.id,
            letter.state or "-",
            letter.error or "-",
            one_line(letter.cause or "", 60),
        )
    stdout_console().print(table)


@dlq_app.command("show")
def dlq_show(
    letter_id: Annotated[str, typer.Argument(help="Dead letter id (the execution id).")],
) -> None:
    """One dead letter, with the input its state received (needs REDIS_URL)."""
    require_redis()
    try:
        letter = get_dead_letter(letter_id)
    except LookupError as exc:
        fail(str(exc), EXIT_FAILED)
    emit_json(letter.model_dump(mode="json"))


task_app = typer.Typer(
    help="Answer a task waiting for its token (`.waitForTaskToken`) (needs REDIS_URL).",
    no_args_is_help=True,
)
app.add_typer(task_app, name="task")

TokenArg = Annotated[
    str, typer.Argument(help="The task token ($$.Task.Token), as the task received it.")
]


def _answer_token(answer: Callable[[], None], verb: str) -> None:
    require_redis()
    try:
        answer()
    except (TaskTokenError, InvalidInputError) as exc:
        fail(str(exc), EXIT_USAGE)
    stdout_console().print(verb)


@task_app.command("success")
def task_success(
    token: TokenArg,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="The task's result, as JSON text.")
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option("--output-file", "-f", help="Read the JSON result from a file ('-': stdin)."),
    ] = None,
) -> None:
    """Complete a waiting task with a result (default: {}).

    Exit code: 0 done; 2 bad token (unknown, used, or its task no longer waits) or output.
    """
    value = parse_input(output, output_file, "--output")
    _answer_token(lambda: send_task_success(token, {} if value is None else value), "succeeded")


@task_app.command("failure")
def task_failure(
    token: TokenArg,
    error: Annotated[
        str | None, typer.Option("--error", help="Error name (default States.TaskFailed).")
    ] = None,
    cause: Annotated[str | None, typer.Option("--cause", help="Cause text.")] = None,
) -> None:
    """Fail a waiting task (its Retry and Catch rules apply).

    Exit code: 0 done; 2 bad token (unknown, used, or its task no longer waits).
    """
    _answer_token(lambda: send_task_failure(token, error, cause), "failed")


@task_app.command("heartbeat")
def task_heartbeat(token: TokenArg) -> None:
    """Tell a waiting task with HeartbeatSeconds that the work goes on.

    Exit code: 0 done; 2 bad token (unknown, used, or its task no longer waits).
    """
    _answer_token(lambda: send_task_heartbeat(token), "heartbeat recorded")


@app.command()
def ui(
    host: Annotated[
        str,
        typer.Option(
            "--host",
            envvar="ORCHESTRATOR_UI_HOST",
            help="Interface to listen on; anything but loopback needs ORCHESTRATOR_UI_TOKEN.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
    insecure_no_token: Annotated[
        bool,
        typer.Option(
            "--insecure-no-token",
            help="Listen on a non-loopback --host without ORCHESTRATOR_UI_TOKEN: anyone who "
            "reaches it can read and change every execution.",
        ),
    ] = False,
) -> None:
    """Serve the execution view and its JSON API (needs REDIS_URL). Set
    ORCHESTRATOR_UI_TOKEN to require a token for everything but /healthz."""
    require_redis()
    from orchestrator.ui import serve

    try:
        serve(host, port, insecure_no_token=insecure_no_token)
    except RuntimeError as exc:
        fail(str(exc))


# ---------------------------------------------------------------------- schedules

schedule_app = typer.Typer(
    help="Start workflows on a rate, a cron expression or once, fired by beat (needs REDIS_URL).",
    no_args_is_help=True,
)
app.add_typer(schedule_app, name="schedule")

ScheduleArg = Annotated[str, typer.Argument(help="The schedule's name.")]


def _schedule_json(desc: schedule_api.ScheduleDescription) -> dict[str, Any]:
    value = dataclasses.asdict(desc)
    value["executions"] = desc.executions
    return value


def render_schedule(desc: schedule_api.ScheduleDescription) -> Table:
    """A schedule as a two-column table, its latest firings below its settings."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("Name", desc.name),
        ("Target", desc.target),
        ("Expression", desc.expression),
        ("Time zone", desc.timezone),
        ("Overlap", desc.overlap),
        ("Catch-up window", f"{desc.catchup_window:g} s"),
        ("State", "ENABLED" if desc.enabled else "PAUSED"),
        ("Input", one_line(desc.input, PLAIN_DETAILS_WIDTH)),
    ]
    if desc.start or desc.end:
        rows.append(("Between", f"{desc.start or '-'} and {desc.end or '-'}"))
    rows.append(("Next fire times", "\n".join(_iso(t) for t in desc.next_fire_times) or "-"))
    rows.append(("Last execution", desc.last_execution or "-"))
    if desc.buffered:
        rows.append(("Buffered firing", _iso(desc.buffered)))
    for firing in desc.firings:
        scheduled = _iso(firing.scheduled) if firing.scheduled else ""
        details = " ".join(f"{k}={v}" for k, v in firing.details.items())
        text = " ".join(part for part in (scheduled, firing.execution or "", details) if part)
        rows.append((firing.type, text))
    for label, text in rows:
        table.add_row(label, str(text))
    return table


def _schedule_call(call: Any) -> Any:
    """Run a schedule operation; a missing schedule exits 1, a bad argument 2."""
    require_redis()
    try:
        return call()
    except schedule_api.ScheduleNotFound as exc:
        fail(str(exc), EXIT_FAILED)
    except (InvalidInputError, DefinitionError, schedule_api.ScheduleAlreadyExists) as exc:
        fail(str(exc), EXIT_USAGE)


def _show_schedule(desc: schedule_api.ScheduleDescription, as_json: bool) -> None:
    if as_json:
        emit_json(_schedule_json(desc))
    else:
        stdout_console().print(render_schedule(desc))


@schedule_app.command("create")
def schedule_create(
    name: ScheduleArg,
    target: Annotated[
        str, typer.Argument(help="The workflow (name or file), state machine, version or alias.")
    ],
    expression: Annotated[
        str,
        typer.Argument(
            help="rate(5 minutes), rate(30 seconds), cron(0 2 * * ? *) or at(2026-12-01T10:00:00)."
        ),
    ],
    input: Annotated[str | None, typer.Option("--input", help="Input JSON.")] = None,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone.")] = "UTC",
    overlap: Annotated[
        str, typer.Option("--overlap", help="SKIP, BUFFER_ONE, ALLOW_ALL or CANCEL_OTHER.")
    ] = "SKIP",
    catchup_window: Annotated[
        float | None,
        typer.Option("--catchup-window", help="Seconds a late firing still fires (60)."),
    ] = None,
    start: Annotated[
        datetime | None, typer.Option("--start", help="No firing before (ISO time).")
    ] = None,
    end: Annotated[datetime | None, typer.Option("--end", help="No firing after.")] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create it paused.")] = False,
    tasks: TasksOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a schedule. Exit code: 0 created; 2 bad argument or the name is taken."""
    use_task_modules(tasks)
    value = parse_input(input, None)
    desc = _schedule_call(
        lambda: schedule_api.create_schedule(
            name,
            target,
            expression,
            input=value,
            timezone=timezone,
            overlap=overlap,
            catchup_window=catchup_window,
            start=start,
            end=end,
            enabled=not paused,
        )
    )
    _show_schedule(desc, as_json)


@schedule_app.command("list")
def schedule_list(as_json: JsonOption = False) -> None:
    """List the schedules with their next fire time."""
    found = _schedule_call(schedule_api.list_schedules)
    if as_json:
        emit_json([_schedule_json(desc) for desc in found])
        return
    table = Table()
    for column in ("Name", "Expression", "Target", "State", "Overlap", "Next", "Last execution"):
        table.add_column(column)
    for desc in found:
        table.add_row(
            desc.name,
            desc.expression,
            desc.target if len(desc.target) <= 40 else desc.target[:39] + "…",
            "ENABLED" if desc.enabled else "PAUSED",
            desc.overlap,
            _iso(desc.next_fire_times[0]) if desc.next_fire_times else "-",
            desc.last_execution or "-",
        )
    stdout_console().print(table)


@schedule_app.command("describe")
def schedule_describe(name: ScheduleArg, as_json: JsonOption = False) -> None:
    """Show a schedule: its settings, next fire times and latest firings (started,
    skipped, missed). Exit code: 0; 1 no such schedule."""
    _show_schedule(_schedule_call(lambda: schedule_api.describe_schedule(name)), as_json)


@schedule_app.command("pause")
def schedule_pause(name: ScheduleArg, as_json: JsonOption = False) -> None:
    """Stop firing a schedule until it is resumed."""
    _show_schedule(_schedule_call(lambda: schedule_api.pause_schedule(name)), as_json)


@schedule_app.command("resume")
def schedule_resume(name: ScheduleArg, as_json: JsonOption = False) -> None:
    """Fire a paused schedule again (what fell due meanwhile is not fired)."""
    _show_schedule(_schedule_call(lambda: schedule_api.resume_schedule(name)), as_json)


@schedule_app.command("trigger")
def schedule_trigger(
    name: ScheduleArg, tasks: TasksOption = None, as_json: JsonOption = False
) -> None:
    """Fire a schedule now (under its overlap policy)."""
    use_task_modules(tasks)
    _show_schedule(_schedule_call(lambda: schedule_api.trigger_schedule(name)), as_json)


@schedule_app.command("delete")
def schedule_delete(name: ScheduleArg) -> None:
    """Delete a schedule (its executions stay). Exit code: 0; 1 no such schedule."""
    _schedule_call(lambda: schedule_api.delete_schedule(name))
    stdout_console().print(Text(f"deleted schedule {name}", style="green"))


# ------------------------------------------------------------------ the state-machine registry

machines_app = typer.Typer(
    help="The state-machine registry: state machines, versions and aliases.",
    no_args_is_help=True,
)
app.add_typer(machines_app, name="machines")

MachineArg = Annotated[
    str, typer.Argument(help="The state machine: its name or ARN.", show_default=False)
]
AliasArg = Annotated[str, typer.Argument(help="The alias's name.", show_default=False)]
RouteOption = Annotated[
    list[str],
    typer.Option(
        "--route",
        "-r",
        help="VERSION=WEIGHT (repeat for a second version; weights sum to 100), "
        "e.g. -r 3=90 -r 4=10.",
    ),
]
DescriptionOption = Annotated[
    str | None, typer.Option("--description", help="A description (at most 256 characters).")
]


def _registry_call(call: Callable[[], Any]) -> Any:
    """Run a registry call; its errors end the command in one line (2: what was given is
    invalid; 1: not found or a conflict)."""
    try:
        return call()
    except DefinitionError as exc:
        fail_definition(exc)
    except OrchestratorError as exc:
        fail(str(exc), exit_code_for(exc, EXIT_FAILED))


def parse_routes(routes: Sequence[str]) -> list[tuple[int, int]]:
    """``["3=90", "4=10"]`` as ``[(3, 90), (4, 10)]`` (a bare ``3``: weight 100)."""
    parsed = []
    for route in routes:
        version, _, weight = route.partition("=")
        if not version.strip().isdigit() or (weight and not weight.strip().isdigit()):
            fail(f"--route {route!r}: use VERSION=WEIGHT, e.g. 3=90")
        parsed.append((int(version), int(weight) if weight else 100))
    return parsed


def render_machine(
    desc: StateMachineDescription,
    versions: Sequence[StateMachineVersion] = (),
    aliases: Sequence[StateMachineAlias] = (),
) -> Table:
    """A state machine (or version) with its versions and aliases, two columns."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    rows: list[tuple[str, str]] = [
        ("ARN", desc.state_machine_arn),
        ("Name", desc.name),
        ("Type", desc.type),
        ("Status", desc.status),
        ("Revision", desc.revision_id),
        ("Created", _iso(desc.creation_date)),
    ]
    if desc.update_date is not None:
        rows.append(("Updated", _iso(desc.update_date)))
    if desc.description:
        rows.append(("Description", desc.description))
    for version in versions:
        note = f" - {version.description}" if version.description else ""
        rows.append(("Version", f"{version.version}: revision {version.revision_id}{note}"))
    for alias in aliases:
        rows.append(("Alias", f"{alias.name} -> {_routing_text(alias)}"))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _routing_text(alias: StateMachineAlias) -> str:
    return ", ".join(f"version {r.version} ({r.weight}%)" for r in alias.routing_configuration)


def _every(listing: Callable[[str | None], Any], field: str) -> list[Any]:
    """Every item of a paged registry listing: ``listing(token)`` returns the page after
    ``token`` (the first for None), its items in ``field``."""
    found: list[Any] = []
    token = None
    while True:
        page = listing(token)
        found += getattr(page, field)
        token = page.next_token
        if token is None:
            return found


def _all_versions(machine: str) -> list[StateMachineVersion]:
    return _every(
        lambda token: list_state_machine_versions(machine, max_results=1000, next_token=token),
        "state_machine_versions",
    )


def _all_aliases(machine: str) -> list[StateMachineAlias]:
    return _every(
        lambda token: list_state_machine_aliases(machine, max_results=1000, next_token=token),
        "state_machine_aliases",
    )


@machines_app.command("list")
def machines_list(as_json: JsonOption = False) -> None:
    """Every registered state machine, by name (needs REDIS_URL)."""
    require_redis()
    items = _every(
        lambda token: list_state_machines(max_results=1000, next_token=token), "state_machines"
    )
    if as_json:
        emit_json([item.model_dump(mode="json") for item in items])
        return
    table = Table("Name", "Type", "Created", "ARN")
    for item in items:
        table.add_row(item.name, item.type, _iso(item.creation_date), item.state_machine_arn)
    stdout_console().print(table if items else "no state machine is registered")


@machines_app.command("describe")
def machines_describe(
    machine: MachineArg,
    version: Annotated[
        int | None, typer.Option("--version", "-v", min=1, help="Describe this version.")
    ] = None,
    definition: Annotated[
        bool, typer.Option("--definition", help="Print the ASL definition too.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A state machine (or a version) with its versions and aliases (needs REDIS_URL)."""
    require_redis()
    desc = _registry_call(lambda: describe_state_machine(machine, version))
    qualified = desc.version is not None
    versions = [] if qualified else _registry_call(lambda: _all_versions(desc.name))
    aliases = [] if qualified else _registry_call(lambda: _all_aliases(desc.name))
    if as_json:
        value = desc.model_dump(mode="json")
        if not qualified:
            value["versions"] = [v.model_dump(mode="json") for v in versions]
            value["aliases"] = [a.model_dump(mode="json") for a in aliases]
        emit_json(value)
        return
    console = stdout_console()
    console.print(render_machine(desc, versions, aliases))
    if definition:
        console.print_json(desc.definition)


@machines_app.command("create")
def machines_create(
    name: Annotated[str, typer.Argument(help="The state machine's name.", show_default=False)],
    definition: DefinitionArg,
    type_: Annotated[
        str, typer.Option("--type", help="STANDARD or EXPRESS.", case_sensitive=False)
    ] = "STANDARD",
    description: DescriptionOption = None,
    publish: Annotated[bool, typer.Option("--publish", help="Publish version 1 too.")] = False,
    tasks: TasksOption = None,
) -> None:
    """Register a state machine (the same again changes nothing; needs REDIS_URL)."""
    require_redis()
    use_task_modules(tasks)
    desc = _registry_call(
        lambda: create_state_machine(
            name, definition, type=type_.upper(), description=description, publish=publish
        )
    )
    note = f", published {desc.state_machine_version_arn}" if desc.state_machine_version_arn else ""
    stdout_console().print(f"{desc.state_machine_arn}: revision {desc.revision_id}{note}")


@machines_app.command("update")
def machines_update(
    machine: MachineArg,
    definition: DefinitionArg,
    description: DescriptionOption = None,
    publish: Annotated[bool, typer.Option("--publish", help="Publish it as a version.")] = False,
    tasks: TasksOption = None,
) -> None:
    """Give a state machine a new revision; executions in flight keep theirs."""
    require_redis()
    use_task_modules(tasks)
    before = _registry_call(lambda: describe_state_machine(machine)).revision_id
    desc = _registry_call(
        lambda: update_state_machine(machine, definition, description=description, publish=publish)
    )
    what = "unchanged" if desc.revision_id == before else f"revision {desc.revision_id}"
    note = f", published {desc.state_machine_version_arn}" if desc.state_machine_version_arn else ""
    stdout_console().print(f"{desc.state_machine_arn}: {what}{note}")


@machines_app.command("delete")
def machines_delete(machine: MachineArg) -> None:
    """Delete a state machine with its versions and aliases (executions run on)."""
    require_redis()
    existed = _registry_call(lambda: delete_state_machine(machine))
    stdout_console().print(f"{machine}: {'deleted' if existed else 'not registered'}")


@machines_app.command("versions")
def machines_versions(machine: MachineArg, as_json: JsonOption = False) -> None:
    """A state machine's versions, newest first (needs REDIS_URL)."""
    require_redis()
    versions = _registry_call(lambda: _all_versions(machine))
    if as_json:
        emit_json([v.model_dump(mode="json") for v in versions])
        return
    table = Table("Version", "Revision", "Created", "Description")
    for v in versions:
        table.add_row(str(v.version), v.revision_id, _iso(v.creation_date), v.description or "")
    stdout_console().print(table if versions else f"{machine} has no version")


@machines_app.command("publish")
def machines_publish(machine: MachineArg, description: DescriptionOption = None) -> None:
    """Publish a state machine's current revision as a version (the same revision
    again: that version)."""
    require_redis()
    version = _registry_call(lambda: publish_state_machine_version(machine, description))
    stdout_console().print(f"{version.state_machine_version_arn}: version {version.version}")


@machines_app.command("delete-version")
def machines_delete_version(
    machine: MachineArg,
    version: Annotated[int, typer.Argument(min=1, help="The version number.")],
) -> None:
    """Delete a version (refused while an alias routes to it)."""
    require_redis()
    existed = _registry_call(lambda: delete_state_machine_version(machine, version))
    stdout_console().print(f"{machine} version {version}: {'deleted' if existed else 'none'}")


@machines_app.command("aliases")
def machines_aliases(machine: MachineArg, as_json: JsonOption = False) -> None:
    """A state machine's aliases and their routing (needs REDIS_URL)."""
    require_redis()
    aliases = _registry_call(lambda: _all_aliases(machine))
    if as_json:
        emit_json([a.model_dump(mode="json") for a in aliases])
        return
    table = Table("Alias", "Routing", "Updated", "ARN")
    for a in aliases:
        table.add_row(a.name, _routing_text(a), _iso(a.update_date), a.state_machine_alias_arn)
    stdout_console().print(table if aliases else f"{machine} has no alias")


@machines_app.command("alias-create")
def machines_alias_create(
    machine: MachineArg, alias: AliasArg, route: RouteOption, description: DescriptionOption = None
) -> None:
    """Create an alias routing to one version, or splitting between two by weight."""
    require_redis()
    routing = parse_routes(route)
    created = _registry_call(
        lambda: create_state_machine_alias(machine, alias, routing, description=description)
    )
    stdout_console().print(f"{created.state_machine_alias_arn} -> {_routing_text(created)}")


@machines_app.command("alias-update")
def machines_alias_update(
    machine: MachineArg,
    alias: AliasArg,
    route: Annotated[
        list[str] | None,
        typer.Option("--route", "-r", help="VERSION=WEIGHT (repeat for a second version)."),
    ] = None,
    description: DescriptionOption = None,
) -> None:
    """Change an alias's routing (a canary's next step) or description."""
    require_redis()
    routing = parse_routes(route) if route else None
    updated = _registry_call(
        lambda: update_state_machine_alias(machine, alias, routing=routing, description=description)
    )
    stdout_console().print(f"{updated.state_machine_alias_arn} -> {_routing_text(updated)}")


@machines_app.command("alias-delete")
def machines_alias_delete(machine: MachineArg, alias: AliasArg) -> None:
    """Delete an alias (its versions stay)."""
    require_redis()
    _registry_call(lambda: delete_state_machine_alias(machine, alias))
    stdout_console().print(f"{machine}:{alias}: deleted")


@app.command()
def deploy(
    folder: Annotated[
        Path,
        typer.Argument(help="A folder of workflow definitions (NAME.asl.json, NAME.yaml...)."),
    ],
    tasks: TasksOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register every workflow of a folder as the state machine of its name,
    idempotently, and say what changed: created, updated (a new revision) or unchanged.
    Nothing is registered if any definition is invalid (needs REDIS_URL)."""
    require_redis()
    use_task_modules(tasks)
    results = _registry_call(lambda: deploy_workflows(folder))
    if as_json:
        emit_json([{"name": name, "result": result} for name, result in results])
        return
    console = stdout_console()
    for name, result in results:
        style = {"created": "green", "updated": "yellow"}.get(result, "dim")
        console.print(Text(f"{name}: {result}", style=style))
    changed = sum(1 for _, result in results if result != "unchanged")
    console.print(f"{len(results)} workflows, {changed} changed")


def main() -> None:
    """Entry point of the ``orchestrator`` console script and ``python -m orchestrator``."""
    app()
