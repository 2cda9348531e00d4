"""The state-machine registry against the session's Redis: state machines, revisions,
versions, aliases with weighted routing, and starts through each of them."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest

from orchestrator import (
    DefinitionError,
    ExecutionStatus,
    InvalidArn,
    InvalidInputError,
    InvalidName,
    Orchestrator,
    RegistryConflict,
    ResourceNotFound,
    StateMachineAlreadyExists,
    StateMachineNotFound,
    configure_state_machine,
    create_state_machine,
    create_state_machine_alias,
    delete_state_machine,
    delete_state_machine_alias,
    delete_state_machine_version,
    deploy_workflows,
    describe_execution,
    describe_state_machine,
    describe_state_machine_alias,
    get_execution_definition,
    list_state_machine_aliases,
    list_state_machine_versions,
    list_state_machines,
    publish_state_machine_version,
    resolve_target,
    start_workflow,
    state_machine_tags,
    tag_state_machine,
    update_state_machine,
    update_state_machine_alias,
)
from orchestrator.language.arns import state_machine_arn
from orchestrator.testing import process_settings
from tests.helpers import machine

pytestmark = pytest.mark.usefixtures("orchestrator")


def passing(result: str) -> dict:
    """A one-state Pass workflow whose output is ``result`` (cheap: it ends in the start's
    own commit)."""
    return machine({"P": {"Type": "Pass", "Result": result, "End": True}})


def waiting(result: str) -> dict:
    """A Pass workflow that waits a second first (still running when the test updates it)."""
    return machine(
        {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {"Type": "Pass", "Result": result, "End": True},
        }
    )


@pytest.fixture
def name() -> str:
    return f"sm-{uuid.uuid4().hex[:12]}"


def output(target: str, timeout: float = 10.0) -> tuple[object, str]:
    handle = start_workflow(target)
    result = handle.result(timeout)
    assert result.status is ExecutionStatus.SUCCEEDED, result
    return result.output, handle.execution_id


# -- state machines ----------------------------------------------------------------------


def test_create_describe_update_delete(name: str) -> None:
    created = create_state_machine(name, passing("v1"), description="first")
    assert created.name == name
    assert created.state_machine_arn == state_machine_arn(name)
    assert created.type == "STANDARD" and created.status == "ACTIVE"
    assert json.loads(created.definition)["States"]["P"]["Result"] == "v1"
    # Idempotent as asked; refused with another definition.
    assert create_state_machine(name, passing("v1"), description="first") == created
    with pytest.raises(StateMachineAlreadyExists):
        create_state_machine(name, passing("v2"), description="first")

    described = describe_state_machine(state_machine_arn(name))
    assert described.revision_id == created.revision_id
    assert described.description == "first"

    updated = update_state_machine(name, passing("v2"))
    assert updated.revision_id != created.revision_id
    assert update_state_machine(name, passing("v2")).revision_id == updated.revision_id
    assert (
        update_state_machine(name, passing("v1")).revision_id == created.revision_id
    )  # same content

    assert delete_state_machine(name) is True
    assert delete_state_machine(name) is False  # no error, as AWS
    with pytest.raises(StateMachineNotFound):
        describe_state_machine(name)
    with pytest.raises(StateMachineNotFound):
        update_state_machine(name, passing("v3"))


def _listed(name: str) -> bool:
    page = list_state_machines(max_results=1000)
    names = [m.name for m in page.state_machines]
    while page.next_token is not None:
        page = list_state_machines(max_results=1000, next_token=page.next_token)
        names += [m.name for m in page.state_machines]
    return name in names


def test_the_index_of_names_follows_each_change_and_is_mended(name: str) -> None:
    # A change writes the machine's own keys (one slot), then the index of names: a
    # process that died in between leaves the index behind, which is mended or skipped.
    from orchestrator.engine.store import get_store

    store = get_store()
    create_state_machine(name, passing("v1"))
    assert _listed(name)
    store.index_machine(name, False)  # as if the creator died before indexing it
    assert not _listed(name)
    describe_state_machine(name)  # found by name all the same
    create_state_machine(name, passing("v1"))  # deploy's idempotent create mends it
    assert _listed(name)
    delete_state_machine(name)
    assert not _listed(name)
    store.index_machine(name, True)  # as if the deleter died before unindexing it
    assert not _listed(name)  # listed no more: its record is gone


def test_validation_errors(name: str) -> None:
    for bad in ("", "a" * 81, "has space", "semi;colon", "br{ace}", "sl/ash"):
        with pytest.raises(InvalidName):
            create_state_machine(bad, passing("x"))
    with pytest.raises(InvalidInputError, match="STANDARD or EXPRESS"):
        create_state_machine(name, passing("x"), type="BATCH")
    with pytest.raises(DefinitionError) as caught:
        create_state_machine(name, {"StartAt": "Nowhere", "States": {"A": {"Type": "Pass"}}})
    assert len(caught.value.issues) >= 2  # every issue, not the first
    with pytest.raises(InvalidArn):
        describe_state_machine("arn:aws:states:us-east-1:123456789012:activity:x")
    with pytest.raises(StateMachineNotFound):
        describe_state_machine(name)  # nothing was registered


def test_list_pages_through_every_machine() -> None:
    tag = uuid.uuid4().hex[:8]
    names = [f"list-{tag}-{i}" for i in range(5)]
    for n in names:
        create_state_machine(n, passing(n), type="EXPRESS" if n.endswith("3") else "STANDARD")
    seen: list[str] = []
    types: dict[str, str] = {}
    token = None
    pages = 0
    while True:
        page = list_state_machines(max_results=2, next_token=token)
        pages += 1
        assert len(page.state_machines) <= 2
        for item in page.state_machines:
            seen.append(item.name)
            types[item.name] = item.type
        token = page.next_token
        if token is None:
            break
    assert [n for n in seen if n.startswith(f"list-{tag}-")] == names
    assert seen == sorted(seen)
    assert types[names[3]] == "EXPRESS"
    with pytest.raises(InvalidInputError):
        list_state_machines(max_results=0)
    for n in names:
        delete_state_machine(n)


# -- versions ----------------------------------------------------------------------------


def test_versions_are_numbered_immutable_and_never_reused(name: str) -> None:
    create_state_machine(name, passing("v1"))
    first = publish_state_machine_version(name, "one")
    assert first.version == 1
    assert first.state_machine_version_arn == f"{state_machine_arn(name)}:1"
    assert publish_state_machine_version(name).version == 1  # same revision: the same version
    with pytest.raises(RegistryConflict):
        publish_state_machine_version(name, revision_id="not-the-current-one")

    second = update_state_machine(name, passing("v2"), publish=True, version_description="two")
    assert second.state_machine_version_arn == f"{state_machine_arn(name)}:2"
    versions = list_state_machine_versions(name)
    assert [v.version for v in versions.state_machine_versions] == [2, 1]
    assert versions.state_machine_versions[1].description == "one"

    # A version keeps its definition whatever the machine becomes.
    update_state_machine(name, passing("v3"))
    one = describe_state_machine(f"{state_machine_arn(name)}:1")
    assert json.loads(one.definition)["States"]["P"]["Result"] == "v1"
    assert one.version == 1 and one.state_machine_arn.endswith(":1")

    assert delete_state_machine_version(f"{state_machine_arn(name)}:2") is True
    assert delete_state_machine_version(name, 2) is False
    assert publish_state_machine_version(name).version == 3  # 2 is not reused
    page = list_state_machine_versions(name, max_results=1)
    assert [v.version for v in page.state_machine_versions] == [3]
    rest = list_state_machine_versions(name, max_results=1, next_token=page.next_token)
    assert [v.version for v in rest.state_machine_versions] == [1]
    assert rest.next_token is None
    with pytest.raises(ResourceNotFound):
        describe_state_machine(name, version=2)


# -- aliases -----------------------------------------------------------------------------


def test_alias_lifecycle_and_conflicts(name: str) -> None:
    create_state_machine(name, passing("v1"), publish=True)
    update_state_machine(name, passing("v2"), publish=True)
    arn = state_machine_arn(name)
    alias = create_state_machine_alias(name, "prod", [(1, 100)], description="live")
    assert alias.state_machine_alias_arn == f"{arn}:prod"
    assert [(r.version, r.weight) for r in alias.routing_configuration] == [(1, 100)]
    assert create_state_machine_alias(name, "prod", [(1, 100)], description="live") == alias
    with pytest.raises(RegistryConflict):
        create_state_machine_alias(name, "prod", [(2, 100)])
    with pytest.raises(ResourceNotFound):
        create_state_machine_alias(name, "beta", [(7, 100)])
    with pytest.raises(InvalidInputError, match="sum to 100"):
        create_state_machine_alias(name, "beta", [(1, 50), (2, 40)])
    with pytest.raises(InvalidInputError, match="1 or 2"):
        create_state_machine_alias(name, "beta", [(1, 50), (2, 25), (3, 25)])
    with pytest.raises(InvalidName):
        create_state_machine_alias(name, "42", [(1, 100)])

    # A version an alias routes to cannot be deleted (ConflictException).
    with pytest.raises(RegistryConflict, match="prod"):
        delete_state_machine_version(name, 1)
    canary = update_state_machine_alias(f"{arn}:prod", routing=[(1, 90), (f"{arn}:2", 10)])
    assert [(r.version, r.weight) for r in canary.routing_configuration] == [(1, 90), (2, 10)]
    assert describe_state_machine_alias(name, "prod") == canary
    with pytest.raises(RegistryConflict):
        delete_state_machine_version(name, 2)

    create_state_machine_alias(
        name, "beta", [{"stateMachineVersionArn": f"{arn}:2", "weight": 100}]
    )
    listed = list_state_machine_aliases(name)
    assert [a.name for a in listed.state_machine_aliases] == ["beta", "prod"]
    first = list_state_machine_aliases(name, max_results=1)
    assert first.next_token == "beta"
    assert [
        a.name for a in list_state_machine_aliases(name, next_token="beta").state_machine_aliases
    ] == ["prod"]

    delete_state_machine_alias(f"{arn}:prod")
    with pytest.raises(ResourceNotFound):
        describe_state_machine_alias(name, "prod")
    assert delete_state_machine_version(name, 1) is True
    delete_state_machine(name)
    with pytest.raises(StateMachineNotFound):
        describe_state_machine_alias(name, "beta")


# -- starts ------------------------------------------------------------------------------


def test_start_by_name_arn_version_and_alias(name: str) -> None:
    arn = state_machine_arn(name)
    create_state_machine(name, passing("v1"), publish=True)
    update_state_machine(name, passing("v2"), publish=True)
    create_state_machine_alias(name, "prod", [(1, 100)])

    out, eid = output(name)
    assert out == "v2"
    desc = describe_execution(eid)
    assert desc.workflow == name
    assert desc.state_machine_arn == arn
    assert desc.revision_id == describe_state_machine(name).revision_id
    assert desc.state_machine_version_arn is None and desc.state_machine_alias_arn is None

    assert output(arn)[0] == "v2"
    out, eid = output(f"{arn}:1")
    assert out == "v1"
    assert describe_execution(eid).state_machine_version_arn == f"{arn}:1"
    out, eid = output(f"{arn}:prod")
    assert out == "v1"
    desc = describe_execution(eid)
    assert desc.state_machine_version_arn == f"{arn}:1"
    assert desc.state_machine_alias_arn == f"{arn}:prod"
    # Any region and account name the same machine (an ARN copied from AWS).
    assert output(f"arn:aws:states:eu-west-3:000000000000:stateMachine:{name}:2")[0] == "v2"

    with pytest.raises(ResourceNotFound):
        start_workflow(f"{arn}:9")
    with pytest.raises(ResourceNotFound):
        start_workflow(f"{arn}:staging")
    with pytest.raises(StateMachineNotFound):
        start_workflow(f"{state_machine_arn(name + '-none')}:1")
    with pytest.raises(DefinitionError, match="no workflow or state machine named"):
        start_workflow(name + "-none")  # neither a file nor registered
    with pytest.raises(DefinitionError, match="no workflow or state machine named"):
        start_workflow("+")  # a name (AWS allows '+'), not definition text
    with pytest.raises(StateMachineNotFound):
        start_workflow(state_machine_arn(name + "-none"))


def test_executions_in_flight_keep_their_revision(name: str) -> None:
    create_state_machine(name, waiting("old"))
    handle = start_workflow(name)
    update_state_machine(name, waiting("new"))
    assert handle.result(10).output == "old"
    assert output(name)[0] == "new"


def test_alias_weights_hold_over_1000_starts(name: str) -> None:
    arn = state_machine_arn(name)
    create_state_machine(name, passing("v1"), publish=True)
    update_state_machine(name, passing("v2"), publish=True)
    create_state_machine_alias(name, "canary", [(1, 80), (2, 20)])
    handles = [start_workflow(f"{arn}:canary") for _ in range(1000)]
    counts = {f"{arn}:1": 0, f"{arn}:2": 0}
    for handle in handles:
        desc = handle.describe()
        assert desc.status is ExecutionStatus.SUCCEEDED
        version = desc.state_machine_version_arn or ""
        assert desc.output == ("v1" if version.endswith(":1") else "v2")
        counts[version] += 1
    # 20% of 1,000: standard deviation 12.6, so +-40 is over 3 of them.
    assert 160 <= counts[f"{arn}:2"] <= 240, counts


# -- workflow files ----------------------------------------------------------------------


@pytest.fixture
def workflows(orchestrator, tmp_path: Path):
    settings = orchestrator.settings.model_copy(update={"workflows_dir": str(tmp_path)})
    with process_settings(settings):
        yield tmp_path


def test_a_workflow_file_is_registered_on_first_use(workflows: Path, name: str) -> None:
    path = workflows / f"{name}.asl.json"
    path.write_text(json.dumps(passing("file-1")))
    with pytest.raises(StateMachineNotFound):
        describe_state_machine(name)
    assert output(name)[0] == "file-1"
    first = describe_state_machine(name)
    assert json.loads(first.definition)["States"]["P"]["Result"] == "file-1"
    assert output(state_machine_arn(name))[0] == "file-1"
    assert describe_state_machine(name).revision_id == first.revision_id  # idempotent

    path.write_text(json.dumps(passing("file-2")))
    out, eid = output(name)
    assert out == "file-2"
    assert describe_execution(eid).revision_id == describe_state_machine(name).revision_id
    assert describe_state_machine(name).revision_id != first.revision_id
    assert resolve_target(name) == state_machine_arn(name)


def test_deploy_registers_a_folder_idempotently(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = f"dep-{tag}-a", f"dep-{tag}-b"
    (tmp_path / f"{a}.asl.json").write_text(json.dumps(passing("a1")))
    (tmp_path / f"{b}.json").write_text(json.dumps(passing("b1")))
    (tmp_path / "notes.txt").write_text("not a workflow")
    assert deploy_workflows(tmp_path) == [(a, "created"), (b, "created")]
    assert deploy_workflows(tmp_path) == [(a, "unchanged"), (b, "unchanged")]
    (tmp_path / f"{b}.json").write_text(json.dumps(passing("b2")))
    assert deploy_workflows(tmp_path) == [(a, "unchanged"), (b, "updated")]
    assert output(b)[0] == "b2"

    # One invalid file: nothing is registered, and the error names the file.
    (tmp_path / f"{a}.asl.json").write_text(json.dumps(passing("a2")))
    (tmp_path / f"dep-{tag}-c.json").write_text('{"StartAt": "Nowhere", "States": {}}')
    with pytest.raises(DefinitionError, match=f"dep-{tag}-c.json"):
        deploy_workflows(tmp_path)
    assert json.loads(describe_state_machine(a).definition)["States"]["P"]["Result"] == "a1"
    with pytest.raises(InvalidInputError):
        deploy_workflows(tmp_path / "missing")


def test_resolve_target(name: str) -> None:
    arn = state_machine_arn(name)
    with pytest.raises(StateMachineNotFound):
        resolve_target(name)
    create_state_machine(name, passing("v1"), publish=True)
    create_state_machine_alias(name, "live", [(1, 100)])
    assert resolve_target(name) == arn
    assert resolve_target(f"{arn}:1") == f"{arn}:1"
    assert resolve_target(f"{arn}:live") == f"{arn}:live"
    with pytest.raises(ResourceNotFound):
        resolve_target(f"{arn}:2")
    with pytest.raises(ResourceNotFound):
        resolve_target(f"{arn}:dead")
    with pytest.raises(InvalidArn):
        resolve_target("arn:aws:states:us-east-1:123456789012:execution:x:y")


def test_an_orchestrator_client_has_its_own_registry(orchestrator, name: str) -> None:
    session = orchestrator.settings
    prefix = f"{session.key_prefix}-reg-{uuid.uuid4().hex[:8]}"
    client = Orchestrator(
        session.redis_url, session.effective_broker_url, key_prefix=prefix, queue=session.queue
    )
    try:
        client.create_state_machine(name, passing("mine"), publish=True)
        client.create_state_machine_alias(name, "live", [(1, 100)])
        assert client.describe_state_machine_alias(name, "live").name == "live"
        assert [
            v.version for v in client.list_state_machine_versions(name).state_machine_versions
        ] == [1]
        with pytest.raises(StateMachineNotFound):
            describe_state_machine(name)  # not in the session's prefix
        handle = client.start_workflow(f"{state_machine_arn(name)}:live")
        assert handle.result(10).output == "mine"
        assert client.resolve_target(name) == state_machine_arn(name)
        assert client.tag_state_machine(name, {"team": "a"})
        client.configure_state_machine(name, role_arn="arn:aws:iam::1:role/r")
        assert client.state_machine_tags(name) == {"team": "a"}
        assert client.describe_state_machine(name).role_arn == "arn:aws:iam::1:role/r"
        client.untag_state_machine(name, ["team", "absent"])
        assert client.state_machine_tags(name) == {}
    finally:
        client.store.delete_prefix(prefix)
        client.close()


def test_tags_and_settings_live_and_die_with_the_machine(name: str) -> None:
    create_state_machine(name, passing("t"))
    assert tag_state_machine(name, {f"k{i}": str(i) for i in range(50)})
    assert not tag_state_machine(name, {"one-too-many": "x"})  # nothing set
    assert tag_state_machine(name, {"k0": "changed"})  # a key it holds: no more tags
    tags = state_machine_tags(state_machine_arn(name))
    assert len(tags) == 50 and tags["k0"] == "changed" and "one-too-many" not in tags
    with pytest.raises(InvalidInputError):
        tag_state_machine(name, {"": "empty key"})
    configure_state_machine(name, logging={"level": "ALL"}, tracing={"enabled": True})
    described = describe_state_machine(name)
    assert described.logging_configuration == {"level": "ALL"}
    assert described.tracing_configuration == {"enabled": True}
    update_state_machine(name, passing("t2"), publish=True)  # a revision keeps them
    assert len(state_machine_tags(name)) == 50
    assert describe_state_machine(name, 1).tracing_configuration == {"enabled": True}
    delete_state_machine(name)
    with pytest.raises(StateMachineNotFound):
        state_machine_tags(name)
    create_state_machine(name, passing("t"))  # created again: nothing of the one before
    assert state_machine_tags(name) == {}
    assert describe_state_machine(name).role_arn is None


def race(name: str, version: int, alias: str) -> dict[str, bool]:
    """Delete ``version`` and create ``alias`` routing to it at the same moment."""
    barrier = threading.Barrier(2)
    results: dict[str, bool] = {}

    def delete() -> None:
        barrier.wait()
        try:
            results["deleted"] = delete_state_machine_version(name, version)
        except RegistryConflict:
            results["deleted"] = False

    def create() -> None:
        barrier.wait()
        try:
            create_state_machine_alias(name, alias, [(version, 100)])
            results["aliased"] = True
        except ResourceNotFound:
            results["aliased"] = False

    threads = [threading.Thread(target=delete), threading.Thread(target=create)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_racing_changes_never_both_apply(name: str) -> None:
    """Deleting a version while an alias to it is created: exactly one of them applies,
    every time (each change is computed from one read and applied only if the machine
    did not change since)."""
    create_state_machine(name, passing("v1"), publish=True)
    for round_ in range(20):
        update_state_machine(name, passing(f"r{round_}"))
        version = publish_state_machine_version(name).version
        results = race(name, version, f"a{round_}")
        assert results["deleted"] != results["aliased"], results
        # What the registry holds agrees with who won.
        versions = {v.version for v in list_state_machine_versions(name).state_machine_versions}
        assert (version in versions) == results["aliased"]


# -- EXPRESS state machines ----------------------------------------------------------------


def test_an_express_machine_runs_with_express_semantics(name: str) -> None:
    definition = machine(
        {
            "T": {"Type": "Task", "Resource": "echo", "Next": "P"},
            "P": {"Type": "Pass", "Result": "done", "End": True},
        }
    )
    create_state_machine(name, definition, type="EXPRESS", publish=True)
    for target in (name, f"{state_machine_arn(name)}:1"):
        handle = start_workflow(target, {"x": 1})
        result = handle.result(10)
        assert result.status is ExecutionStatus.SUCCEEDED and result.output == "done"
        assert describe_execution(handle.execution_id).execution_type == "EXPRESS"
        # Only the execution's own start and end: no state's events, no TaskStarted.
        assert [e.type for e in handle.history()] == ["ExecutionStarted", "ExecutionSucceeded"]
        # It runs under Express's 5-minute limit; the engine's marker is not shown.
        ran = get_execution_definition(handle.execution_id)
        assert ran["TimeoutSeconds"] == 300 and "ExecutionType" not in ran


def test_an_express_machine_keeps_a_shorter_timeout_of_its_own(name: str) -> None:
    definition = machine({"W": {"Type": "Wait", "Seconds": 30, "End": True}}, TimeoutSeconds=1)
    create_state_machine(name, definition, type="EXPRESS")
    handle = start_workflow(name)
    result = handle.result(15)
    assert result.status is ExecutionStatus.TIMED_OUT
    assert get_execution_definition(handle.execution_id)["TimeoutSeconds"] == 1
    # A STANDARD machine's executions are not touched.
    create_state_machine(name + "-std", passing("s"))
    out, eid = output(name + "-std")
    assert describe_execution(eid).execution_type == "STANDARD"
    assert "TimeoutSeconds" not in get_execution_definition(eid)
