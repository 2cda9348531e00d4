"""The state-machine registry's pure rules: names, ARNs, routing and the routing draw,
and the registry's changes computed against a machine as read (no Redis)."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from orchestrator.engine import registry
from orchestrator.engine.keys import Keys
from orchestrator.engine.store import Write
from orchestrator.errors import (
    InvalidArn,
    InvalidInputError,
    InvalidName,
    RegistryConflict,
    ResourceNotFound,
    StateMachineAlreadyExists,
    StateMachineNotFound,
)
from orchestrator.language.registry import (
    Target,
    check_alias_name,
    check_name,
    check_routing,
    choose_version,
    parse_arn,
    parse_target,
    qualified_arn,
)

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:orders"
KEYS = Keys("t")


@pytest.mark.parametrize("name", ["a", "orders", "Order-Flow_2.v1", "x" * 80, "ünïcode", "a@b"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 81, "a b", "a\tb", "a:b", "a/b", "a{b}", "a[b]", "a?", "a*", "a$", 7, None]
)
def test_invalid_names(name: object) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


def test_alias_names_are_not_all_digits() -> None:
    assert check_alias_name("prod") == "prod"
    assert check_alias_name("v2") == "v2"
    with pytest.raises(InvalidName, match="digits"):
        check_alias_name("2")


def test_arns() -> None:
    assert parse_arn(ARN) == Target("orders")
    assert parse_arn(ARN + ":3") == Target("orders", version=3)
    assert parse_arn(ARN + ":prod") == Target("orders", alias="prod")
    assert parse_arn("arn:aws-cn:states:cn-north-1:000000000000:stateMachine:o") == Target("o")
    assert parse_target("orders") == Target("orders")
    for bad in (
        ARN + ":0",
        ARN + ":prod:x",
        "arn:aws:states:us-east-1:123456789012:execution:orders:run-1",
        "arn:aws:lambda:us-east-1:123456789012:stateMachine:orders",
        "arn:aws:states:us-east-1:123456789012:stateMachine:",
        "arn:aws:states:us-east-1:123456789012:stateMachine:a b",
        "arn:nonsense",
    ):
        with pytest.raises(InvalidArn):
            parse_arn(bad)
    assert qualified_arn(ARN, Target("orders", version=3)) == ARN + ":3"
    assert qualified_arn(ARN, Target("orders", alias="prod")) == ARN + ":prod"
    assert qualified_arn(ARN, Target("orders")) == ARN


def test_routing() -> None:
    assert check_routing("orders", [(1, 100)]) == [(1, 100)]
    assert check_routing("orders", [(ARN + ":3", 90), ("4", 10)]) == [(3, 90), (4, 10)]
    assert check_routing("orders", [{"stateMachineVersionArn": ARN + ":2", "weight": 100}]) == [
        (2, 100)
    ]
    assert check_routing("orders", [{"version": 1, "weight": 0}, {"version": 2, "weight": 100}])
    for bad, message in (
        ([], "1 or 2"),
        ([(1, 40), (2, 30), (3, 30)], "1 or 2"),
        ([(1, 60), (2, 30)], "sum to 100"),
        ([(1, 50), (1, 50)], "at most once"),
        ([(1, 101)], "0-100"),
        ([(1, 50.0), (2, 50)], "0-100"),
        ([(1, True)], "0-100"),
        ([(0, 100)], "positive"),
        ([(ARN.replace("orders", "other") + ":1", 100)], "not a version"),
        ([(ARN + ":prod", 100)], "not a version"),
        ("1:100", "list"),
        ([(1,)], "version, weight"),
    ):
        with pytest.raises(InvalidInputError, match=message):
            check_routing("orders", bad)


def test_choose_version_follows_the_weights() -> None:
    routing = [(3, 90), (4, 10)]
    assert choose_version(routing, lambda: 0.0) == 3
    assert choose_version(routing, lambda: 0.8999) == 3
    assert choose_version(routing, lambda: 0.9) == 4
    assert choose_version(routing, lambda: 0.99999) == 4
    assert choose_version(routing, lambda: 1.0) == 4  # past the end: the last weighted
    assert choose_version([(3, 100), (4, 0)], lambda: 0.99999) == 3
    assert choose_version([(3, 100), (4, 0)], lambda: 1.0) == 3
    # Evenly spread draws land in proportion, exactly.
    draws = itertools.count()
    picks = [choose_version(routing, lambda: next(draws) / 1000) for _ in range(1000)]
    assert picks.count(4) == 100
    # A seeded source: 10,000 draws within 1.5 points of 10%.
    source = random.Random(7)
    share = sum(choose_version(routing, source.random) == 4 for _ in range(10_000)) / 10_000
    assert abs(share - 0.10) < 0.015


# -- changes computed against a machine as read -------------------------------------------


def machine(
    versions: dict[int, str] | None = None, aliases: dict | None = None
) -> registry.Machine:
    record = {
        "name": "orders",
        "type": "STANDARD",
        "description": "",
        "created": "1.0",
        "updated": "1.0",
        "definition": "{}",
        "revision": "r2",
        "versions": str(max(versions or {0: ""})),
        "rv": "4",
    }
    return registry.Machine(
        "orders",
        record,
        {
            n: {"revision": rev, "definition": "{}", "description": "", "created": 1.0}
            for n, rev in (versions or {}).items()
        },
        aliases or {},
    )


def test_create_is_idempotent_or_refused() -> None:
    write = Write()
    kwargs: dict[str, Any] = dict(
        definition="{}", revision="r2", type_="STANDARD", description=None, now=5.0
    )
    assert registry.create(registry.Machine("orders", {}), write, KEYS, **kwargs) is True
    # The machine's own keys only: the index of names follows in a call of its own.
    assert [op[0] for op in write.ops] == ["hset"]
    write = Write()
    assert registry.create(machine(), write, KEYS, **kwargs) is False
    assert not write.ops
    with pytest.raises(StateMachineAlreadyExists):
        registry.create(machine(), Write(), KEYS, **{**kwargs, "revision": "r3"})


def test_publish_numbers_and_idempotency() -> None:
    write = Write()
    assert (
        registry.publish(
            machine({1: "r1"}), write, KEYS, description=None, revision_id=None, now=2.0
        )
        == 2
    )
    entry = json.loads(write.ops[0][4])
    assert entry["revision"] == "r2"
    # The latest version is the current revision: that version, nothing written.
    write = Write()
    assert (
        registry.publish(
            machine({1: "r2"}), write, KEYS, description=None, revision_id=None, now=2.0
        )
        == 1
    )
    assert not write.ops
    # Numbers go on from the highest ever published, not the highest kept.
    m = machine({1: "r1"})
    m.record["versions"] = "5"
    assert registry.publish(m, Write(), KEYS, description=None, revision_id=None, now=2.0) == 6
    with pytest.raises(RegistryConflict):
        registry.publish(machine(), Write(), KEYS, description=None, revision_id="r1", now=2.0)
    with pytest.raises(StateMachineNotFound):
        registry.publish(
            registry.Machine("orders", {}),
            Write(),
            KEYS,
            description=None,
            revision_id=None,
            now=2.0,
        )


def test_a_routed_version_is_not_deleted() -> None:
    aliases = {
        "prod": {"routing": [[1, 90], [2, 10]], "description": "", "created": 1, "updated": 1}
    }
    m = machine({1: "r1", 2: "r2", 3: "r3"}, aliases)
    for version in (1, 2):
        with pytest.raises(RegistryConflict, match="prod"):
            registry.delete_version(m, Write(), KEYS, version)
    write = Write()
    assert registry.delete_version(m, write, KEYS, 3) is True
    assert write.ops[0][0] == "hdel"
    assert registry.delete_version(m, Write(), KEYS, 9) is False


def test_alias_changes_check_versions() -> None:
    m = machine({1: "r1"})
    with pytest.raises(ResourceNotFound):
        registry.create_alias(
            m, Write(), KEYS, alias="prod", routing=[(2, 100)], description=None, now=1.0
        )
    with pytest.raises(ResourceNotFound):
        registry.update_alias(
            m, Write(), KEYS, alias="prod", routing=[(1, 100)], description=None, now=1.0
        )
    with pytest.raises(ResourceNotFound):
        registry.delete_alias(m, Write(), KEYS, "prod")
