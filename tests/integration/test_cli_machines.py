"""`orchestrator machines ...` and `orchestrator deploy` against the session's Redis (in
process, with the session's settings in force)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import cli, describe_state_machine, start_workflow
from orchestrator.language.arns import state_machine_arn

pytestmark = pytest.mark.usefixtures("orchestrator")


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "250"})


def passing(result: str) -> str:
    return json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": True}}}
    )


def test_the_machines_commands() -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    arn = state_machine_arn(name)
    created = invoke("machines", "create", name, passing("v1"), "--publish", "--description", "d")
    assert created.exit_code == 0, created.output
    assert f"published {arn}:1" in created.output
    updated = invoke("machines", "update", name, passing("v2"))
    assert updated.exit_code == 0 and "revision" in updated.output
    assert "unchanged" in invoke("machines", "update", name, passing("v2")).output
    published = invoke("machines", "publish", arn, "--description", "second")
    assert published.exit_code == 0 and f"{arn}:2: version 2" in published.output

    alias = invoke("machines", "alias-create", name, "prod", "-r", "1=90", "-r", "2=10")
    assert alias.exit_code == 0, alias.output
    assert "version 1 (90%), version 2 (10%)" in alias.output
    refused = invoke("machines", "delete-version", name, "2")
    assert refused.exit_code == 1 and "prod" in refused.output
    assert invoke("machines", "alias-update", name, "prod", "-r", "2").exit_code == 0

    listed = invoke("machines", "list", "--json")
    assert listed.exit_code == 0
    assert name in [m["name"] for m in json.loads(listed.stdout)]
    described = invoke("machines", "describe", name)
    assert described.exit_code == 0
    for text in (arn, "Version", "2: revision", "second", "prod -> version 2 (100%)"):
        assert text in described.output
    as_json = json.loads(invoke("machines", "describe", name, "--json").stdout)
    assert [v["version"] for v in as_json["versions"]] == [2, 1]
    assert as_json["aliases"][0]["routing_configuration"][0]["weight"] == 100
    one = json.loads(invoke("machines", "describe", f"{arn}:1", "--json").stdout)
    assert json.loads(one["definition"])["States"]["P"]["Result"] == "v1"
    versions = invoke("machines", "versions", name)
    assert versions.exit_code == 0 and "second" in versions.output
    aliases = json.loads(invoke("machines", "aliases", name, "--json").stdout)
    assert [a["name"] for a in aliases] == ["prod"]

    # The execution view of the CLI names the version and alias a start ran.
    handle = start_workflow(f"{arn}:prod")
    handle.result(10)
    shown = invoke("describe", handle.execution_id)
    assert f"{arn}:2" in shown.output and f"{arn}:prod" in shown.output

    assert invoke("machines", "alias-delete", name, "prod").exit_code == 0
    assert "deleted" in invoke("machines", "delete-version", name, "2").output
    assert "deleted" in invoke("machines", "delete", name).output
    missing = invoke("machines", "describe", name)
    assert missing.exit_code == 1 and "no state machine" in missing.output


def test_machines_usage_errors() -> None:
    name = f"cli-{uuid.uuid4().hex[:10]}"
    bad_name = invoke("machines", "create", "has space", passing("x"))
    assert bad_name.exit_code == 2 and "1-80 characters" in bad_name.output
    bad_def = invoke("machines", "create", name, '{"StartAt": "X", "States": {}}')
    assert bad_def.exit_code == 2
    invoke("machines", "create", name, passing("x"), "--publish")
    bad_route = invoke("machines", "alias-create", name, "prod", "-r", "one=100")
    assert bad_route.exit_code == 2 and "VERSION=WEIGHT" in bad_route.output
    bad_sum = invoke("machines", "alias-create", name, "prod", "-r", "1=60")
    assert bad_sum.exit_code == 2 and "sum to 100" in bad_sum.output
    invoke("machines", "delete", name)


def test_deploy_says_what_changed(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b = f"dep-{tag}-a", f"dep-{tag}-b"
    (tmp_path / f"{a}.asl.json").write_text(passing("a1"))
    (tmp_path / f"{b}.asl.yaml").write_text(
        "StartAt: P\nStates:\n  P:\n    Type: Pass\n    Result: b1\n    End: true\n"
    )
    first = invoke("deploy", str(tmp_path))
    assert first.exit_code == 0, first.output
    assert f"{a}: created" in first.output and f"{b}: created" in first.output
    assert "2 workflows, 2 changed" in first.output
    (tmp_path / f"{a}.asl.json").write_text(passing("a2"))
    again = json.loads(invoke("deploy", str(tmp_path), "--json").stdout)
    assert again == [{"name": a, "result": "updated"}, {"name": b, "result": "unchanged"}]
    assert json.loads(describe_state_machine(a).definition)["States"]["P"]["Result"] == "a2"
    (tmp_path / f"dep-{tag}-c.json").write_text("{not json")
    broken = invoke("deploy", str(tmp_path))
    assert broken.exit_code == 2 and f"dep-{tag}-c.json" in broken.output
    missing = invoke("deploy", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2
