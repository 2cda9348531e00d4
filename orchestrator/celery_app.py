"""The Celery application: ``celery -A orchestrator.celery_app worker`` works as usual.

Configuration comes from :mod:`orchestrator.config` (environment variables). The choices
that matter for correctness are fixed here, not left to users:

* JSON only: a pickled message is refused (``accept_content``).
* ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged after its
  step ran, so a worker killed mid-step does not lose it.
* ``worker_prefetch_multiplier = 1``: a dying worker strands at most one message per
  process; the step lease and the reconciler recover it within seconds.
* No result backend: step results live in the orchestrator's Redis state.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from celery import Celery, signals
from celery.worker.consumer import Consumer

from orchestrator.config import Settings, get_settings
from orchestrator.errors import ConfigurationError


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
        # Flower learns of tasks from the workers' events; "sent" events would double
        # every publish for a state Flower shows for a few milliseconds.
        "task_send_sent_event": False,
        "worker_send_task_events": True,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        # Messages no worker can decode (pickle, broken JSON) become dead letters.
        "worker_consumer": "orchestrator.celery_app:OrchestratorConsumer",
        "imports": ["orchestrator.runtime", *settings.task_modules],
    }
    if broker.startswith(("redis", "rediss")):
        # Our leases recover lost steps in seconds; the visibility timeout is only the
        # broker's last resort, kept long so a long activity is never redelivered.
        conf["broker_transport_options"] = {"visibility_timeout": 3600}
    conf.update(_user_overrides())
    return conf


def _user_overrides() -> dict[str, Any]:
    try:
        module = importlib.import_module("config.celeryconfig")
    except ImportError:
        return {}
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k.islower()}


class OrchestratorConsumer(Consumer):
    """Celery's consumer, except that undecodable messages land in the dead-letter queue.

    Celery logs and drops a message it cannot decode (a pickled message refused by the
    JSON-only ``accept_content``, malformed JSON); an operator should be able to see it.
    """

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        from orchestrator.control import dead_letter_message

        try:
            dead_letter_message(
                type(exc).__name__,
                f"undecodable message ({message.content_type}): {exc}",
                _printable(message.body),
            )
        except Exception:  # noqa: BLE001 - never let this stop the consumer
            logging.getLogger(__name__).exception("could not dead-letter a bad message")
        super().on_decode_error(message, exc)


app = Celery("orchestrator")
try:
    app.conf.update(celery_config(get_settings()))
except ConfigurationError:
    # A malformed environment: importing the package must not crash on it; every later
    # get_settings() raises it again, where callers (the CLI: one line) report it.
    app.conf.update(celery_config(Settings.model_construct()))


def reconfigure(settings: Settings | None = None) -> None:
    """Re-apply the settings to the app (after ``orchestrator.config.configure``)."""
    from kombu import pools

    app.conf.update(celery_config(settings or get_settings()))
    # Connections and producers made for the old broker must not be reused. kombu keeps
    # its pools in process-wide registries as well as on the app: forget them all.
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


@signals.worker_process_init.connect
def _after_fork(**_: Any) -> None:
    # A prefork child must not share the parent's Redis sockets.
    from orchestrator.store import reset_stores

    reset_stores()


@signals.task_unknown.connect
def _unknown_task(
    name: str = "", message: Any = None, exc: Exception | None = None, **_: Any
) -> None:
    # A message for a task no worker knows: keep it where an operator can see it.
    from orchestrator.control import dead_letter_message

    body = getattr(message, "body", None)
    dead_letter_message("UnknownTask", f"no task named {name!r}: {exc}", _printable(body))


@signals.task_rejected.connect
def _rejected_task(message: Any = None, exc: Exception | None = None, **_: Any) -> None:
    from orchestrator.control import dead_letter_message

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
    from orchestrator.logs import install

    for handler in getattr(logger, "handlers", []):
        install(handler, json_logs=get_settings().json_logs)


@signals.worker_ready.connect
def _advertise_activities(**_: Any) -> None:
    # Lets processes that only start workflows validate Resources without the code.
    from orchestrator.activities import advertise

    try:
        advertise()
    except Exception:  # noqa: BLE001 - advertising is a convenience, never fatal
        logging.getLogger(__name__).warning("could not advertise activities", exc_info=True)
