"""The state-machine registry in Redis: state machines, their versions and aliases.

Keys: ``{p}:sm:{<name>}`` (the record), ``:v`` (versions), ``:a`` (aliases) and the
``{p}:machines`` index (see :mod:`orchestrator.engine.keys`). Every change is one
commit.lua write of the machine's own keys (one hash slot), computed from one read of
its three hashes and guarded by the record's ``rv`` token (or its absence, for a
creation), which the write renews: two changes of one machine racing each other never
both apply; the loser reads again and computes again (:func:`change`), so a change is
atomic and its checks (a version an alias routes to is not deleted, numbers are never
reused) hold at the moment it applies. The index of names, which only the listing reads,
follows in a call of its own (another slot): a process that dies in between leaves a
name listed that the listing skips, or one unlisted until the machine's next change
(``deploy`` changes or confirms every machine it names).

The rules (names, routing, ARNs) are pure: :mod:`orchestrator.language.registry`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orchestrator.engine.keys import Keys
from orchestrator.engine.store import RedisStore, Write
from orchestrator.errors import (
    RegistryConflict,
    ResourceNotFound,
    StateMachineAlreadyExists,
    StateMachineNotFound,
)
from orchestrator.language.registry import MAX_VERSIONS, Routing, Target, choose_version

#: Record fields kept for the Step Functions API (orchestrator/ui/sfn.py): each tag as
#: ``tag:<key>``; the role ARN a machine was given and its logging and tracing
#: configurations (JSON), answered back, never used. The record is deleted with the
#: machine, so they are too.
TAG_FIELD = "tag:"
ROLE_FIELD = "role"
LOGGING_FIELD = "logging"
TRACING_FIELD = "tracing"
SETTINGS_FIELDS = (ROLE_FIELD, LOGGING_FIELD, TRACING_FIELD)

#: How many times a change is computed again after another change of the same machine
#: applied first.
CHANGE_ATTEMPTS = 20

T = TypeVar("T")


@dataclass
class Machine:
    """One read of a state machine: its record, versions and aliases (decoded)."""

    name: str
    record: dict[str, str]
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return bool(self.record)

    def routed_versions(self) -> dict[int, list[str]]:
        """Each version an alias routes to (any weight), with those aliases."""
        routed: dict[int, list[str]] = {}
        for alias, entry in sorted(self.aliases.items()):
            for version, _ in entry["routing"]:
                routed.setdefault(version, []).append(alias)
        return routed


def read(store: RedisStore, name: str) -> Machine:
    """The machine ``name`` (``exists`` False if it is not registered)."""
    record, versions, aliases = store.machine_reads(name)
    return Machine(
        name,
        record,
        {int(number): json.loads(text) for number, text in versions.items()},
        {alias: json.loads(text) for alias, text in aliases.items()},
    )


def change(store: RedisStore, name: str, compute: Callable[[Machine, Write, Keys], T]) -> T:
    """Apply one change to the machine ``name``: ``compute(machine, write, keys)`` checks it
    against a fresh read, adds its ops to ``write`` (none: nothing to change) and returns
    the caller's result; the write is guarded by the record as read. Computed again if
    another change applied in between."""
    keys = store.keys
    for _ in range(CHANGE_ATTEMPTS):
        machine = read(store, name)
        write = Write()
        if machine.exists:
            write.guard_field(keys.machine(name), "rv", machine.record.get("rv", "0"))
        else:
            write.guard_exists(keys.machine(name), False)
        result = compute(machine, write, keys)
        if not write.ops:
            if machine.exists:
                store.index_machine(name, True)  # mends an index a crash left behind
            return result
        deleted = _deletes(write)
        if not deleted:
            # A fresh token, not a counter: a machine deleted and created again meanwhile
            # never matches a guard computed against the one before.
            write.op("hset", keys.machine(name), "rv", uuid.uuid4().hex)
        if store.apply(write).ok:
            store.index_machine(name, not deleted)
            return result
    raise RegistryConflict(f"state machine {name!r} kept changing: try again")


def _deletes(write: Write) -> bool:
    return any(op[0] == "del" for op in write.ops)


def require(machine: Machine) -> Machine:
    if not machine.exists:
        raise StateMachineNotFound(machine.name)
    return machine


# ------------------------------------------------------------------ state machines


def create(
    machine: Machine,
    write: Write,
    keys: Keys,
    *,
    definition: str,
    revision: str,
    type_: str,
    description: str | None,
    now: float,
) -> bool:
    """Register the machine; True if created, False if it exists as asked (idempotent).

    Raises:
        StateMachineAlreadyExists: it exists with another definition, type or description.
    """
    if machine.exists:
        record = machine.record
        if (
            record.get("revision") == revision
            and record.get("type") == type_
            and record.get("description", "") == (description or "")
        ):
            return False
        raise StateMachineAlreadyExists(machine.name)
    write.op(
        "hset",
        keys.machine(machine.name),
        *("name", machine.name, "type", type_, "description", description or ""),
        *("created", repr(now), "updated", repr(now), "definition", definition),
        *("revision", revision, "versions", "0"),
    )
    return True


def update(
    machine: Machine,
    write: Write,
    keys: Keys,
    *,
    definition: str | None,
    revision: str | None,
    description: str | None,
    now: float,
) -> bool:
    """A new revision (and/or description); True if anything changed."""
    require(machine)
    fields: list[str] = []
    if revision is not None and definition is not None and revision != machine.record["revision"]:
        fields += ["definition", definition, "revision", revision]
    if description is not None and description != machine.record.get("description", ""):
        fields += ["description", description]
    if not fields:
        return False
    write.op("hset", keys.machine(machine.name), *fields, "updated", repr(now))
    return True


def delete(machine: Machine, write: Write, keys: Keys) -> bool:
    """Forget the machine, its versions and aliases (executions keep running: each runs
    its own stored definition). False if it was not registered."""
    if not machine.exists:
        return False
    name = machine.name
    write.op("del", keys.machine(name))
    write.op("del", keys.machine_versions(name))
    write.op("del", keys.machine_aliases(name))
    return True


# ------------------------------------------------------------------ versions


def publish(
    machine: Machine,
    write: Write,
    keys: Keys,
    *,
    description: str | None,
    revision_id: str | None,
    now: float,
) -> int:
    """Publish the current revision as the next version number; if the latest version
    already is this revision, that version (idempotent, as Step Functions).

    Raises:
        RegistryConflict: ``revision_id`` is not the current revision, or the machine
            has :data:`MAX_VERSIONS` versions.
    """
    require(machine)
    revision = machine.record["revision"]
    if revision_id is not None and revision_id != revision:
        raise RegistryConflict(
            f"state machine {machine.name!r} is at revision {revision}, not {revision_id}"
        )
    if machine.versions:
        latest = max(machine.versions)
        if machine.versions[latest]["revision"] == revision:
            return latest
    if len(machine.versions) >= MAX_VERSIONS:
        raise RegistryConflict(
            f"state machine {machine.name!r} has {MAX_VERSIONS} versions: delete some first"
        )
    number = int(machine.record.get("versions", "0")) + 1
    entry = {
        "revision": revision,
        "definition": machine.record["definition"],
        "description": description or "",
        "created": now,
    }
    write.op("hset", keys.machine_versions(machine.name), str(number), json.dumps(entry))
    write.op("hset", keys.machine(machine.name), "versions", str(number))
    return number


def delete_version(machine: Machine, write: Write, keys: Keys, version: int) -> bool:
    """Delete a version (False if there is none).

    Raises:
        RegistryConflict: an alias routes to it.
    """
    if not machine.exists or version not in machine.versions:
        return False
    aliases = machine.routed_versions().get(version)
    if aliases:
        raise RegistryConflict(
            f"version {version} of {machine.name!r} is routed to by alias "
            f"{', '.join(aliases)}: update or delete the alias first"
        )
    write.op("hdel", keys.machine_versions(machine.name), str(version))
    return True


# ------------------------------------------------------------------ aliases


def _check_versions(machine: Machine, routing: Routing) -> None:
    for version, _ in routing:
        if version not in machine.versions:
            raise ResourceNotFound(f"state machine {machine.name!r} has no version {version}")


def create_alias(
    machine: Machine,
    write: Write,
    keys: Keys,
    *,
    alias: str,
    routing: Routing,
    description: str | None,
    now: float,
) -> dict[str, Any]:
    """Create an alias (idempotent when it exists as asked); returns its entry.

    Raises:
        ResourceNotFound: a routed version does not exist.
        RegistryConflict: the alias exists with another routing or description.
    """
    require(machine)
    _check_versions(machine, routing)
    existing = machine.aliases.get(alias)
    if existing is not None:
        same = [tuple(pair) for pair in existing["routing"]] == routing and existing.get(
            "description", ""
        ) == (description or "")
        if same:
            return existing
        raise RegistryConflict(f"alias {alias!r} of {machine.name!r} exists with another routing")
    entry = {
        "routing": [list(pair) for pair in routing],
        "description": description or "",
        "created": now,
        "updated": now,
    }
    write.op("hset", keys.machine_aliases(machine.name), alias, json.dumps(entry))
    return entry


def update_alias(
    machine: Machine,
    write: Write,
    keys: Keys,
    *,
    alias: str,
    routing: Routing | None,
    description: str | None,
    now: float,
) -> dict[str, Any]:
    """Change an alias's routing and/or description; returns its entry."""
    require(machine)
    existing = machine.aliases.get(alias)
    if existing is None:
        raise ResourceNotFound(f"state machine {machine.name!r} has no alias {alias!r}")
    entry = dict(existing)
    if routing is not None:
        _check_versions(machine, routing)
        entry["routing"] = [list(pair) for pair in routing]
    if description is not None:
        entry["description"] = description
    if entry != existing:
        entry["updated"] = now
        write.op("hset", keys.machine_aliases(machine.name), alias, json.dumps(entry))
    return entry


def delete_alias(machine: Machine, write: Write, keys: Keys, alias: str) -> None:
    """Delete an alias.

    Raises:
        ResourceNotFound: there is no such alias.
    """
    require(machine)
    if alias not in machine.aliases:
        raise ResourceNotFound(f"state machine {machine.name!r} has no alias {alias!r}")
    write.op("hdel", keys.machine_aliases(machine.name), alias)


# ------------------------------------------------------------------ workflow files


def register_revision(store: RedisStore, name: str, text: str, revision: str) -> str:
    """Make ``text`` (canonical ASL JSON, content hash ``revision``) the latest revision
    of state machine ``name``, registering it if it is not: ``created``, ``updated`` or
    ``unchanged`` (one atomic write, or none). How workflow files become state machines.
    """
    now = time.time()

    def sync(machine: Machine, write: Write, keys: Keys) -> str:
        if not machine.exists:
            create(
                machine,
                write,
                keys,
                definition=text,
                revision=revision,
                type_="STANDARD",
                description=None,
                now=now,
            )
            return "created"
        changed = update(
            machine, write, keys, definition=text, revision=revision, description=None, now=now
        )
        return "updated" if changed else "unchanged"

    return change(store, name, sync)


# ------------------------------------------------------------------ starts


@dataclass(frozen=True)
class Resolved:
    """What a start through the registry runs."""

    name: str
    definition: str
    revision: str
    version: int | None = None
    alias: str | None = None
    #: The machine's type is EXPRESS (its executions run with Express semantics).
    express: bool = False


def resolve(store: RedisStore, target: Target, rand: Callable[[], float]) -> Resolved:
    """The definition a start of ``target`` runs: the machine's latest revision, a
    version's, or an alias's version chosen by its weights (``rand``: uniform [0, 1)).
    One round trip, two through a version and three through an alias (the machine's
    type is read apart from a version's definition).

    Raises:
        StateMachineNotFound: the machine is not registered.
        ResourceNotFound: no such version or alias.
    """
    name = target.name
    version = target.version
    if target.alias is not None:
        text = store.machine_alias_text(name, target.alias)
        if text is None:
            if not store.machine_fields(name, ["revision"])[0]:
                raise StateMachineNotFound(name)
            raise ResourceNotFound(f"state machine {name!r} has no alias {target.alias!r}")
        routing = [(int(v), int(w)) for v, w in json.loads(text)["routing"]]
        version = choose_version(routing, rand)
    if version is None:
        definition, revision, type_ = store.machine_fields(name, ["definition", "revision", "type"])
        if definition is None or revision is None:
            raise StateMachineNotFound(name)
        return Resolved(name, definition, revision, express=type_ == "EXPRESS")
    text = store.machine_version_text(name, version)
    revision, type_ = store.machine_fields(name, ["revision", "type"])
    if text is None:
        if not revision:
            raise StateMachineNotFound(name)
        raise ResourceNotFound(f"state machine {name!r} has no version {version}")
    entry = json.loads(text)
    return Resolved(
        name,
        entry["definition"],
        entry["revision"],
        version,
        target.alias,
        express=type_ == "EXPRESS",
    )


# ------------------------------------------------------------------ tags and role


def tag(machine: Machine, write: Write, keys: Keys, *, tags: dict[str, str], limit: int) -> bool:
    """Set ``tags`` on the machine (record fields ``tag:<key>``); False, and nothing
    written, if it would then hold more than ``limit`` tags."""
    require(machine)
    if len(set(tags_of(machine.record)) | set(tags)) > limit:
        return False
    if tags:
        pairs = [item for key, value in tags.items() for item in (TAG_FIELD + key, value)]
        write.op("hset", keys.machine(machine.name), *pairs)
    return True


def untag(machine: Machine, write: Write, keys: Keys, *, tag_keys: list[str]) -> None:
    """Remove the machine's tags named ``tag_keys`` (absent ones are no error)."""
    require(machine)
    present = [TAG_FIELD + key for key in tag_keys if TAG_FIELD + key in machine.record]
    if present:
        write.op("hdel", keys.machine(machine.name), *present)


def configure(machine: Machine, write: Write, keys: Keys, *, settings: dict[str, str]) -> None:
    """Keep the settings the Step Functions API gave the machine (:data:`SETTINGS_FIELDS`:
    its role ARN, logging and tracing configurations)."""
    require(machine)
    changed = [
        item
        for field_, value in settings.items()
        if field_ in SETTINGS_FIELDS and machine.record.get(field_) != value
        for item in (field_, value)
    ]
    if changed:
        write.op("hset", keys.machine(machine.name), *changed)


def tags_of(record: dict[str, str]) -> dict[str, str]:
    """A machine record's tags."""
    return {k[len(TAG_FIELD) :]: v for k, v in record.items() if k.startswith(TAG_FIELD)}
