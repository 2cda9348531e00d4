"""The Celery configuration derived from the settings (engine.celery_app.celery_config)."""

from __future__ import annotations

import ssl

from celery import Celery

from orchestrator.config import Settings
from orchestrator.engine.celery_app import celery_config


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
