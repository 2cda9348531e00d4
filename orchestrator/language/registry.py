"""The state-machine registry's pure rules: names, targets, versions and alias routing.

Nothing here reads Redis; :mod:`orchestrator.engine.registry` stores what these rules
accept. Names follow Step Functions: a state machine's or alias's name is 1-80
characters without whitespace, brackets, wildcards or any of
``" # % \\ ^ | ~ ` $ & , ; : /`` (nor control characters); an alias name is not all
digits, so ``NAME:3`` is always a version and ``NAME:prod`` an alias.

A start names its target as a state machine's name, or as one of the ARNs::

    arn:aws:states:REGION:ACCOUNT:stateMachine:NAME          the latest revision
    arn:aws:states:REGION:ACCOUNT:stateMachine:NAME:3        version 3
    arn:aws:states:REGION:ACCOUNT:stateMachine:NAME:prod     alias prod

(any partition, region and account: one copied from AWS or formed under other settings).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import InvalidArn, InvalidInputError, InvalidName

#: A state machine's (or alias's) name, as Step Functions allows it.
NAME = re.compile(r"^[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,80}$")
#: State machine types.
TYPES = ("STANDARD", "EXPRESS")
#: A description's most characters (Step Functions': 256).
MAX_DESCRIPTION = 256
#: An alias routes to one version, or splits between two (Step Functions' rule).
MAX_ROUTES = 2
#: The most versions a state machine keeps (Step Functions' quota).
MAX_VERSIONS = 1000
#: The most tags a state machine holds, and a tag key's and value's most characters
#: (Step Functions' quotas).
MAX_TAGS = 50
MAX_TAG_KEY = 128
MAX_TAG_VALUE = 256


@dataclass(frozen=True)
class Target:
    """What a start (or a describe) names: a state machine, one of its versions, or one
    of its aliases (at most one of ``version`` and ``alias``)."""

    name: str
    version: int | None = None
    alias: str | None = None


def check_name(name: object, what: str = "state machine") -> str:
    """``name`` if it is a valid state machine name, else :class:`InvalidName`."""
    if not isinstance(name, str) or not NAME.match(name):
        raise InvalidName(
            f"{what} name {name!r}: use 1-80 characters without whitespace or any of "
            '< > { } [ ] ? * " # % \\ ^ | ~ ` $ & , ; : /'
        )
    return name


def check_alias_name(alias: object) -> str:
    """``alias`` if it is a valid alias name (a name, not all digits)."""
    check_name(alias, "alias")
    assert isinstance(alias, str)
    if alias.isdigit():
        raise InvalidName(f"alias name {alias!r}: must not be all digits (that names a version)")
    return alias


def check_type(type_: object) -> str:
    """``type_`` (``STANDARD`` or ``EXPRESS``), else :class:`InvalidInputError`."""
    if type_ not in TYPES:
        raise InvalidInputError(f"type {type_!r}: must be STANDARD or EXPRESS")
    assert isinstance(type_, str)
    return type_


def check_description(description: object) -> str | None:
    """``description`` (None or a string of at most 256 characters)."""
    if description is None:
        return None
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise InvalidInputError(f"description: a string of at most {MAX_DESCRIPTION} characters")
    return description


def check_tags(tags: object) -> dict[str, str]:
    """``tags`` (a mapping of keys to values) if every key is 1-128 characters and every
    value at most 256, as Step Functions allows them."""
    if not isinstance(tags, dict):
        raise InvalidInputError("tags: a mapping of keys to values")
    for key, value in tags.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY:
            raise InvalidInputError(f"tag key {key!r}: 1-{MAX_TAG_KEY} characters")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            raise InvalidInputError(f"tag {key!r}: a value of at most {MAX_TAG_VALUE} characters")
    return dict(tags)


def check_version(version: object) -> int:
    """A version number (a positive int, or its decimal text)."""
    if isinstance(version, str) and version.isdigit():
        version = int(version)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidInputError(f"version {version!r}: must be a positive integer")
    return version


def is_arn(text: object) -> bool:
    """Whether ``text`` looks like an ARN (and is to be read as one)."""
    return isinstance(text, str) and text.startswith("arn:")


def parse_arn(arn: str) -> Target:
    """The target a state machine, version or alias ARN names.

    Raises:
        InvalidArn: not ``arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME[:QUALIFIER]``.
    """
    parts = arn.split(":") if isinstance(arn, str) else []
    if len(parts) not in (7, 8) or parts[0] != "arn" or parts[2] != "states":
        raise InvalidArn(f"{arn!r} is not a state machine, version or alias ARN")
    if parts[5] != "stateMachine" or not parts[6]:
        raise InvalidArn(f"{arn!r} is not a state machine, version or alias ARN")
    name = parts[6]
    if not NAME.match(name):
        raise InvalidArn(f"{arn!r}: {name!r} is not a state machine name")
    if len(parts) == 7:
        return Target(name)
    qualifier = parts[7]
    if qualifier.isdigit() and int(qualifier) >= 1:
        return Target(name, version=int(qualifier))
    if NAME.match(qualifier) and not qualifier.isdigit():
        return Target(name, alias=qualifier)
    raise InvalidArn(f"{arn!r}: {qualifier!r} is neither a version nor an alias")


def parse_target(target: str) -> Target:
    """A name or an ARN as a :class:`Target` (a name must be valid)."""
    if is_arn(target):
        return parse_arn(target)
    return Target(check_name(target))


def qualified_arn(machine_arn: str, target: Target) -> str:
    """The ARN of ``target`` given its state machine's ARN."""
    if target.version is not None:
        return f"{machine_arn}:{target.version}"
    if target.alias is not None:
        return f"{machine_arn}:{target.alias}"
    return machine_arn


Routing = list[tuple[int, int]]


def check_routing(name: str, routing: object) -> Routing:
    """An alias's routing as ``[(version, weight), ...]``.

    ``routing`` holds 1 or 2 entries, each ``(version, weight)`` or a mapping with
    ``version``/``stateMachineVersionArn`` and ``weight``; a version is a number or a
    version ARN of ``name``; weights are integers 0-100 summing to 100; versions differ.
    """
    if not isinstance(routing, Sequence) or isinstance(routing, str | bytes):
        raise InvalidInputError("routing: a list of (version, weight) pairs")
    if not 1 <= len(routing) <= MAX_ROUTES:
        raise InvalidInputError(f"routing: 1 or {MAX_ROUTES} entries, not {len(routing)}")
    result: Routing = []
    for entry in routing:
        version_ref: Any
        weight: Any
        if isinstance(entry, dict):
            version_ref = entry.get("version", entry.get("stateMachineVersionArn"))
            weight = entry.get("weight")
        elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
            version_ref, weight = entry
        else:
            raise InvalidInputError(f"routing entry {entry!r}: use (version, weight)")
        if is_arn(version_ref):
            target = parse_arn(version_ref)
            if target.version is None or target.name != name:
                raise InvalidInputError(f"routing: {version_ref!r} is not a version of {name!r}")
            version = target.version
        else:
            version = check_version(version_ref)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise InvalidInputError(f"routing: weight {weight!r} must be an integer 0-100")
        result.append((version, weight))
    if len({version for version, _ in result}) != len(result):
        raise InvalidInputError("routing: each version at most once")
    if sum(weight for _, weight in result) != 100:
        raise InvalidInputError("routing: the weights must sum to 100")
    return result


def choose_version(routing: Routing, rand: Callable[[], float]) -> int:
    """The version a start through an alias runs: version i with probability weight
    i / 100 (``rand()`` uniform in [0, 1))."""
    point = rand() * 100
    total = 0
    for version, weight in routing:
        total += weight
        if point < total:
            return version
    # Only reached with rand() == 1.0 or rounding: the last version with any weight.
    return next(version for version, weight in reversed(routing) if weight > 0)
