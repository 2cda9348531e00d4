"""`orchestrator machines ...` and `orchestrator deploy` without Redis: usage, help and the
route parser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from orchestrator import cli, config
from orchestrator.testing import restoring_process_state


@pytest.fixture(autouse=True)
def no_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with restoring_process_state():
        for name in (
            "REDIS_URL",
            "ORCHESTRATOR_REDIS_URL",
            "BROKER_URL",
            "ORCHESTRATOR_BROKER_URL",
        ):
            monkeypatch.delenv(name, raising=False)
        config.configure(None)
        yield


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args))


def test_help_lists_the_registry_commands() -> None:
    assert "machines" in invoke("--help").output and "deploy" in invoke("--help").output
    listed = invoke("machines", "--help").output
    for command in ("list", "describe", "create", "update", "delete", "versions", "publish"):
        assert command in listed
    for command in ("delete-version", "aliases", "alias-create", "alias-update", "alias-delete"):
        assert command in listed


@pytest.mark.parametrize(
    "args",
    [
        ["machines", "list"],
        ["machines", "describe", "orders"],
        ["machines", "create", "orders", "order_fulfillment"],
        ["machines", "publish", "orders"],
        ["machines", "alias-create", "orders", "prod", "-r", "1"],
        ["deploy", "."],
    ],
)
def test_registry_commands_need_redis(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert "REDIS_URL is not set" in result.stderr


def test_parse_routes() -> None:
    assert cli.parse_routes(["3=90", "4=10"]) == [(3, 90), (4, 10)]
    assert cli.parse_routes(["2"]) == [(2, 100)]
    assert cli.parse_routes([" 2 = 100 "]) == [(2, 100)]
    for bad in (["x=1"], ["1=x"], ["=100"], ["1=-5"]):
        with pytest.raises(typer.Exit) as caught:
            cli.parse_routes(bad)
        assert caught.value.exit_code == 2
