"""Redis URLs: Sentinel's and Cluster's forms, the broker they imply, TLS files, masks."""

from __future__ import annotations

import ssl

import pytest

from orchestrator.config import (
    ClusterTarget,
    SentinelTarget,
    parse_cluster_url,
    parse_sentinel_url,
    settings_from_env,
)
from orchestrator.engine.celery_app import celery_config
from orchestrator.errors import ConfigurationError, mask_url

SECRET = "s3cr%40t"  # percent-encoded "s3cr@t"


def test_a_sentinel_url_names_the_sentinels_the_master_and_the_database() -> None:
    url = f"redis+sentinel://orch:{SECRET}@h1:26379,h2:26380,[::1]:26381/mymaster/3"
    assert parse_sentinel_url(url) == SentinelTarget(
        (("h1", 26379), ("h2", 26380), ("::1", 26381)), "mymaster", 3, "orch", "s3cr@t"
    )
    assert parse_sentinel_url("redis+sentinel://h1/m") == SentinelTarget((("h1", 26379),), "m", 0)
    assert parse_sentinel_url("redis://h1:6379/0") is None


@pytest.mark.parametrize(
    "url",
    [
        f"redis+sentinel://:{SECRET}@h1:26379",  # no master
        f"redis+sentinel://:{SECRET}@h1:port/m",
        f"redis+sentinel://:{SECRET}@h1:26379,/m",
        f"redis+sentinel://:{SECRET}@h1:26379/m/db",
        f"redis+sentinel://:{SECRET}@h1:26379/m/0/extra",
    ],
)
def test_a_malformed_sentinel_url_is_refused_without_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_env(redis_url=url)
    message = str(caught.value)
    assert "redis+sentinel://[user:password@]host1:26379" in message
    assert "s3cr" not in message


def test_the_broker_follows_the_same_master_through_kombus_sentinel_transport() -> None:
    settings = settings_from_env(
        redis_url=f"redis+sentinel://orch:{SECRET}@h1:26379,h2:26380/mymaster/2", broker_url=None
    )
    assert settings.effective_broker_url == (
        f"sentinel://orch:{SECRET}@h1:26379/2;sentinel://orch:{SECRET}@h2:26380/2"
    )
    assert settings.broker_master_name == "mymaster"
    conf = celery_config(settings)
    assert conf["broker_transport_options"]["master_name"] == "mymaster"
    assert conf["broker_transport_options"]["priority_steps"] == list(range(10))


def test_a_broker_url_of_its_own_wins() -> None:
    settings = settings_from_env(
        redis_url="redis+sentinel://h1:26379/mymaster", broker_url="amqp://rabbit//"
    )
    assert settings.effective_broker_url == "amqp://rabbit//"
    assert settings.broker_master_name is None
    assert "broker_transport_options" not in celery_config(settings)


@pytest.mark.parametrize("scheme", ["redis+cluster", "rediss+cluster"])
def test_a_cluster_without_a_broker_url_is_refused(scheme: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_env(redis_url=f"{scheme}://:{SECRET}@h1:7000", broker_url=None)
    message = str(caught.value)
    assert "BROKER_URL is not set" in message and "localhost:6379" in message
    assert "s3cr" not in message
    # With a broker of its own the settings are accepted.
    settings_from_env(redis_url=f"{scheme}://h1:7000", broker_url="amqp://rabbit//")


def test_a_cluster_url_names_its_seed_nodes_and_credentials() -> None:
    url = f"redis+cluster://orch:{SECRET}@h1:7000,h2:7001,[::1]:7002/"
    assert parse_cluster_url(url) == ClusterTarget(
        (("h1", 7000), ("h2", 7001), ("::1", 7002)), "orch", "s3cr@t"
    )
    assert parse_cluster_url("rediss+cluster://h1") == ClusterTarget((("h1", 6379),), tls=True)
    assert parse_cluster_url("redis+cluster://h1:7000/0") == ClusterTarget((("h1", 7000),))
    assert parse_cluster_url("redis://h1:6379/0") is None


@pytest.mark.parametrize(
    "url", ["redis+cluster://h1:70000/", "redis+cluster://:7000/", "redis+cluster://h1:7000/2"]
)
def test_a_malformed_cluster_url_is_refused_when_the_settings_are_read(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_env(redis_url=url, broker_url="amqp://rabbit//")
    assert "redis+cluster://[user:password@]host1:7000" in str(caught.value)


def test_a_cluster_no_node_of_which_answers_is_an_outage_not_a_crash() -> None:
    import redis

    from orchestrator.engine.store import redis_client
    from tests.redis_servers import free_port

    with pytest.raises(redis.ConnectionError) as caught:
        redis_client(f"redis+cluster://:{SECRET}@127.0.0.1:{free_port()}/", timeout=0.5)
    assert "Redis Cluster" in str(caught.value) and "s3cr" not in str(caught.value)


def test_tls_files_go_to_the_broker_and_the_store() -> None:
    from orchestrator.engine.store import redis_client
    from orchestrator.testing import process_settings

    settings = settings_from_env(
        redis_url="rediss://orch:pw@h1:6380/0",
        broker_url=None,
        redis_tls_ca_file="/ca.pem",
        redis_tls_cert_file="/client.pem",
        redis_tls_key_file="/client.key",
    )
    assert celery_config(settings)["broker_use_ssl"] == {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": "/ca.pem",
        "ssl_certfile": "/client.pem",
        "ssl_keyfile": "/client.key",
    }
    with process_settings(settings):
        client = redis_client(settings.redis_url or "")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["ssl_ca_certs"] == "/ca.pem" and kwargs["ssl_certfile"] == "/client.pem"
    assert kwargs["username"] == "orch"
    client.close()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:pw@h:1/0", "redis://:***@h:1/0"),
        ("rediss://orch:pw@[::1]:1/0", "rediss://orch:***@[::1]:1/0"),
        ("redis://h:1/0", "redis://h:1/0"),
        ("redis://orch@h/0", "redis://orch@h/0"),
        ("redis+sentinel://orch:p@w@h1:1,h2:2/m/0", "redis+sentinel://orch:***@h1:1,h2:2/m/0"),
        (
            "sentinel://:pw@h:1/0;sentinel://:pw@h2:2/0",
            "sentinel://:***@h:1/0;sentinel://:***@h2:2/0",
        ),
        ("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=1"),
    ],
)
def test_passwords_are_masked_in_every_url_form(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_celery_itself_refuses_to_start_a_worker_on_a_cluster_url() -> None:
    """``celery -A orchestrator.engine.celery_app worker`` (not only ``orchestrator
    worker``) stops with the setting's message instead of running on a fallback broker."""
    import subprocess
    import sys

    from tests.helpers import REPO, child_environ

    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "orchestrator.engine.celery_app", "worker"],
        env=child_environ(REDIS_URL=f"redis+cluster://:{SECRET}@h1:7000"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "BROKER_URL is not set" in done.stdout + done.stderr
    assert "s3cr" not in done.stdout + done.stderr
