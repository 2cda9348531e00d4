"""The public API of the state-machine registry: state machines, versions and aliases.

Each function validates its arguments (:mod:`orchestrator.language.registry`), then
makes one atomic change or read through :mod:`orchestrator.engine.registry`. Return
values are shaped after Step Functions' responses (DescribeStateMachine,
ListStateMachineVersions, DescribeStateMachineAlias...), field for field in snake_case.

A state machine is named by its name or its ARN
(``arn:aws:states:REGION:ACCOUNT:stateMachine:NAME``); a version by its ARN
(``...:NAME:3``) or the machine and a number; an alias by its ARN (``...:NAME:prod``) or
the machine and the alias's name. :func:`orchestrator.start_workflow` accepts all of them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orchestrator.client.api import (
    WORKFLOW_SUFFIXES,
    DefinitionSource,
    _compiled,
    _stem,
    _workflow_file,
)
from orchestrator.client.models import (
    RoutingEntry,
    StateMachineAlias,
    StateMachineAliasList,
    StateMachineDescription,
    StateMachineList,
    StateMachineListItem,
    StateMachineVersion,
    StateMachineVersionList,
    to_datetime,
)
from orchestrator.engine import registry
from orchestrator.engine.store import RedisStore, get_store, store_call
from orchestrator.errors import (
    DefinitionError,
    DefinitionIssue,
    InvalidArn,
    InvalidInputError,
    ResourceNotFound,
    StateMachineNotFound,
)
from orchestrator.language import registry as rules
from orchestrator.language.arns import state_machine_arn
from orchestrator.language.registry import Routing, Target

#: Page sizes of the listings (Step Functions' maxResults bounds).
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def _parse(name_or_arn: object) -> Target:
    """What a name or an ARN names (a machine, a version or an alias)."""
    if not isinstance(name_or_arn, str):
        raise InvalidInputError(f"state machine {name_or_arn!r}: a name or an ARN")
    return rules.parse_target(name_or_arn)


def _machine_name(name_or_arn: object) -> str:
    """The machine a name or an unqualified ARN names."""
    target = _parse(name_or_arn)
    if target.version is not None or target.alias is not None:
        raise InvalidArn(f"{name_or_arn!r} names a version or alias, not a state machine")
    return target.name


def _alias_target(name_or_arn: object, alias: str | None) -> Target:
    target = _parse(name_or_arn)
    if target.version is not None:
        raise InvalidArn(f"{name_or_arn!r} names a version, not an alias")
    if alias is not None:
        if target.alias is not None and target.alias != alias:
            raise InvalidInputError(f"{name_or_arn!r} names alias {target.alias!r}, not {alias!r}")
        return Target(target.name, alias=rules.check_alias_name(alias))
    if target.alias is None:
        raise InvalidInputError("name the alias: an alias ARN, or the machine and the alias")
    return target


def _version_target(name_or_arn: object, version: object) -> Target:
    target = _parse(name_or_arn)
    if target.alias is not None:
        raise InvalidArn(f"{name_or_arn!r} names an alias, not a version")
    if version is not None:
        number = rules.check_version(version)
        if target.version is not None and target.version != number:
            raise InvalidInputError(f"{name_or_arn!r} names version {target.version}, not {number}")
        return Target(target.name, version=number)
    if target.version is None:
        raise InvalidInputError("name the version: a version ARN, or the machine and a number")
    return target


def _page_size(max_results: object) -> int:
    if max_results is None:
        return DEFAULT_PAGE
    if isinstance(max_results, bool) or not isinstance(max_results, int):
        raise InvalidInputError("max_results: an integer 1-1000")
    if not 1 <= max_results <= MAX_PAGE:
        raise InvalidInputError("max_results: an integer 1-1000")
    return max_results


def _definition(definition: DefinitionSource) -> tuple[str, str]:
    """The canonical text and revision of a definition (validated as a start would:
    :class:`DefinitionError` lists every issue)."""
    _, _, text, revision = _compiled(definition)
    return text, revision


def _description(
    machine: registry.Machine, version_arn: str | None = None
) -> StateMachineDescription:
    record = machine.record
    return StateMachineDescription(
        state_machine_arn=state_machine_arn(machine.name),
        name=machine.name,
        definition=record["definition"],
        type=record.get("type", "STANDARD"),
        description=record.get("description") or None,
        creation_date=to_datetime(record["created"]),
        update_date=to_datetime(record["updated"]),
        revision_id=record["revision"],
        state_machine_version_arn=version_arn,
        **_settings(record),
    )


def _settings(record: dict[str, str]) -> dict[str, Any]:
    """The description's fields of what the Step Functions API keeps (role, logging,
    tracing)."""
    logging, tracing = record.get(registry.LOGGING_FIELD), record.get(registry.TRACING_FIELD)
    return {
        "role_arn": record.get(registry.ROLE_FIELD) or None,
        "logging_configuration": json.loads(logging) if logging else None,
        "tracing_configuration": json.loads(tracing) if tracing else None,
    }


def _version(name: str, number: int, entry: dict[str, Any]) -> StateMachineVersion:
    return StateMachineVersion(
        state_machine_version_arn=f"{state_machine_arn(name)}:{number}",
        version=number,
        creation_date=to_datetime(entry["created"]),
        revision_id=entry["revision"],
        description=entry.get("description") or None,
    )


def _alias(name: str, alias: str, entry: dict[str, Any]) -> StateMachineAlias:
    arn = state_machine_arn(name)
    return StateMachineAlias(
        state_machine_alias_arn=f"{arn}:{alias}",
        name=alias,
        description=entry.get("description") or None,
        routing_configuration=[
            RoutingEntry(state_machine_version_arn=f"{arn}:{v}", version=int(v), weight=int(w))
            for v, w in entry["routing"]
        ],
        creation_date=to_datetime(entry["created"]),
        update_date=to_datetime(entry["updated"]),
    )


def _described(
    store: RedisStore, name: str, publish: bool, version_description: str | None
) -> StateMachineDescription:
    """A machine just created or updated, its current revision first published as a
    version if ``publish``."""
    version_arn = None
    if publish:
        version_arn = publish_state_machine_version(
            name, version_description
        ).state_machine_version_arn
    return _description(registry.require(registry.read(store, name)), version_arn)


# ------------------------------------------------------------------ state machines


@store_call(mutates=True)
def create_state_machine(
    name: str,
    definition: DefinitionSource,
    *,
    type: str = "STANDARD",
    description: str | None = None,
    publish: bool = False,
    version_description: str | None = None,
) -> StateMachineDescription:
    """Register a state machine (CreateStateMachine).

    Creating one that exists with the same definition, type and description returns it
    (idempotent); ``publish`` also publishes its first version.

    Raises:
        InvalidName: the name is not one Step Functions allows.
        DefinitionError: the definition is invalid (``.issues`` lists every problem).
        StateMachineAlreadyExists: it exists with another definition, type or description.
    """
    rules.check_name(name)
    type_ = rules.check_type(type)
    description = rules.check_description(description)
    version_description = rules.check_description(version_description)
    text, revision = _definition(definition)
    store = get_store()
    now = time.time()
    registry.change(
        store,
        name,
        lambda m, w, k: registry.create(
            m,
            w,
            k,
            definition=text,
            revision=revision,
            type_=type_,
            description=description,
            now=now,
        ),
    )
    return _described(store, name, publish, version_description)


@store_call(mutates=True)
def update_state_machine(
    name_or_arn: str,
    definition: DefinitionSource | None = None,
    *,
    description: str | None = None,
    publish: bool = False,
    version_description: str | None = None,
) -> StateMachineDescription:
    """Give a state machine a new revision (UpdateStateMachine): starts from now on run
    it, executions in flight keep the revision they started with. The same definition
    again changes nothing (same content, same revision). ``publish`` also publishes it
    as a version.

    Raises:
        StateMachineNotFound: it is not registered.
        DefinitionError: the definition is invalid.
    """
    name = _machine_name(name_or_arn)
    description = rules.check_description(description)
    version_description = rules.check_description(version_description)
    if definition is None and description is None and not publish:
        raise InvalidInputError("update_state_machine: give a definition or a description")
    text, revision = _definition(definition) if definition is not None else (None, None)
    store = get_store()
    now = time.time()
    registry.change(
        store,
        name,
        lambda m, w, k: registry.update(
            m,
            w,
            k,
            definition=text,
            revision=revision,
            description=description,
            now=now,
        ),
    )
    return _described(store, name, publish, version_description)


@store_call(mutates=False)
def describe_state_machine(name_or_arn: str, version: int | None = None) -> StateMachineDescription:
    """A state machine (its latest revision), or one of its versions: a version ARN or
    ``version`` (then the ARN, description, revision and date are the version's, as AWS
    describes a version).

    Raises:
        StateMachineNotFound: it is not registered.
        ResourceNotFound: it has no such version.
    """
    target = _parse(name_or_arn)
    if target.alias is not None:
        raise InvalidArn(f"{name_or_arn!r} names an alias: describe_state_machine_alias")
    number = target.version if version is None else rules.check_version(version)
    machine = registry.require(registry.read(get_store(), target.name))
    if number is None:
        return _description(machine)
    entry = machine.versions.get(number)
    if entry is None:
        raise ResourceNotFound(f"state machine {target.name!r} has no version {number}")
    return StateMachineDescription(
        state_machine_arn=f"{state_machine_arn(target.name)}:{number}",
        name=target.name,
        definition=entry["definition"],
        type=machine.record.get("type", "STANDARD"),
        description=entry.get("description") or None,
        creation_date=to_datetime(entry["created"]),
        revision_id=entry["revision"],
        version=number,
        **_settings(machine.record),
    )


@store_call(mutates=False)
def list_state_machines(
    *, max_results: int | None = None, next_token: str | None = None
) -> StateMachineList:
    """Registered state machines by name, a page at a time (ListStateMachines)."""
    size = _page_size(max_results)
    if next_token is not None and (
        not isinstance(next_token, str) or not rules.NAME.match(next_token)
    ):
        raise InvalidInputError(f"next_token {next_token!r} is not one a listing returned")
    store = get_store()
    names = store.machine_names(next_token, size + 1)
    more = len(names) > size
    names = names[:size]
    items = []
    for name, (type_, created) in zip(
        names, store.machine_records(names, ["type", "created"]), strict=True
    ):
        if created is None:
            continue  # deleted since the index was read
        items.append(
            StateMachineListItem(
                state_machine_arn=state_machine_arn(name),
                name=name,
                type=type_ or "STANDARD",
                creation_date=to_datetime(created),
            )
        )
    return StateMachineList(state_machines=items, next_token=names[-1] if more else None)


@store_call(mutates=True)
def delete_state_machine(name_or_arn: str) -> bool:
    """Delete a state machine with its versions and aliases (DeleteStateMachine);
    executions in flight run on. True if it existed (deleting none is no error, as AWS)."""
    name = _machine_name(name_or_arn)
    store = get_store()
    return registry.change(store, name, registry.delete)


# ------------------------------------------------------------------ versions


@store_call(mutates=True)
def publish_state_machine_version(
    name_or_arn: str, description: str | None = None, *, revision_id: str | None = None
) -> StateMachineVersion:
    """Publish the machine's current revision as an immutable, numbered version
    (PublishStateMachineVersion). Numbers count up from 1 and are never reused; if the
    latest version already is this revision, it is returned (idempotent).

    Raises:
        StateMachineNotFound: it is not registered.
        RegistryConflict: ``revision_id`` is not its current revision, or it has 1,000
            versions.
    """
    name = _machine_name(name_or_arn)
    description = rules.check_description(description)
    store = get_store()
    now = time.time()
    number = registry.change(
        store,
        name,
        lambda m, w, k: registry.publish(
            m, w, k, description=description, revision_id=revision_id, now=now
        ),
    )
    entry = json.loads(store.machine_version_text(name, number) or "null")
    if entry is None:
        raise ResourceNotFound(f"version {number} of {name!r} was deleted meanwhile")
    return _version(name, number, entry)


@store_call(mutates=False)
def list_state_machine_versions(
    name_or_arn: str, *, max_results: int | None = None, next_token: str | None = None
) -> StateMachineVersionList:
    """A machine's versions, newest first (ListStateMachineVersions)."""
    name = _machine_name(name_or_arn)
    size = _page_size(max_results)
    below = None if next_token is None else rules.check_version(next_token)
    machine = registry.require(registry.read(get_store(), name))
    numbers = sorted((n for n in machine.versions if below is None or n < below), reverse=True)
    page = numbers[:size]
    return StateMachineVersionList(
        state_machine_versions=[_version(name, n, machine.versions[n]) for n in page],
        next_token=str(page[-1]) if len(numbers) > size else None,
    )


@store_call(mutates=True)
def delete_state_machine_version(name_or_arn: str, version: int | None = None) -> bool:
    """Delete a version (DeleteStateMachineVersion): a version ARN, or the machine and
    ``version``. True if it existed (deleting none is no error, as AWS).

    Raises:
        RegistryConflict: an alias routes to it (ConflictException).
    """
    target = _version_target(name_or_arn, version)
    assert target.version is not None
    number = target.version
    store = get_store()
    return registry.change(
        store, target.name, lambda m, w, k: registry.delete_version(m, w, k, number)
    )


# ------------------------------------------------------------------ aliases


@store_call(mutates=True)
def create_state_machine_alias(
    name_or_arn: str,
    alias: str,
    routing: Any,
    *,
    description: str | None = None,
) -> StateMachineAlias:
    """Create an alias routing starts to one version, or splitting them between two by
    weight (CreateStateMachineAlias): ``routing=[(3, 90), (4, 10)]`` sends 10% of the
    starts through the alias to version 4. A version is a number or a version ARN;
    weights are integers summing to 100. Creating it again as it is returns it.

    Raises:
        InvalidName / InvalidInputError: a bad alias name or routing.
        StateMachineNotFound / ResourceNotFound: no such machine or version.
        RegistryConflict: the alias exists with another routing (ConflictException).
    """
    name = _machine_name(name_or_arn)
    alias = rules.check_alias_name(alias)
    checked: Routing = rules.check_routing(name, routing)
    description = rules.check_description(description)
    store = get_store()
    now = time.time()
    entry = registry.change(
        store,
        name,
        lambda m, w, k: registry.create_alias(
            m, w, k, alias=alias, routing=checked, description=description, now=now
        ),
    )
    return _alias(name, alias, entry)


@store_call(mutates=True)
def update_state_machine_alias(
    name_or_arn: str,
    alias: str | None = None,
    *,
    routing: Any = None,
    description: str | None = None,
) -> StateMachineAlias:
    """Change an alias's routing (a canary's next step) and/or description
    (UpdateStateMachineAlias): an alias ARN, or the machine and the alias's name."""
    target = _alias_target(name_or_arn, alias)
    assert target.alias is not None
    name, alias_name = target.name, target.alias
    checked = None if routing is None else rules.check_routing(name, routing)
    description = rules.check_description(description)
    store = get_store()
    now = time.time()
    entry = registry.change(
        store,
        name,
        lambda m, w, k: registry.update_alias(
            m, w, k, alias=alias_name, routing=checked, description=description, now=now
        ),
    )
    return _alias(name, alias_name, entry)


@store_call(mutates=False)
def describe_state_machine_alias(name_or_arn: str, alias: str | None = None) -> StateMachineAlias:
    """An alias (DescribeStateMachineAlias).

    Raises:
        StateMachineNotFound / ResourceNotFound: no such machine or alias.
    """
    target = _alias_target(name_or_arn, alias)
    assert target.alias is not None
    machine = registry.require(registry.read(get_store(), target.name))
    entry = machine.aliases.get(target.alias)
    if entry is None:
        raise ResourceNotFound(f"state machine {target.name!r} has no alias {target.alias!r}")
    return _alias(target.name, target.alias, entry)


@store_call(mutates=False)
def list_state_machine_aliases(
    name_or_arn: str, *, max_results: int | None = None, next_token: str | None = None
) -> StateMachineAliasList:
    """A machine's aliases by name (ListStateMachineAliases)."""
    name = _machine_name(name_or_arn)
    size = _page_size(max_results)
    machine = registry.require(registry.read(get_store(), name))
    names = sorted(a for a in machine.aliases if next_token is None or a > next_token)
    page = names[:size]
    return StateMachineAliasList(
        state_machine_aliases=[_alias(name, a, machine.aliases[a]) for a in page],
        next_token=page[-1] if len(names) > size else None,
    )


@store_call(mutates=True)
def delete_state_machine_alias(name_or_arn: str, alias: str | None = None) -> None:
    """Delete an alias (DeleteStateMachineAlias); its versions stay.

    Raises:
        StateMachineNotFound / ResourceNotFound: no such machine or alias.
    """
    target = _alias_target(name_or_arn, alias)
    assert target.alias is not None
    alias_name = target.alias
    store = get_store()
    registry.change(store, target.name, lambda m, w, k: registry.delete_alias(m, w, k, alias_name))


# ------------------------------------------------------------------ tags and role


@store_call(mutates=True)
def tag_state_machine(name_or_arn: str, tags: dict[str, str]) -> bool:
    """Set tags on a state machine (TagResource): keys 1-128 characters, values at most
    256. False, and nothing set, if it would then hold more than 50 (TooManyTags).

    Raises:
        StateMachineNotFound: it is not registered.
    """
    name = _machine_name(name_or_arn)
    checked = rules.check_tags(tags)
    return registry.change(
        get_store(),
        name,
        lambda m, w, k: registry.tag(m, w, k, tags=checked, limit=rules.MAX_TAGS),
    )


@store_call(mutates=True)
def untag_state_machine(name_or_arn: str, tag_keys: list[str]) -> None:
    """Remove tags from a state machine (UntagResource); absent keys are no error."""
    name = _machine_name(name_or_arn)
    keys = [str(key) for key in tag_keys]
    registry.change(get_store(), name, lambda m, w, k: registry.untag(m, w, k, tag_keys=keys))


@store_call(mutates=False)
def state_machine_tags(name_or_arn: str) -> dict[str, str]:
    """A state machine's tags (ListTagsForResource)."""
    machine = registry.require(registry.read(get_store(), _machine_name(name_or_arn)))
    return registry.tags_of(machine.record)


@store_call(mutates=True)
def configure_state_machine(
    name_or_arn: str,
    *,
    role_arn: str | None = None,
    logging: dict[str, Any] | None = None,
    tracing: dict[str, Any] | None = None,
) -> None:
    """Keep the IAM role ARN and the logging and tracing configurations a state machine is
    given (CreateStateMachine's and UpdateStateMachine's ``roleArn``,
    ``loggingConfiguration``, ``tracingConfiguration``), to answer them back: the
    orchestrator assumes no role and logs and traces as it is configured to."""
    settings: dict[str, str] = {}
    if role_arn is not None:
        if not isinstance(role_arn, str) or not role_arn or len(role_arn) > 256:
            raise InvalidInputError("role ARN: 1-256 characters")
        settings[registry.ROLE_FIELD] = role_arn
    for field, value in ((registry.LOGGING_FIELD, logging), (registry.TRACING_FIELD, tracing)):
        if value is not None:
            if not isinstance(value, dict) or len(json.dumps(value)) > 4096:
                raise InvalidInputError(f"{field} configuration: an object")
            settings[field] = json.dumps(value, sort_keys=True)
    name = _machine_name(name_or_arn)
    if settings:
        registry.change(
            get_store(), name, lambda m, w, k: registry.configure(m, w, k, settings=settings)
        )


# ------------------------------------------------------------------ deploying a folder


def deploy_workflows(folder: str | Path) -> list[tuple[str, str]]:
    """Register every workflow file of ``folder`` (``*.asl.json``, ``*.asl.yaml``,
    ``*.json``, ``*.yaml``...) as the state machine of its name, idempotently: a new one
    is created, a changed one gets a new revision, an unchanged one is left alone.
    Returns ``(name, "created" | "updated" | "unchanged")`` by name.

    Every file is validated first; if any is invalid nothing is registered.

    Raises:
        InvalidInputError: ``folder`` is not a folder, or two files name one machine.
        DefinitionError: a definition is invalid (its issues' paths name the file).
    """
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"{folder}: not a folder")
    found: dict[str, tuple[str, str]] = {}
    issues: list[DefinitionIssue] = []
    for path in sorted(root.iterdir()):
        if not path.is_file() or not path.name.endswith(WORKFLOW_SUFFIXES):
            continue
        name = _stem(path)
        if name in found:
            raise InvalidInputError(f"{path}: a second file for state machine {name!r}")
        try:
            rules.check_name(name)
            found[name] = _definition(path)
        except DefinitionError as exc:
            issues += [DefinitionIssue(f"{path.name}: {i.path}", i.message) for i in exc.issues]
        except InvalidInputError as exc:
            issues.append(DefinitionIssue(path.name, str(exc)))
    if issues:
        raise DefinitionError(issues)
    return [
        (name, _register(name, text, revision)) for name, (text, revision) in sorted(found.items())
    ]


@store_call(mutates=True)
def _register(name: str, text: str, revision: str) -> str:
    return registry.register_revision(get_store(), name, text, revision)


# ------------------------------------------------------------------ targets


@store_call(mutates=False)
def resolve_target(target: str) -> str:
    """The ARN of what ``target`` (a name or an ARN) names, checked to exist now: a state
    machine (registered, or a workflow file of that name), one of its versions or one of
    its aliases. What something that starts it later (a schedule) keeps and passes to
    :func:`orchestrator.start_workflow`.

    Raises:
        InvalidName / InvalidArn: ``target`` is neither a valid name nor such an ARN.
        StateMachineNotFound: no such state machine.
        ResourceNotFound: no such version or alias.
    """
    if not isinstance(target, str):
        raise InvalidInputError(f"target {target!r}: a name or an ARN")
    parsed = rules.parse_target(target)
    machine = registry.read(get_store(), parsed.name)
    if parsed.version is None and parsed.alias is None and not machine.exists:
        try:
            if _workflow_file(parsed.name) is None:
                raise StateMachineNotFound(parsed.name)
        except DefinitionError:
            raise StateMachineNotFound(parsed.name) from None
    else:
        registry.require(machine)
        if parsed.version is not None and parsed.version not in machine.versions:
            raise ResourceNotFound(f"state machine {parsed.name!r} has no version {parsed.version}")
        if parsed.alias is not None and parsed.alias not in machine.aliases:
            raise ResourceNotFound(f"state machine {parsed.name!r} has no alias {parsed.alias!r}")
    return rules.qualified_arn(state_machine_arn(parsed.name), parsed)
