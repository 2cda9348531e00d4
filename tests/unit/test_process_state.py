"""``local_orchestrator()`` and ``process_settings()`` leave the process as they found it:
the settings in force (the override itself, not an equal copy of the environment's), the
store the public API uses (no cached client of a server that is gone) and the Celery
app's configuration, whether the body ends normally or by an exception.

Each check runs in a subprocess of its own: reconfiguring this process's Celery app would
close the broker connections of a test session's in-process worker, and the
``local_orchestrator()`` checked here starts a worker of its own (Celery's worker state
is process-wide).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import child_environ

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from orchestrator import config, start_workflow
    from orchestrator.engine import store as store_module
    from orchestrator.engine.celery_app import app, celery_config
    from orchestrator.errors import ConfigurationError
    from orchestrator.testing import local_orchestrator, process_settings

    def state():
        try:
            store = store_module.get_store()
        except ConfigurationError:  # no Redis URL in force
            in_force = None
        else:
            pool = store.client.connection_pool.connection_kwargs
            in_force = [store.keys.prefix, pool.get("host"), pool.get("port"), pool.get("db")]
        settings = config.get_settings()
        return {
            "override": None if config._override is None else id(config._override),
            "settings": settings.model_dump(mode="json"),
            "store": in_force,
            "cached_stores": sorted(map(list, store_module._stores)),
            "celery": {name: app.conf.get(name) for name in celery_config(settings)},
        }

    scenario, before_is, how = sys.argv[1:4]
    if before_is == "override":
        config.configure(
            config.settings_from_env(
                redis_url="redis://127.0.0.1:1/5", key_prefix="before", queue="before-q"
            )
        )
    before = state()
    inside = {}
    echo = {"StartAt": "E", "States": {"E": {"Type": "Task", "Resource": "echo", "End": True}}}
    try:
        if scenario == "process_settings":
            other = config.settings_from_env(
                redis_url="redis://127.0.0.1:2/3", key_prefix="other", queue="other-q"
            )
            with process_settings(other):
                inside = state()
                if how == "raises":
                    raise RuntimeError("the body failed")
        else:
            with local_orchestrator(task_modules=["tests.activities"], concurrency=1):
                inside = state()
                # A publish inside: the broker pools it used are closed on the way out.
                assert start_workflow(echo, {"a": 1}).result(20).status == "SUCCEEDED"
                if how == "raises":
                    raise RuntimeError("the body failed")
    except RuntimeError as exc:
        assert how == "raises" and str(exc) == "the body failed", exc
    print(json.dumps({"before": before, "inside": inside, "after": state()}))
    """
)


@pytest.mark.parametrize("how", ["returns", "raises"])
@pytest.mark.parametrize("before_is", ["override", "environment"])
@pytest.mark.parametrize("scenario", ["local_orchestrator", "process_settings"])
def test_the_process_is_left_as_it_was(scenario: str, before_is: str, how: str) -> None:
    # No REDIS_URL: local_orchestrator() starts an embedded server, and "environment"
    # means the environment's settings with no override (and no store) in force.
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, scenario, before_is, how],
        cwd=ROOT,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    before, inside, after = seen["before"], seen["inside"], seen["after"]
    assert inside["store"] != before["store"], seen
    assert inside["celery"]["broker_url"] != before["celery"]["broker_url"], seen
    assert inside["settings"] != before["settings"], seen
    assert after == before
