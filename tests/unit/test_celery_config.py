"""The Celery configuration derived from the settings (engine.celery_app.celery_config)."""

from __future__ import annotations

import ssl
import sys
import types

import pytest
from celery import Celery

from orchestrator.config import Settings
from orchestrator.engine.celery_app import PROTECTED_SETTINGS, celery_config
from orchestrator.errors import ConfigurationError


def _conf(broker: str) -> dict:
    values = {"redis_url": broker, "broker_url": broker, "task_modules": []}
    return celery_config(Settings.model_validate(values))


def _broker_ssl(conf: dict):
    app = Celery("check", set_as_current=False)
    app.conf.update(conf)
    with app.connection_for_write() as connection:
        return connection.ssl


def test_rediss_broker_checks_certificates_by_default():
    conf = _conf("rediss://cache.example:6380/0")
    assert conf["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    # What kombu connects with (without it: CERT_NONE and a warning).
    assert _broker_ssl(conf) == {"ssl_cert_reqs": ssl.CERT_REQUIRED}


def test_the_state_store_checks_them_too():
    from orchestrator.engine.store import redis_client

    client = redis_client("rediss://cache.example:6380/0")
    connection = client.connection_pool.make_connection()  # not connected: no I/O
    assert connection.cert_reqs == ssl.CERT_REQUIRED


def test_rediss_url_options_are_the_operators_choice():
    conf = _conf("rediss://cache.example:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.pem")
    assert "broker_use_ssl" not in conf
    assert _broker_ssl(conf) == {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/ca.pem"}
    explicit = _conf("rediss://cache.example:6380/0?ssl_cert_reqs=CERT_NONE")
    assert "broker_use_ssl" not in explicit  # said in the URL, on purpose
    assert _broker_ssl(explicit) == {"ssl_cert_reqs": ssl.CERT_NONE}


def test_plain_brokers_have_no_ssl_options():
    for broker in ("redis://127.0.0.1:6379/0", "amqp://guest:guest@127.0.0.1:5672//"):
        assert "broker_use_ssl" not in _conf(broker)


def test_messages_are_checked_by_the_orchestrators_consumer():
    conf = _conf("redis://127.0.0.1:6379/0")
    assert conf["worker_consumer"] == "orchestrator.engine.celery_app:OrchestratorConsumer"
    assert conf["accept_content"] == ["json"]


def _with_overrides(monkeypatch, module: str | None, **names) -> dict:
    if names:
        fake = types.ModuleType(module or "")
        vars(fake).update(names)
        monkeypatch.setitem(sys.modules, module, fake)
    values = {"redis_url": "redis://127.0.0.1:6379/0", "celery_config": module}
    return celery_config(Settings.model_validate(values))


def test_no_overrides_module_by_default(monkeypatch):
    assert Settings.model_validate({}).celery_config is None
    # A top-level `config` package of the user's is not ours to import.
    monkeypatch.setitem(sys.modules, "config.celeryconfig", None)
    assert _with_overrides(monkeypatch, None)["worker_prefetch_multiplier"] == 1


def test_overrides_module_applies_other_settings(monkeypatch):
    conf = _with_overrides(
        monkeypatch, "my_celery_overrides", worker_concurrency=3, _private=1, UPPER=2
    )
    assert conf["worker_concurrency"] == 3
    assert "_private" not in conf and "UPPER" not in conf


def test_the_example_overrides_module_is_accepted():
    values = {
        "redis_url": "redis://x:6379/0",
        "celery_config": "orchestrator.examples.celeryconfig",
    }
    assert celery_config(Settings.model_validate(values))["worker_concurrency"] == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("task_acks_late", False),
        ("task_reject_on_worker_lost", False),
        ("worker_prefetch_multiplier", 4),
        ("accept_content", ["json", "pickle"]),
        ("task_serializer", "pickle"),
        ("result_backend", "redis://x:6379/1"),
    ],
)
def test_overrides_cannot_change_the_correctness_settings(monkeypatch, name, value):
    with pytest.raises(ConfigurationError, match=name) as raised:
        _with_overrides(monkeypatch, "my_bad_overrides", **{name: value})
    assert "my_bad_overrides" in str(raised.value)
    assert name in PROTECTED_SETTINGS


def test_an_overrides_module_that_does_not_import_is_a_configuration_error():
    values = {"redis_url": "redis://x:6379/0", "celery_config": "no_such_overrides_xyz"}
    with pytest.raises(ConfigurationError, match="no_such_overrides_xyz"):
        celery_config(Settings.model_validate(values))
