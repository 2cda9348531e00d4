"""The Celery application: ``celery -A orchestrator.engine.celery_app worker`` works as usual.

Configuration comes from :mod:`orchestrator.config` (environment variables). The choices
that matter for correctness are fixed here, not left to users:

* JSON only: a pickled message is refused (``accept_content``).
* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged after its
  step ran, so a worker killed mid-step does not lose it.
* ``worker_prefetch_multiplier = 1``: a dying worker strands at most one message per
  process; the step lease and the reconciler recover it within seconds.
* No result backend: step results live in the orchestrator's Redis state.

Other Celery settings may be overridden by a module of the user's named by
``ORCHESTRATOR_CELERY_CONFIG`` (see ``orchestrator/examples/celeryconfig.py``); one that
sets any of the settings above is refused (``ConfigurationError``) rather than obeyed.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import ssl
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any
from urllib.parse import parse_qs, urlsplit

from celery import Celery, signals
from celery.worker.consumer import Consumer
from vine import promise

from orchestrator.config import MAX_PRIORITY, Settings, get_settings
from orchestrator.engine import logs, messages
from orchestrator.engine.dead_letters import dead_letter_message
from orchestrator.engine.messages import BadMessage
from orchestrator.engine.store import reset_stores, tls_options
from orchestrator.errors import ConfigurationError

logger = logging.getLogger(__name__)

#: The option (a task class attribute) that marks an activity's Celery task
#: (:mod:`orchestrator.engine.activities`, which builds on this module): the consumer
#: checks such a task's arguments as an activity's.
ACTIVITY_TASK = "orchestrator_activity"


#: RabbitMQ: every queue the orchestrator's apps declare (the default queue, activity
#: queues, the queues a worker consumes) has this ``x-max-priority``; levels 0-9 are used.
QUEUE_MAX_PRIORITY = MAX_PRIORITY + 1
#: Redis: kombu keeps one list per priority step and queue; one step per level, so no two
#: levels share a list (kombu's default, ``[0, 3, 6, 9]``, would fold 0-2 together...).
REDIS_PRIORITY_STEPS = list(range(MAX_PRIORITY + 1))


def is_redis_broker(broker_url: str | None) -> bool:
    """Whether Celery's broker is Redis (kombu's Redis transport: priority 0 goes first)."""
    return (broker_url or "").startswith(("redis", "rediss", "sentinel"))


def broker_priority(priority: int, broker_url: str | None) -> int:
    """The message priority for an execution's ``priority`` (0 least urgent ... 9 most).

    RabbitMQ (and kombu's other transports) deliver the highest number first; kombu's
    Redis transport delivers the lowest first (its list for priority 0 is the first its
    ``BRPOP`` names), so there the scale is turned over: 9 -> 0, 0 -> 9.
    """
    return MAX_PRIORITY - priority if is_redis_broker(broker_url) else priority


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings derived from the orchestrator's."""
    broker = settings.effective_broker_url or "memory://"
    conf: dict[str, Any] = {
        "broker_url": broker,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": settings.queue,
        # Priorities (docs/deployment.md): RabbitMQ queues are priority queues.
        "task_queue_max_priority": QUEUE_MAX_PRIORITY,
        # Flower learns of tasks from the workers' events; "sent" events would double
        # every publish for a state Flower shows for a few milliseconds.
        "task_send_sent_event": False,
        "worker_send_task_events": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Messages no worker can decode (pickle, broken JSON) become dead letters.
        "worker_consumer": "orchestrator.engine.celery_app:OrchestratorConsumer",
        "imports": ["orchestrator.engine.steps", *settings.task_modules],
    }
    if is_redis_broker(broker):
        # Our leases recover lost steps in seconds; the visibility timeout is only the
        # broker's last resort, kept long so a long activity is never redelivered.
        # A list per priority level (publishers and workers must agree on them).
        conf["broker_transport_options"] = {
            "visibility_timeout": 3600,
            "priority_steps": REDIS_PRIORITY_STEPS,
        }
        if settings.broker_master_name:
            # REDIS_URL is redis+sentinel:// and BROKER_URL unset: kombu's sentinel
            # transport asks the same sentinels for the same master at each connection.
            conf["broker_transport_options"]["master_name"] = settings.broker_master_name
    overrides = _user_overrides(settings.celery_config)
    if "broker_transport_options" in conf and "broker_transport_options" in overrides:
        # An override of some transport options keeps the others (the priority steps).
        overrides["broker_transport_options"] = {
            **conf["broker_transport_options"],
            **(overrides["broker_transport_options"] or {}),
        }
    if _needs_certificate_checks(broker) and "broker_use_ssl" not in overrides:
        # kombu connects to a rediss:// broker given no SSL options WITHOUT checking the
        # server's certificate (it only logs a warning); the state store (redis-py)
        # checks it. Check it here too, against the system's CAs, unless the URL
        # (?ssl_cert_reqs=..., ssl_ca_certs=...) or the overrides' broker_use_ssl
        # says otherwise; against the CA of ORCHESTRATOR_REDIS_TLS_CA_FILE if set,
        # presenting ORCHESTRATOR_REDIS_TLS_CERT_FILE, as the store does.
        conf["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED, **tls_options(settings)}
    conf.update(overrides)
    return conf


def _needs_certificate_checks(broker: str) -> bool:
    """A ``rediss://`` broker URL that carries no SSL option of its own."""
    parts = urlsplit(broker)
    if parts.scheme != "rediss":
        return False
    return not any(name.startswith("ssl_") for name in parse_qs(parts.query))


#: Celery settings the orchestrator's guarantees rest on: no override may change them.
PROTECTED_SETTINGS = frozenset(
    {
        "accept_content",
        "task_serializer",
        "result_serializer",
        "event_serializer",
        "result_backend",
        "task_ignore_result",
        "task_acks_late",
        "task_reject_on_worker_lost",
        "worker_prefetch_multiplier",
        "worker_consumer",
    }
)


def _user_overrides(module_name: str | None) -> dict[str, Any]:
    """The lower-case names of the ``ORCHESTRATOR_CELERY_CONFIG`` module, if one is set.

    Raises:
        ConfigurationError: the module does not import, or it sets a protected setting.
    """
    if not module_name:
        return {}
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - any failure means the setting is wrong
        raise ConfigurationError(
            f"ORCHESTRATOR_CELERY_CONFIG={module_name!r} does not import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    overrides = {k: v for k, v in vars(module).items() if not k.startswith("_") and k.islower()}
    refused = sorted(PROTECTED_SETTINGS.intersection(overrides))
    if refused:
        raise ConfigurationError(
            f"ORCHESTRATOR_CELERY_CONFIG={module_name!r} sets {', '.join(refused)}: the "
            "orchestrator fixes these (JSON only, late acknowledgement, prefetch 1, no "
            "result backend) because its delivery guarantees rest on them; remove them"
        )
    return overrides


class OrchestratorConsumer(Consumer):
    """Celery's consumer, except that no message can stop it.

    Every message's shape (headers, body, and the arguments of the orchestrator's own
    tasks) is checked before Celery's strategy or the pool sees it
    (:mod:`orchestrator.engine.messages`): a malformed, undecodable, unknown or oversized message
    is acknowledged, dead-lettered with an excerpt of its body and logged once, and the
    worker goes on. Celery itself would stop the worker on some of them (``CRITICAL
    Unrecoverable error``) and put the message back for the next worker to die on.
    """

    def create_task_handler(self, promise: Any = promise) -> Any:
        handle = super().create_task_handler(promise)

        def on_task_received(message: Any) -> None:
            try:
                self._check_message(message)
            except BadMessage as bad:
                return self._refuse(message, bad.error, bad.cause)
            except Exception as exc:  # noqa: BLE001 - the check itself must not stop us
                return self._refuse(message, type(exc).__name__, f"message check failed: {exc}")
            try:
                handle(message)
            except (*self.connection_errors, *self.channel_errors):
                raise  # the consumer reconnects: the message is redelivered
            except Exception as exc:  # noqa: BLE001 - a message the check let through
                self._refuse(message, type(exc).__name__, f"message refused by Celery: {exc}")
            return None

        return on_task_received

    def _check_message(self, message: Any) -> None:
        settings = get_settings()
        size = len(message.body or b"")
        if size > settings.max_message_bytes:
            raise BadMessage(
                "MessageTooLarge",
                f"message of {size} bytes is over the {settings.max_message_bytes}-byte limit",
            )
        name = messages.check_headers(message.headers)
        try:
            body = message.decode()
        except Exception as exc:  # noqa: BLE001 - kombu's DecodeError, ContentDisallowed...
            raise BadMessage(
                type(exc).__name__, f"undecodable message ({message.content_type}): {exc}"
            ) from None
        args, kwargs, _ = messages.check_body(body)
        task = self.app.tasks.get(name)
        if task is None or name not in self.strategies:
            raise BadMessage("UnknownTask", f"no task named {name!r}")
        check = _ARGUMENT_CHECKS.get(name)
        if check is not None:
            check(args, kwargs)
        elif getattr(task, ACTIVITY_TASK, False):
            messages.activity_arguments(args, kwargs, settings.max_input_bytes, size)
        else:
            messages.check_arguments(getattr(task, "__header__", None), args, kwargs)

    def _refuse(self, message: Any, error: str, cause: str) -> None:
        """Acknowledge, dead-letter and log a message no task will run."""
        headers = getattr(message, "headers", None)
        if isinstance(headers, dict):
            task, task_id = headers.get("task"), headers.get("id")
            cause = f"{cause} (task {messages.excerpt(repr(task), 80)}, id {task_id!r:.80})"
        letter_id = None
        try:
            letter_id = dead_letter_message(error, cause, getattr(message, "body", None))
        except Exception:  # noqa: BLE001 - never let this stop the consumer
            logger.exception("could not dead-letter a refused message")
        logger.warning("refused a message (dead letter %s): %s: %s", letter_id, error, cause)
        try:
            if not message.acknowledged:
                message.ack()
        except (*self.connection_errors, *self.channel_errors):
            raise
        except Exception:  # noqa: BLE001 - an ack that failed is redelivered, refused again
            logger.exception("could not acknowledge a refused message")


#: Argument checks of the orchestrator's own tasks (activities are checked apart).
_ARGUMENT_CHECKS = {
    "orchestrator.dispatch": messages.dispatch_arguments,
    "orchestrator.dead_letter": messages.dead_letter_arguments,
}


def _guard_closed_redis_channels() -> None:
    """Make kombu's Redis channels fail a closed connection as a connection error.

    When the broker's master dies (a Sentinel failover by SIGKILL), the worker's consumer
    closes its connection; closing the channel then restores unacked messages through a
    new client, whose parameters kombu reads from the transport's connection, already
    gone: ``AttributeError: 'NoneType' object has no attribute 'hostname'`` (kombu 5.6,
    ``Channel._connparams``). Raised through ``ignore_errors``, which ignores only
    connection errors, it stopped the consumer for good: the worker process lived on and
    took no more tasks. As a redis ``ConnectionError`` it is ignored there, the consumer
    reconnects (to the new master), and the unacked messages come back as always after
    the visibility timeout (the engine's leases re-dispatch what they held).
    """
    from kombu.transport import redis as kombu_redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = kombu_redis.Channel._connparams
    if getattr(original, "orchestrator_guard", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise RedisConnectionError("the broker connection is closed")
        return original(self, asynchronous)

    _connparams.orchestrator_guard = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams  # type: ignore[method-assign]


_guard_closed_redis_channels()

app = Celery("orchestrator")
try:
    app.conf.update(celery_config(get_settings()))
except ConfigurationError:
    # A malformed environment: importing the package must not crash on it; every later
    # get_settings() raises it again, where callers (the CLI: one line) report it.
    app.conf.update(celery_config(Settings.model_construct()))


#: An app bound to the current thread or task by :func:`using_app`: an explicit
#: ``orchestrator.client.Orchestrator`` publishes through its own, to its own broker.
_bound_app: ContextVar[Celery | None] = ContextVar("orchestrator_celery_app", default=None)


def publishing_app() -> Celery:
    """The app tasks are published with: the one bound in this context, else :data:`app`."""
    bound = _bound_app.get()
    return app if bound is None else bound


@contextlib.contextmanager
def using_app(publisher: Celery) -> Iterator[Celery]:
    """Publish with ``publisher`` in this context only (this thread or asyncio task)."""
    token = _bound_app.set(publisher)
    try:
        yield publisher
    finally:
        _bound_app.reset(token)


def publisher_app(settings: Settings) -> Celery:
    """A Celery app that only publishes, configured from ``settings`` (no task of its own,
    never the process's current app): what an explicit client sends its tasks with."""
    publisher = Celery("orchestrator-client", set_as_current=False)
    publisher.conf.update(celery_config(settings))
    return publisher


def reconfigure(settings: Settings | None = None) -> None:
    """Re-apply the settings to the app (after ``orchestrator.config.configure``)."""
    update_conf(celery_config(settings or get_settings()))


def update_conf(values: dict[str, Any]) -> None:
    """Put ``values`` into the app's Celery configuration (``reconfigure``, or a snapshot
    being put back), so that the next publish connects as they say."""
    from kombu import pools

    app.conf.update(values)
    # Connections and producers made for the old broker must not be reused: close every
    # pooled broker connection of the process (kombu's public reset, which also empties
    # its registries), then make the app take fresh pools from them.
    pools.reset()
    _forget_broker_pools(app)


def _forget_broker_pools(celery: Celery) -> None:
    """Make ``celery`` take new connection and producer pools on its next publish.

    The app caches both (``Celery.pool``, ``celery.amqp.producer_pool``); once kombu's
    pools are closed, a cached one raises ``RuntimeError: Acquire on closed pool``.
    As of Celery 5.7.0 there is no public call that drops them: ``Celery.close()``
    drops the connection pool only, and also deregisters the app (``shared_task`` would
    then skip it). These are the two assignments Celery's own after-fork handler
    (``Celery._after_fork``) makes; keep them here, in one place.
    """
    celery._pool = None
    celery.amqp._producer_pool = None


@signals.celeryd_init.connect
@signals.beat_init.connect
def _refuse_bad_settings(**_: Any) -> None:
    # ``celery -A orchestrator.engine.celery_app worker`` (or beat, flower) with settings
    # that do not validate must not run on the fallback configuration above (an
    # in-memory broker, or for a Redis Cluster URL kombu's localhost:6379): stop here,
    # with the setting's message, as ``orchestrator worker`` does.
    try:
        get_settings()
    except ConfigurationError as exc:
        raise SystemExit(f"Error: {exc}") from None


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # A prefork child must not share the parent's Redis sockets.
    reset_stores()
    _freeze_heap()


@signals.worker_init.connect
def _before_fork(**_: Any) -> None:
    _freeze_heap()


def _freeze_heap() -> None:
    """Leave what a worker process holds once started (modules, the app, definitions
    imported) out of the garbage collector's full passes (``gc.freeze``).

    A step allocates thousands of short-lived objects, so the collector's oldest
    generation comes due every few thousand steps and each pass scanned the whole heap:
    about 40 ms in a process running steps (measured on an in-process worker), on the
    step that happened to trigger it. Frozen
    objects are never collected (they live as long as the process anyway) and, frozen in
    the main process before it forks its pool, are not written to by the collector,
    so the children share their pages with it."""
    gc.freeze()


@signals.task_unknown.connect
def _unknown_task(
    name: str = "", message: Any = None, exc: Exception | None = None, **_: Any
) -> None:
    # A message for a task no worker knows: keep it where an operator can see it.
    body = getattr(message, "body", None)
    dead_letter_message("UnknownTask", f"no task named {name!r}: {exc}", _printable(body))


@signals.task_rejected.connect
def _rejected_task(message: Any = None, exc: Exception | None = None, **_: Any) -> None:
    error = type(exc).__name__ if exc is not None else "RejectedMessage"
    body = _printable(getattr(message, "body", None))
    dead_letter_message(error, f"rejected message: {exc}", body)


def _printable(body: Any) -> Any:
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")[:10000]
    return body


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _correlated_logs(logger: Any = None, **_: Any) -> None:
    # Worker and task log lines carry execution_id and state (JSON with
    # ORCHESTRATOR_JSON_LOGS=1), so one grep follows an execution across workers.
    for handler in getattr(logger, "handlers", []):
        logs.install(handler, json_logs=get_settings().json_logs)
