"""The script lane's retries on a cluster, against a scripted connection: a failover's
refusals and the promoted replica's missing script are counted apart."""

from __future__ import annotations

from typing import Any

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, NoScriptError

from orchestrator.engine import store as store_module
from orchestrator.engine.store import ScriptLane


class _Connection:
    """Answers each EVALSHA with the next reply (an exception is raised); records the
    scripts loaded on it."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.loaded: list[str] = []
        self._sock = object()
        self._pending: list[str] = []

    def send_packed_command(self, packed: Any) -> None:
        self._pending.append("EVALSHA")

    def send_command(self, *args: Any) -> None:
        assert args[:2] == ("SCRIPT", "LOAD")
        self.loaded.append(args[2])
        self._pending.append("LOAD")

    def read_response(self) -> Any:
        if self._pending.pop(0) == "LOAD":
            return "sha"
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    def disconnect(self) -> None:
        pass


class _Script:
    sha = "abc"
    script = "return 1"


class _Nodes:
    def initialize(self) -> None:
        pass


def _lane(connection: _Connection, monkeypatch: pytest.MonkeyPatch) -> ScriptLane:
    cluster = RedisCluster.__new__(RedisCluster)  # not connected: only its type matters
    cluster.nodes_manager = _Nodes()  # type: ignore[assignment]
    lane = ScriptLane(cluster)
    monkeypatch.setattr(lane, "_connection", lambda key="": connection)
    monkeypatch.setattr(ScriptLane, "_pack", staticmethod(lambda c, commands: [b""]))
    monkeypatch.setattr(store_module.time, "sleep", lambda seconds: None)
    return lane


@pytest.mark.parametrize("refusals", [0, 3, 10])
def test_a_promoted_replica_without_the_script_gets_it_after_any_refusals(
    refusals: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = ClusterDownError("CLUSTERDOWN The cluster is down")
    connection = _Connection([down] * refusals + [NoScriptError("No matching script"), "ok"])
    assert _lane(connection, monkeypatch).run(_Script(), ["{0.0}:x:e"], []) == "ok"
    assert connection.loaded == [_Script.script]


def test_a_cluster_down_past_the_attempts_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    down = ClusterDownError("CLUSTERDOWN The cluster is down")
    connection = _Connection([down] * ScriptLane.CLUSTER_ATTEMPTS + ["ok"])
    with pytest.raises(ClusterDownError):
        _lane(connection, monkeypatch).run(_Script(), ["{0.0}:x:e"], [])
    assert connection.replies == ["ok"]


def test_a_script_that_never_stays_loaded_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = NoScriptError("No matching script")
    connection = _Connection([missing] * (ScriptLane.LOADS + 1))
    with pytest.raises(NoScriptError):
        _lane(connection, monkeypatch).run(_Script(), ["{0.0}:x:e"], [])
    assert len(connection.loaded) == ScriptLane.LOADS
