"""Priorities in the Celery configuration and in messages (issue 13 item 5), without a
broker: the queues Celery declares, the Redis priority lists, the dispatch batches."""

from __future__ import annotations

import sys
import types

import pytest
from celery import Celery
from kombu.transport.redis import Channel

from orchestrator.client.inputs import execution_priority
from orchestrator.config import MAX_PRIORITY, Settings
from orchestrator.engine.celery_app import (
    QUEUE_MAX_PRIORITY,
    REDIS_PRIORITY_STEPS,
    broker_priority,
    celery_config,
)
from orchestrator.engine.messages import BadMessage, dispatch_arguments
from orchestrator.errors import InvalidInputError


def _app(broker: str, **values: object) -> Celery:
    settings = Settings.model_validate(
        {"redis_url": "redis://127.0.0.1:6379/0", "broker_url": broker, "queue": "q", **values}
    )
    app = Celery("check", set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


@pytest.mark.parametrize("broker", ["amqp://guest:guest@127.0.0.1:5672//", "redis://h:6379/0"])
def test_every_queue_celery_declares_is_a_priority_queue(broker: str) -> None:
    app = _app(broker)
    # The default queue, and a queue made on first use (an activity's, a worker's -Q).
    for name in ("q", "gpu"):
        assert app.amqp.queues[name].queue_arguments == {"x-max-priority": QUEUE_MAX_PRIORITY}
    assert QUEUE_MAX_PRIORITY == 10


def test_redis_keeps_a_list_per_level_and_delivers_nine_first() -> None:
    conf = _app("redis://h:6379/0").conf
    assert conf.broker_transport_options["priority_steps"] == list(range(10))
    assert conf.broker_transport_options["visibility_timeout"] == 3600
    # kombu's Redis transport: a list per step, read lowest first (BRPOP's key order).
    channel = Channel.__new__(Channel)
    channel.priority_steps, channel.sep = REDIS_PRIORITY_STEPS, ":"
    keys = [channel._q_for_pri("q", broker_priority(p, "redis://h")) for p in range(10)]
    assert len(set(keys)) == 10
    assert keys[MAX_PRIORITY] == "q"  # the first list BRPOP names
    order = [channel._q_for_pri("q", step) for step in REDIS_PRIORITY_STEPS]
    assert [keys.index(key) for key in order] == list(range(9, -1, -1))


def test_overriding_transport_options_keeps_the_priority_steps(monkeypatch) -> None:
    fake = types.ModuleType("prio_overrides")
    fake.broker_transport_options = {"visibility_timeout": 60}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prio_overrides", fake)
    conf = _app("redis://h:6379/0", celery_config="prio_overrides").conf
    assert conf.broker_transport_options == {
        "visibility_timeout": 60,
        "priority_steps": REDIS_PRIORITY_STEPS,
    }


def test_a_callers_priority_is_checked() -> None:
    assert execution_priority(None, 4) == 4
    assert [execution_priority(p, 4) for p in (0, 9)] == [0, 9]
    for bad in (10, -1, True, "5", 2.0):
        with pytest.raises(InvalidInputError, match="ORCHESTRATOR_DEFAULT_PRIORITY"):
            execution_priority(bad, 4)


def test_dispatch_batches_carry_each_executions_priority() -> None:
    dispatch_arguments([[["e", "h", [["S", "S", "echo", {}]], 9]]], {})
    dispatch_arguments([[["e", "h", [["S", "S", "echo", {}]]]]], {})  # from before them
    for bad in (10, -1, "9", True, None):
        with pytest.raises(BadMessage):
            dispatch_arguments([[["e", "h", [["S", "S", "echo", {}]], bad]]], {})


def test_cli_run_passes_its_priority_and_checks_the_range(monkeypatch) -> None:
    from typer.testing import CliRunner

    from orchestrator import cli, config

    runner = CliRunner()
    definition = '{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}'
    assert runner.invoke(cli.app, ["run", definition, "--priority", "12"]).exit_code == 2
    seen: dict[str, object] = {}

    def start(definition: object, payload: object, **options: object) -> None:
        seen.update(options)
        raise InvalidInputError("stop here")

    monkeypatch.setattr(cli, "start_workflow", start)
    config.configure(config.Settings(redis_url="redis://127.0.0.1:1/0"))
    try:
        result = runner.invoke(cli.app, ["run", definition, "--priority", "9"])
    finally:
        config.configure(None)
    assert result.exit_code == 2 and "stop here" in result.output
    assert seen == {"name": None, "priority": 9}
