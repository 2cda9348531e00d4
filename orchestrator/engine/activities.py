"""Activities: plain Python functions registered as Celery tasks, and Resource resolution.

A Task state's ``Resource`` resolves only to code registered here — and never to an
arbitrary import path, so a definition cannot make a worker run code nobody registered:

1. an activity bound to it: through the configured alias map
   (``ORCHESTRATOR_RESOURCE_ALIASES``) or ``@activity("x", resources=[...])``, an
   integration ARN matching in any region and account;
2. an activity by its name, or by the function name at the end of a Lambda ARN;
3. a built-in service integration (:mod:`orchestrator.engine.integrations`: the HTTP
   Task), run by a Celery task of its own that every worker serves on the default queue.

Anything else is a definition error that names the integration and says how to bind it.

Queues: an activity declared with ``queue="gpu"`` has its steps sent to the Celery queue
``gpu``; the others, and the orchestrator's own tasks, go to the default queue
(``ORCHESTRATOR_QUEUE``). The process publishing a step may not import the activity (a
client, beat, a worker publishing for an activity only other workers run): it sends the
step where the activity's registration here says, else where the workers that run it
advertised it (:func:`queue_for`). Each running worker also records the queues it
consumes (:class:`WorkerPresence`), so that ``run`` and the execution view can say when
a step waits on a queue nobody consumes.
"""

from __future__ import annotations

import difflib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from celery import Task, signals

from orchestrator.config import get_settings
from orchestrator.engine import integrations
from orchestrator.engine.celery_app import ACTIVITY_TASK, app
from orchestrator.engine.limits import Limits, local_limits
from orchestrator.engine.limits import register as register_limits
from orchestrator.engine.store import RedisStore, get_store
from orchestrator.errors import ActivityNotFound
from orchestrator.language.children import child_mode
from orchestrator.language.interpreter import WAIT_FOR_TOKEN, is_lambda_invoke
from orchestrator.language.resources import integration_name, without_suffix

F = TypeVar("F", bound=Callable[..., Any])

#: A Lambda function in every form AWS accepts (a Resource, a ``FunctionName``), the
#: function's name in ``name``: ``NAME``, ``NAME:QUALIFIER`` (an alias, a version or
#: ``$LATEST``), ``ACCOUNT:function:NAME[:QUALIFIER]`` (``REGION:`` before it too), and
#: ``arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`` (any partition,
#: region and account). Every form runs the activity named after the function.
LAMBDA_ARN = re.compile(
    r"^(?:arn:aws[a-z-]*:lambda:[^:]*:[^:]*:function:|(?:[a-z0-9-]+:)?\d{12}:function:)?"
    r"(?P<name>[A-Za-z0-9_-]+)(?::(?:\$LATEST|[A-Za-z0-9_-]+))?$"
)
#: A Step Functions activity ARN (its workers poll GetActivityTask: none does here).
ACTIVITY_ARN = re.compile(r"^arn:aws[a-z-]*:states:[^:]*:[^:]*:activity:[^:]+$")
#: Activity names: what Celery task names and Lambda function names have in common.
ACTIVITY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,140}$")
#: Queue names (``@activity(..., queue=...)``): as safe on RabbitMQ as on Redis, and
#: free of the commas that ``worker --queues a,b`` splits on.
QUEUE_NAME = ACTIVITY_NAME


@dataclass(frozen=True)
class Activity:
    """A registered activity."""

    name: str
    function: Callable[[Any], Any]
    task: Task
    queue: str | None = None
    """The Celery queue its steps go to; None: the default queue (``ORCHESTRATOR_QUEUE``)."""


_registry: dict[str, Activity] = {}
#: Resources bound to activities (``@activity(..., resources=[...])``), by
#: :func:`resource_key`.
_bindings: dict[str, str] = {}

#: What an activity's Celery task runs a workflow step with: ``(task, function, input,
#: execution_id, step_key) -> result``.
StepRunner = Callable[[Task, Callable[[Any], Any], Any, str, str], Any]

_step_runner: StepRunner | None = None


def install_step_runner(runner: StepRunner) -> StepRunner:
    """Make ``runner`` the body of every activity's workflow steps; returns it (a decorator).

    :mod:`orchestrator.engine.steps` installs its ``run_activity_step`` when imported, as
    every worker does (``celery_app``'s ``imports``). The steps module resolves Resources
    through this one, so this one cannot import it: the runner is handed down instead.
    """
    global _step_runner
    _step_runner = runner
    return runner


@overload
def activity(name: F) -> F: ...
@overload
def activity(
    name: str | None = None,
    *,
    queue: str | None = None,
    max_concurrency: int | None = None,
    rate_limit: str | None = None,
    resources: Iterable[str] = (),
) -> Callable[[F], F]: ...


def activity(
    name: str | Callable[..., Any] | None = None,
    *,
    queue: str | None = None,
    max_concurrency: int | None = None,
    rate_limit: str | None = None,
    resources: Iterable[str] = (),
) -> Any:
    """Register a function as an activity that Task states can run.

    Use as ``@activity("validate-order")``, ``@activity()`` or ``@activity`` (the
    function's own name). The function receives the state's effective input as its single
    argument and returns a JSON-serializable result; an exception it raises fails the state
    with the exception's class name as the error and ``str(exception)`` as the cause.

    ``queue``: the Celery queue its steps go to (``@activity("render", queue="gpu")``),
    so that only the workers consuming it run them (``orchestrator worker --queues gpu``,
    or any worker importing this activity: it consumes the queues of the activities it
    imports); without one, the default queue (``ORCHESTRATOR_QUEUE``).

    ``max_concurrency``: at most that many of its steps run at once across the cluster;
    ``rate_limit`` (``"10/s"``, ``"30/m"``, ``"100/h"``): at most that many start per
    second, minute or hour across the cluster. Steps over a limit wait in Redis, not in a
    worker (:mod:`orchestrator.engine.limits`); the workers importing the activity
    advertise its limits, so that every process publishing its steps obeys them.

    ``resources``: Task Resources this activity serves besides its name, e.g.
    ``@activity("notify", resources=["arn:aws:states:::sns:publish"])``: it receives the
    state's effective Parameters and returns the integration's result, in place of a
    service this orchestrator does not call, or of a built-in integration (a bound
    activity wins). An integration ARN binds it in every region and account, and in its
    ``.waitForTaskToken`` form (the activity sends the token on, as a callback activity).

    The function is returned unchanged, so it stays directly callable and testable. Its
    Celery task (named after the activity, so Flower lists it by that name) is reachable
    as ``get_activity(name).task``.
    """
    if callable(name):
        return _register(name.__name__, name)

    limits = Limits(max_concurrency, rate_limit)  # validated here, at the decorator
    if isinstance(resources, str):
        resources = [resources]
    bound = list(resources)
    for resource in bound:
        if not isinstance(resource, str) or not resource:
            raise ValueError(f"resources: {resource!r} is not a Resource string")

    def decorator(function: F) -> F:
        registered = name or function.__name__
        _register(registered, function, queue, limits)
        for resource in bound:
            key = resource_key(resource)
            if _bindings.get(key, registered) != registered:
                raise ValueError(f"{resource!r} is already bound to activity {_bindings[key]!r}")
            _bindings[key] = registered
        return function

    return decorator


def _register(
    name: str,
    function: Callable[..., Any],
    queue: str | None = None,
    limits: Limits | None = None,
) -> Callable[..., Any]:
    if not ACTIVITY_NAME.match(name):
        raise ValueError(f"activity name {name!r}: use 1-140 letters, digits, '_', '-' or '.'")
    if queue is not None and not QUEUE_NAME.match(queue):
        raise ValueError(f"queue name {queue!r}: use 1-140 letters, digits, '_', '-' or '.'")
    existing = _registry.get(name)
    if existing is not None and existing.function is not function:
        if _qualname(existing.function) != _qualname(function):
            raise ValueError(
                f"activity {name!r} is already registered by {_qualname(existing.function)}"
            )

    task = _step_task(name, function)
    _registry[name] = Activity(name, function, task, queue or None)
    register_limits(name, limits or Limits())
    return function


def _step_task(name: str, function: Callable[..., Any]) -> Task:
    """The Celery task running ``function`` as workflow steps (an activity's, or a
    built-in integration's)."""

    def run(
        self: Task, input: Any = None, execution_id: str | None = None, step_key: str | None = None
    ) -> Any:
        if execution_id is None or step_key is None:
            return function(input)  # called as a plain Celery task, outside any workflow
        if _step_runner is None:
            raise RuntimeError(
                "no activity step runner: import orchestrator.engine.steps (workers do)"
            )
        return _step_runner(self, function, input, execution_id, step_key)

    run.__name__ = function.__name__
    run.__doc__ = function.__doc__
    task: Task = app.task(name=name, bind=True, shared=False, **{ACTIVITY_TASK: True})(run)
    return task


# Every process knows the built-in integrations' tasks: workers serve them (on the
# default queue: they are in no activity's registration), publishers send to them.
for _integration in integrations.all_integrations():
    _step_task(_integration.task_name, _integration.function)


def resource_key(resource: str) -> str:
    """A Resource as bindings and aliases match it: an integration ARN as its integration
    name (``sns:publish``, whatever its region and account; ``.waitForTaskToken`` left
    off), any other Resource as it is."""
    name = integration_name(resource)
    if name is None:
        return resource
    base, suffix = without_suffix(name)
    return base if suffix == WAIT_FOR_TOKEN else name


def _qualname(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{getattr(function, '__qualname__', function)}"


def get_activity(name: str) -> Activity:
    """The activity registered under ``name``."""
    try:
        return _registry[name]
    except KeyError:
        raise ActivityNotFound(name) from None


def activity_name_for(resource: str) -> str | None:
    """The activity a ``Resource`` string names (or is bound to), or None if none."""
    if resource.endswith(WAIT_FOR_TOKEN) and not is_lambda_invoke(resource):
        resource = resource[: -len(WAIT_FOR_TOKEN)]
    aliases = get_settings().resource_aliases
    if resource in aliases:
        return aliases[resource]
    key = resource_key(resource)
    if key in _bindings:
        return _bindings[key]
    if integration_name(resource) is not None:
        for alias, name in aliases.items():
            if resource_key(alias) == key:
                return name
    match = LAMBDA_ARN.match(resource)
    name = match.group("name") if match else resource
    if is_known(name):
        return name
    # Bound by an activity this process does not import: the workers running it
    # advertised the binding.
    return _advertised_bindings().get(key)


def is_known(name: str) -> bool:
    """Whether an activity is registered here or advertised by a running worker."""
    return name in _registry or name in _advertised()


def queue_for(name: str) -> str:
    """The queue the steps of activity ``name`` go to.

    The activity's own ``queue`` if it is registered in this process; else the queue the
    workers running it advertised (a process that imports no activity code: a client,
    beat, a worker publishing a step of an activity only other workers run); else, and
    for an activity without one, the default queue. A step re-published (the outbox, a
    lost worker's step, a redrive) is routed the same way, so it goes where it first went
    as long as the activity's declaration did not change.
    """
    registered = _registry.get(name)
    if registered is not None:
        return registered.queue or get_settings().queue
    return _advertised().get(name) or get_settings().queue


def activity_queues() -> list[str]:
    """The queues of the activities registered in this process (their own, not the
    default one), sorted."""
    return sorted({a.queue for a in _registry.values() if a.queue})


def worker_queues(queues: list[str] | None = None) -> list[str]:
    """The queues a worker consumes: ``queues`` when given (``worker --queues``: only
    those); else the default queue plus the queues of the activities it imports."""
    if queues:
        return list(dict.fromkeys(queues))
    return [get_settings().queue, *(q for q in activity_queues() if q != get_settings().queue)]


#: How long a process trusts its copy of what the workers advertise (s).
ADVERTISED_CACHE_S = 5.0


class _Advertised:
    """What workers advertise in Redis (read by ``read``), as a process that does not
    import their activities sees it: a copy trusted for :data:`ADVERTISED_CACHE_S`, per
    Redis and key prefix; empty without Redis."""

    def __init__(self, read: Callable[[RedisStore], dict[str, str]]) -> None:
        self._read = read
        self.forget()

    def forget(self) -> None:
        """Read it afresh next time."""
        self._copy: tuple[float, dict[str, str], str] = (0.0, {}, "")

    def __call__(self) -> dict[str, str]:
        settings = get_settings()
        if not settings.redis_url:
            return {}
        store = get_store()
        at, found, owner = self._copy
        now = time.monotonic()
        identity = settings.redis_url + store.keys.prefix
        if owner == identity and now - at < ADVERTISED_CACHE_S:
            return found
        found = self._read(store)
        self._copy = (now, found, identity)
        return found


#: Activity names that workers advertise, each with its queue ("" for the default), so
#: that a process which only starts workflows need not import the activity code.
_advertised = _Advertised(RedisStore.advertised_activities)

#: Resources bound to activities by the workers importing them (Resource key ->
#: activity name), so that a process which does not import them resolves them too.
_advertised_bindings = _Advertised(RedisStore.advertised_bindings)


def advertise() -> None:
    """Record this process's activities, their queues and the Resources bound to them in
    Redis (workers do it when they start)."""
    if _registry:
        get_store().advertise_activities(
            {name: _registry[name].queue or "" for name in sorted(_registry)}
        )
        get_store().advertise_bindings(dict(_bindings))
        # Global limits: every publishing process reads them (orchestrator.engine.limits).
        get_store().advertise_limits(
            {name: limits.to_json() if limits else None for name, limits in local_limits().items()}
        )


#: A worker's entry in Redis (:class:`WorkerPresence`) lasts this long past its last
#: refresh (s); it is refreshed every third of it.
WORKER_TTL_S = 30.0


class WorkerPresence:
    """A running worker's entry in Redis: its node name and the queues it consumes.

    Refreshed every ``WORKER_TTL_S / 3`` by a daemon thread, dropped when the worker
    stops; a killed worker's is ignored once ``WORKER_TTL_S`` passed. What
    :func:`consumed_queues` reads (no broadcast to the workers, unlike Celery's
    ``inspect``, so a page can afford it).
    """

    def __init__(self, node: str, queues: list[str]) -> None:
        self.node = node
        self.queues = list(queues)
        self._store = get_store()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WorkerPresence:
        """Record the entry now, and keep it fresh."""
        self._refresh()
        self._thread = threading.Thread(target=self._run, name="orchestrator-presence", daemon=True)
        self._thread.start()
        return self

    def _refresh(self) -> None:
        self._store.register_worker(self.node, self.queues, time.time() + WORKER_TTL_S)

    def _run(self) -> None:
        while not self._stop.wait(WORKER_TTL_S / 3):
            try:
                self._refresh()
            except Exception:  # noqa: BLE001 - Redis down: the entry lapses, retried
                logging.getLogger(__name__).debug("could not refresh", exc_info=True)

    def stop(self) -> None:
        """Stop refreshing and drop the entry."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self._store.drop_worker(self.node)
        except Exception:  # noqa: BLE001 - it lapses by itself
            logging.getLogger(__name__).debug("could not drop worker entry", exc_info=True)


def consumed_queues() -> set[str]:
    """The queues that running workers consume (their entries in Redis)."""
    return {q for queues in get_store().live_workers(time.time()).values() for q in queues}


def unserved_queues(names: Iterable[str]) -> list[str]:
    """The queues of these activities' steps that no running worker consumes, sorted
    (none when Redis cannot say)."""
    waiting = {queue_for(name) for name in names}
    if not waiting:
        return []
    try:
        consumed = consumed_queues()
    except Exception:  # noqa: BLE001 - Redis down: the caller reports that its own way
        return []
    return sorted(waiting - consumed)


_presence: WorkerPresence | None = None


@signals.worker_ready.connect
def _advertise_activities(sender: Any = None, **_: Any) -> None:
    # Lets processes that only start workflows validate Resources without the code, and
    # route their steps to the activity's queue.
    global _presence
    try:
        advertise()
    except Exception:  # noqa: BLE001 - advertising is a convenience, never fatal
        logging.getLogger(__name__).warning("could not advertise activities", exc_info=True)
    try:
        queues = list(sender.app.amqp.queues.consume_from)
        _presence = WorkerPresence(sender.hostname, queues).start()
    except Exception:  # noqa: BLE001 - as above
        logging.getLogger(__name__).warning("could not record this worker", exc_info=True)


@signals.worker_shutdown.connect
def _worker_stopped(**_: Any) -> None:
    global _presence
    presence, _presence = _presence, None
    if presence is not None:
        presence.stop()


def resolve(state: Any) -> str:
    """The Celery task a Task state runs (an activity's, or a built-in integration's);
    raises :class:`ActivityNotFound`."""
    return resolve_name(state.resource)


def resolve_name(resource: str) -> str:
    """The Celery task a Resource (or a lambda:invoke ``FunctionName``) runs: the activity
    it names or is bound to, else a built-in integration's."""
    name = activity_name_for(resource)
    if name is None:
        builtin = integrations.for_resource(resource)
        if builtin is None:
            raise ActivityNotFound(resource)
        return builtin.task_name
    return name


def resource_problem(state: Any) -> str | None:
    """For definition validation: why a Task's Resource resolves to nothing, or None."""
    if child_mode(state.resource) is not None:
        return None  # a child workflow: the interpreter starts it (no activity)
    if is_lambda_invoke(state.resource):
        params = state.parameters if isinstance(state.parameters, dict) else {}
        if isinstance(state.arguments, str):
            return None  # a JSONata expression: the function is known only at run time
        if isinstance(state.arguments, dict):
            params = state.arguments
        if "FunctionName.$" in params:
            return None  # known only at run time
        function = params.get("FunctionName")
        if isinstance(function, str) and function.startswith("{%"):
            return None  # a JSONata expression, known only at run time
        if not isinstance(function, str):
            return "lambda:invoke needs a FunctionName in Parameters (or Arguments)"
        if activity_name_for(function) is not None:
            return None
        return f"no registered activity for FunctionName {function!r}{_suggestion(function)}"
    if activity_name_for(state.resource) is not None:
        return None
    builtin = integrations.for_resource(state.resource)
    if builtin is not None:
        if builtin.check is None or isinstance(state.arguments, str):
            return None
        given = state.arguments if isinstance(state.arguments, dict) else state.parameters
        return builtin.check(given if isinstance(given, dict) else {})
    if integrations.engine_handles(state.resource):
        return None
    if integration_name(state.resource) is not None or ACTIVITY_ARN.match(state.resource):
        return integrations.unsupported(state.resource)
    if not _registry and not _advertised():
        return (
            f"no registered activity for {state.resource!r} (none is registered in this "
            "process: import their module, pass it with `--tasks MODULE` (the demo's: "
            "`--tasks orchestrator.examples.order_activities`), or start inside "
            "local_orchestrator(task_modules=[...]))"
        )
    known = ", ".join(sorted(_registry)) or "none registered here"
    return (
        f"no registered activity for {state.resource!r}{_suggestion(state.resource)} "
        f"(activities: {known})"
    )


def _suggestion(resource: str) -> str:
    """`` (did you mean 'name'?)`` for a misspelled activity name, or ``""``."""
    match = LAMBDA_ARN.match(resource)
    name = match.group("name") if match else resource
    close = difflib.get_close_matches(name, sorted({*_registry, *_advertised()}), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
