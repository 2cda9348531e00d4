"""The Step Functions API: AWS's JSON 1.0 protocol on ``POST /``, so that
``boto3.client("stepfunctions", endpoint_url=...)``, ``aws stepfunctions --endpoint-url``
and Terraform's AWS provider (a custom ``stepfunctions`` endpoint) work unchanged.

A request names its action in ``X-Amz-Target: AWSStepFunctions.<Action>`` and carries
its fields as a JSON object; the answer is a JSON object, or an error
``{"__type": code, "message": ...}`` with Step Functions' code (HTTP 400; 503 when Redis
cannot be reached, which SDKs retry). Each action below is thin: it checks its fields,
calls the client functions (:mod:`orchestrator.client`) and shapes their results with
:mod:`orchestrator.ui.sfn_shapes`, after botocore's service model.

The UI token does not guard this route: AWS clients sign requests with SigV4 instead,
which :func:`authenticate` checks (every request passes through it, first).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from orchestrator.client import api, control, machines, mapruns
from orchestrator.client.inputs import EXECUTION_NAME
from orchestrator.client.models import (
    ExecutionDescription,
    ExecutionStatus,
    MapRunDescription,
    StateMachineDescription,
)
from orchestrator.config import get_settings
from orchestrator.engine import activities
from orchestrator.engine.cursors import ListingCursor
from orchestrator.engine.store import get_store
from orchestrator.errors import (
    ActivityNotFound,
    DefinitionError,
    ExecutionNotFound,
    InvalidArn,
    InvalidInputError,
    StateMachineNotFound,
    TaskTokenError,
)
from orchestrator.language import registry as rules
from orchestrator.language.arns import execution_arn, execution_id_from, state_machine_arn
from orchestrator.language.definition.model import TaskState
from orchestrator.ui import sigv4
from orchestrator.ui.context import context_of
from orchestrator.ui.routing import RouteGroup
from orchestrator.ui.sfn_shapes import (
    HistoryShaper,
    SfnError,
    decode_token,
    encode_token,
    epoch,
    error_for,
    history_page,
    json_text,
    page_size,
    token_error,
    validation,
)
from orchestrator.ui.sfn_teststate import TaskFailure, evaluate_state, state_under_test

logger = logging.getLogger(__name__)

#: The header naming the action, and its prefix.
TARGET_HEADER = "x-amz-target"
TARGET_PREFIX = "AWSStepFunctions."
CONTENT_TYPE = "application/x-amz-json-1.0"
#: The longest StartSyncExecution waits for its execution: an EXPRESS execution times out
#: itself after 5 minutes (engine/machines.py), so this only bounds a wait that outlives
#: it (the execution is then stopped and answered TIMED_OUT).
SYNC_TIMEOUT_S = 310.0

Body = dict[str, Any]
Handler = Callable[[Body], Body]
ACTIONS: dict[str, Handler] = {}

routes = RouteGroup(include_in_schema=False)


def action(name: str) -> Callable[[Handler], Handler]:
    """Register ``handler`` as the answer to ``AWSStepFunctions.<name>``."""

    def register(handler: Handler) -> Handler:
        ACTIONS[name] = handler
        return handler

    return register


def is_api_request(request: Request) -> bool:
    """Whether ``request`` is a Step Functions API call (``POST /`` naming an action)."""
    return (
        request.method == "POST"
        and request.url.path == "/"
        and request.headers.get(TARGET_HEADER, "").startswith(TARGET_PREFIX)
    )


async def authenticate(request: Request, body: bytes) -> None:
    """Refuse a request that is not signed with one of the configured API keys (SigV4).

    The one place the API checks who calls it. With no keys configured every request is
    accepted, as the UI accepts every request without a token on a loopback interface;
    but a server with a UI token and no keys refuses them all: its operator asked for
    authentication, and the API cannot take the token (an SDK signs, it sends no token),
    so it must not be the one door left open. ``body`` is the body as received: its
    bytes are what the client's signature covers.

    Raises:
        SfnError: the request is not authenticated (AWS's code for why).
    """
    if not request.app.state.api_keys and context_of(request).token:
        raise SfnError(
            "MissingAuthenticationTokenException",
            "this server requires authentication (ORCHESTRATOR_UI_TOKEN is set) and has no "
            "API keys: set ORCHESTRATOR_API_KEYS=ACCESS_KEY_ID:SECRET to use the Step "
            "Functions API",
            403,
        )
    try:
        sigv4.authenticate(request, body, request.app.state.api_keys)
    except sigv4.SignatureError as exc:
        raise SfnError(exc.code, exc.message, exc.status) from None


def _answer(payload: Body, status: int = 200) -> Response:
    # SDKs log and report the request id (ResponseMetadata.RequestId) from this header.
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    return Response(json.dumps(payload), status, headers=headers, media_type=CONTENT_TYPE)


@routes.post("/")
async def sfn_api(request: Request) -> Response:
    """Answer one Step Functions API call."""
    target = request.headers.get(TARGET_HEADER, "")
    if not is_api_request(request):
        # Not an AWS client's call: the UI's rules apply (a form's POST here needs the
        # token like any other write), then it is answered as an unknown operation.
        context_of(request).require_write(request)
    try:
        body_bytes = await request.body()
        await authenticate(request, body_bytes)
        if not target.startswith(TARGET_PREFIX):
            raise SfnError("UnknownOperationException", "Missing X-Amz-Target header")
        handler = ACTIONS.get(target[len(TARGET_PREFIX) :])
        if handler is None:
            raise SfnError("UnknownOperationException", f"Unknown operation {target!r}")
        try:
            body = json.loads(body_bytes or b"{}")
        except (ValueError, RecursionError):
            raise SfnError("SerializationException", "The request body is not JSON") from None
        if not isinstance(body, dict):
            raise SfnError("SerializationException", "The request body is not a JSON object")
        return _answer(await run_in_threadpool(handler, body))
    except Exception as exc:  # noqa: BLE001 - every error is answered in AWS's form
        error = error_for(exc, target)
        if error.status >= 500 and error.code == "InternalFailure":
            logger.exception("unexpected error serving %s", target)
        return _answer(error.body(), error.status)


# ------------------------------------------------------------------ request fields


def _field(body: Body, name: str, kind: type, required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise validation(
                f"1 validation error detected: Value null at '{name}' failed to "
                "satisfy constraint: Member must not be null"
            )
        return None
    if kind is int and isinstance(value, bool):
        raise validation(f"{name}: must be an integer")
    if not isinstance(value, kind):
        raise validation(f"{name}: must be of type {kind.__name__}")
    return value


def _text(body: Body, name: str, required: bool = False) -> str | None:
    value: str | None = _field(body, name, str, required)
    return value


def _required(body: Body, name: str) -> str:
    value: str = _field(body, name, str, True)
    return value


def _json_field(body: Body, name: str, code: str, default: Any = None) -> Any:
    """A field holding a JSON document (``input``, ``output``)."""
    text = _text(body, name)
    if text is None:
        return default
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise SfnError(code, f"Invalid {name}: not a JSON document") from None


def _definition(body: Body) -> dict[str, Any]:
    """The ``definition`` field: ASL JSON text (never a workflow name or a path)."""
    text = _required(body, "definition")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        raise SfnError("InvalidDefinition", "Invalid State Machine Definition: not a JSON object")
    return value


def _execution(body: Body, name: str = "executionArn") -> str:
    """An execution ARN field, as the execution's id."""
    arn = _required(body, name)
    execution_id = execution_id_from(arn)
    if execution_id == arn or not EXECUTION_NAME.match(execution_id):
        raise InvalidArn(f"Invalid Arn: '{arn}'")
    return execution_id


def _machine_arn(body: Body, name: str = "stateMachineArn") -> rules.Target:
    """A state machine (version, alias) ARN field."""
    arn = _required(body, name)
    if not rules.is_arn(arn):
        raise InvalidArn(f"Invalid Arn: '{arn}'")
    return rules.parse_arn(arn)


def _tags(body: Body) -> dict[str, str]:
    raw = _field(body, "tags", list) or []
    tags: dict[str, str] = {}
    for tag in raw:
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            raise validation("tags: a list of {key, value}")
        tags[tag["key"]] = str(tag.get("value") or "")
    return tags


# ------------------------------------------------------------------ shapes


def _described_execution(description: ExecutionDescription, data: bool = True) -> Body:
    shaped: Body = {
        "executionArn": description.execution_arn,
        "stateMachineArn": description.state_machine_arn or state_machine_arn(description.workflow),
        "name": description.name,
        "status": description.status.value,
        "startDate": epoch(description.start_time),
        "redriveCount": description.redrive_count,
        "redriveStatus": "REDRIVABLE"
        if description.status.value in control.REDRIVABLE
        else "NOT_REDRIVABLE",
    }
    optional = {
        "stopDate": epoch(description.stop_time),
        "mapRunArn": description.map_run_arn,
        "error": description.error,
        "cause": description.cause,
        "stateMachineVersionArn": description.state_machine_version_arn,
        "stateMachineAliasArn": description.state_machine_alias_arn,
    }
    shaped.update({k: v for k, v in optional.items() if v is not None})
    if shaped["redriveStatus"] == "NOT_REDRIVABLE":
        shaped["redriveStatusReason"] = (
            "Execution is RUNNING and cannot be redriven"
            if description.status is ExecutionStatus.RUNNING
            else "Execution is SUCCEEDED and cannot be redriven"
        )
    if data:
        shaped["input"] = json_text(description.input)
        shaped["inputDetails"] = {"included": True}
        if description.status is ExecutionStatus.SUCCEEDED:
            shaped["output"] = json_text(description.output)
            shaped["outputDetails"] = {"included": True}
    return shaped


def _role(role_arn: str | None) -> str:
    """The role a state machine was created with (Step Functions answers one always; a
    machine registered otherwise, from a file or the CLI, has none: a placeholder)."""
    return role_arn or f"arn:aws:iam::{get_settings().account_id}:role/orchestrator"


def _data_included(body: Body) -> bool:
    included = _text(body, "includedData")
    if included not in (None, "ALL_DATA", "METADATA_ONLY"):
        raise validation("includedData: ALL_DATA or METADATA_ONLY")
    return included != "METADATA_ONLY"


# ------------------------------------------------------------------ state machines


def _configure(name: str, body: Body, role: str | None) -> None:
    """Keep the role, logging and tracing configurations a create or update gives."""
    machines.configure_state_machine(
        name,
        role_arn=role,
        logging=_field(body, "loggingConfiguration", dict),
        tracing=_field(body, "tracingConfiguration", dict),
    )


#: What a machine given no logging or tracing configuration answers (Step Functions').
NO_LOGGING = {"level": "OFF", "includeExecutionData": False}
NO_TRACING = {"enabled": False}


@action("CreateStateMachine")
def create_state_machine(body: Body) -> Body:
    name = _required(body, "name")
    rules.check_name(name)
    role = _required(body, "roleArn")
    tags = rules.check_tags(_tags(body))
    if len(tags) > rules.MAX_TAGS:
        raise SfnError("TooManyTags", f"Too many tags: at most {rules.MAX_TAGS}")
    described = machines.create_state_machine(
        name,
        _definition(body),
        type=_text(body, "type") or "STANDARD",
        publish=bool(_field(body, "publish", bool)),
        version_description=_text(body, "versionDescription"),
    )
    _configure(name, body, role)
    if tags:
        machines.tag_state_machine(name, tags)
    reply: Body = {
        "stateMachineArn": described.state_machine_arn,
        "creationDate": epoch(described.creation_date),
    }
    if described.state_machine_version_arn:
        reply["stateMachineVersionArn"] = described.state_machine_version_arn
    return reply


@action("UpdateStateMachine")
def update_state_machine(body: Body) -> Body:
    target = _machine_arn(body)
    if target.version is not None or target.alias is not None:
        raise InvalidArn("Invalid Arn: update a state machine, not a version or an alias")
    definition = _definition(body) if body.get("definition") is not None else None
    publish = bool(_field(body, "publish", bool))
    role = _text(body, "roleArn")
    others = ("loggingConfiguration", "tracingConfiguration", "encryptionConfiguration")
    if definition is None and not publish and role is None and not any(k in body for k in others):
        raise SfnError(
            "MissingRequiredParameter",
            "Either the definition, the roleArn, the logging, "
            "tracing or encryption configuration must be specified",
        )
    if definition is not None or publish:
        described = machines.update_state_machine(
            target.name,
            definition,
            publish=publish,
            version_description=_text(body, "versionDescription"),
        )
    else:
        described = machines.describe_state_machine(target.name)
    _configure(target.name, body, role)
    reply: Body = {
        "updateDate": epoch(described.update_date or described.creation_date),
        "revisionId": described.revision_id,
    }
    if described.state_machine_version_arn:
        reply["stateMachineVersionArn"] = described.state_machine_version_arn
    return reply


@action("DescribeStateMachine")
def describe_state_machine(body: Body) -> Body:
    target = _machine_arn(body)
    if target.alias is not None:
        raise InvalidArn("Invalid Arn: describe an alias with DescribeStateMachineAlias")
    described = machines.describe_state_machine(_required(body, "stateMachineArn"))
    reply: Body = {
        "stateMachineArn": described.state_machine_arn,
        "name": described.name,
        "status": "ACTIVE",
        "definition": described.definition,
        "roleArn": _role(described.role_arn),
        "type": described.type,
        "creationDate": epoch(described.creation_date),
        "revisionId": described.revision_id,
        "loggingConfiguration": described.logging_configuration or NO_LOGGING,
        "tracingConfiguration": described.tracing_configuration or NO_TRACING,
        "encryptionConfiguration": {"type": "AWS_OWNED_KEY"},
    }
    if described.description:
        reply["description"] = described.description
    return reply


@action("ListStateMachines")
def list_state_machines(body: Body) -> Body:
    token = _text(body, "nextToken")
    after = decode_token(token, "machines")["after"] if token else None
    page = machines.list_state_machines(
        max_results=page_size(body.get("maxResults")), next_token=after
    )
    reply: Body = {
        "stateMachines": [
            {
                "stateMachineArn": item.state_machine_arn,
                "name": item.name,
                "type": item.type,
                "creationDate": epoch(item.creation_date),
            }
            for item in page.state_machines
        ]
    }
    if page.next_token:
        reply["nextToken"] = encode_token("machines", after=page.next_token)
    return reply


@action("DeleteStateMachine")
def delete_state_machine(body: Body) -> Body:
    target = _machine_arn(body)
    if target.version is not None or target.alias is not None:
        raise validation(
            "stateMachineArn: a state machine's ARN (delete a version with "
            "DeleteStateMachineVersion, an alias with DeleteStateMachineAlias)"
        )
    machines.delete_state_machine(target.name)
    return {}


# ------------------------------------------------------------------ versions


@action("PublishStateMachineVersion")
def publish_state_machine_version(body: Body) -> Body:
    target = _machine_arn(body)
    if target.version is not None or target.alias is not None:
        raise InvalidArn("Invalid Arn: publish a version of a state machine's ARN")
    version = machines.publish_state_machine_version(
        target.name, _text(body, "description"), revision_id=_text(body, "revisionId")
    )
    return {
        "creationDate": epoch(version.creation_date),
        "stateMachineVersionArn": version.state_machine_version_arn,
    }


@action("ListStateMachineVersions")
def list_state_machine_versions(body: Body) -> Body:
    page, reply = _machine_page(body, machines.list_state_machine_versions, "versions", "below")
    reply["stateMachineVersions"] = [
        {
            "stateMachineVersionArn": v.state_machine_version_arn,
            "creationDate": epoch(v.creation_date),
        }
        for v in page.state_machine_versions
    ]
    return reply


def _machine_page(
    body: Body, lister: Callable[..., Any], kind: str, cursor: str
) -> tuple[Any, Body]:
    """The page ``lister`` gives for the request's state machine, ``maxResults`` and
    ``nextToken`` (a token of ``kind`` holding the position as ``cursor``), and the reply
    with the next page's token if there is one."""
    target = _machine_arn(body)
    token = _text(body, "nextToken")
    position = decode_token(token, kind)[cursor] if token else None
    page = lister(target.name, max_results=page_size(body.get("maxResults")), next_token=position)
    reply: Body = {}
    if page.next_token:
        reply["nextToken"] = encode_token(kind, **{cursor: page.next_token})
    return page, reply


@action("DeleteStateMachineVersion")
def delete_state_machine_version(body: Body) -> Body:
    target = _machine_arn(body, "stateMachineVersionArn")
    if target.version is None:
        raise InvalidArn("Invalid Arn: not a state machine version's ARN")
    machines.delete_state_machine_version(target.name, target.version)
    return {}


# ------------------------------------------------------------------ aliases


def _alias_arn(body: Body) -> rules.Target:
    target = _machine_arn(body, "stateMachineAliasArn")
    if target.alias is None:
        raise InvalidArn("Invalid Arn: not a state machine alias's ARN")
    return target


def _routing(body: Body, required: bool) -> list[dict[str, Any]] | None:
    routing: list[Any] | None = _field(body, "routingConfiguration", list, required)
    if routing is None:
        return None
    for entry in routing:
        if not isinstance(entry, dict) or not isinstance(entry.get("stateMachineVersionArn"), str):
            raise validation("routingConfiguration: a list of {stateMachineVersionArn, weight}")
    return routing


def _alias_shape(alias: Any) -> Body:
    reply: Body = {
        "stateMachineAliasArn": alias.state_machine_alias_arn,
        "name": alias.name,
        "routingConfiguration": [
            {"stateMachineVersionArn": r.state_machine_version_arn, "weight": r.weight}
            for r in alias.routing_configuration
        ],
        "creationDate": epoch(alias.creation_date),
        "updateDate": epoch(alias.update_date),
    }
    if alias.description:
        reply["description"] = alias.description
    return reply


@action("CreateStateMachineAlias")
def create_state_machine_alias(body: Body) -> Body:
    name = _required(body, "name")
    routing = _routing(body, True)
    assert routing is not None
    if not routing:
        raise validation("routingConfiguration: one or two versions")
    machine = rules.parse_arn(routing[0]["stateMachineVersionArn"]).name
    rules.check_name(name, "alias")
    alias = machines.create_state_machine_alias(
        machine, name, routing, description=_text(body, "description")
    )
    return {
        "stateMachineAliasArn": alias.state_machine_alias_arn,
        "creationDate": epoch(alias.creation_date),
    }


@action("DescribeStateMachineAlias")
def describe_state_machine_alias(body: Body) -> Body:
    target = _alias_arn(body)
    return _alias_shape(machines.describe_state_machine_alias(target.name, target.alias))


@action("UpdateStateMachineAlias")
def update_state_machine_alias(body: Body) -> Body:
    target = _alias_arn(body)
    routing = _routing(body, False)
    description = _text(body, "description")
    if routing is None and description is None:
        raise validation("give a routingConfiguration or a description")
    alias = machines.update_state_machine_alias(
        target.name, target.alias, routing=routing, description=description
    )
    return {"updateDate": epoch(alias.update_date)}


@action("ListStateMachineAliases")
def list_state_machine_aliases(body: Body) -> Body:
    page, reply = _machine_page(body, machines.list_state_machine_aliases, "aliases", "after")
    reply["stateMachineAliases"] = [
        {"stateMachineAliasArn": a.state_machine_alias_arn, "creationDate": epoch(a.creation_date)}
        for a in page.state_machine_aliases
    ]
    return reply


@action("DeleteStateMachineAlias")
def delete_state_machine_alias(body: Body) -> Body:
    target = _alias_arn(body)
    machines.delete_state_machine_alias(target.name, target.alias)
    return {}


@action("ValidateStateMachineDefinition")
def validate_state_machine_definition(body: Body) -> Body:
    text = _required(body, "definition")
    limit = page_size(body.get("maxResults"))
    try:
        definition = json.loads(text)
        if not isinstance(definition, dict):
            raise ValueError("not an object")
    except (ValueError, RecursionError):
        diagnostic = {
            "severity": "ERROR",
            "code": "INVALID_JSON_DESCRIPTION",
            "message": "The definition is not a JSON object",
        }
        return {"result": "FAIL", "diagnostics": [diagnostic], "truncated": False}
    try:
        api.validate_definition(definition)
    except DefinitionError as exc:
        diagnostics = [
            {
                "severity": "ERROR",
                "code": "SCHEMA_VALIDATION_FAILED",
                "message": issue.message,
                "location": issue.path,
            }
            for issue in exc.issues
        ]
        return {
            "result": "FAIL",
            "diagnostics": diagnostics[:limit],
            "truncated": len(diagnostics) > limit,
        }
    return {"result": "OK", "diagnostics": [], "truncated": False}


# ------------------------------------------------------------------ executions


def _start(body: Body) -> tuple[str, Any]:
    """Start the execution a StartExecution (or StartSyncExecution) names."""
    arn = _required(body, "stateMachineArn")
    _machine_arn(body)
    name = _text(body, "name")
    if name is not None and not EXECUTION_NAME.match(name):
        raise SfnError("InvalidName", f"Invalid Name: '{name}'")
    value = _json_field(body, "input", "InvalidExecutionInput", {})
    try:
        handle = api.start_workflow(arn, value, name=name)
    except InvalidInputError as exc:
        raise SfnError("InvalidExecutionInput", str(exc)[:2000]) from None
    return handle.execution_id, handle


@action("StartExecution")
def start_execution(body: Body) -> Body:
    execution_id, _ = _start(body)
    described = api.describe_execution(execution_id)
    return {"executionArn": described.execution_arn, "startDate": epoch(described.start_time)}


@action("StartSyncExecution")
def start_sync_execution(body: Body) -> Body:
    target = _machine_arn(body)
    machine = machines.describe_state_machine(state_machine_arn(target.name))
    if machine.type != "EXPRESS":
        raise SfnError(
            "StateMachineTypeNotSupported",
            "This operation is not supported by this type of state machine",
        )
    execution_id, handle = _start(body)
    timed_out = False
    try:
        handle.result(timeout=SYNC_TIMEOUT_S)
    except TimeoutError:
        control.stop_execution(execution_id, "States.Timeout", "The execution timed out")
        timed_out = True
    described = api.describe_execution(execution_id)
    data = _data_included(body)
    status = described.status.value
    reply: Body = {
        "executionArn": described.execution_arn,
        "stateMachineArn": described.state_machine_arn or state_machine_arn(target.name),
        "name": described.name,
        "startDate": epoch(described.start_time),
        "stopDate": epoch(described.stop_time or described.start_time),
        # StartSyncExecution's statuses are SUCCEEDED, FAILED and TIMED_OUT: a stop by
        # another caller is a failure, the stop of a wait that outlived the limit a timeout.
        "status": "TIMED_OUT" if timed_out else "FAILED" if status == "ABORTED" else status,
        "billingDetails": {"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": 100},
    }
    if described.error is not None:
        reply["error"] = described.error
    if described.cause is not None:
        reply["cause"] = described.cause
    if data:
        reply["input"] = json_text(described.input)
        reply["inputDetails"] = {"included": True}
        if status == "SUCCEEDED":
            reply["output"] = json_text(described.output)
            reply["outputDetails"] = {"included": True}
    return reply


@action("DescribeExecution")
def describe_execution(body: Body) -> Body:
    return _described_execution(api.describe_execution(_execution(body)), _data_included(body))


@action("DescribeStateMachineForExecution")
def describe_state_machine_for_execution(body: Body) -> Body:
    execution_id = _execution(body)
    described = api.describe_execution(execution_id)
    definition = api.get_execution_definition(execution_id)
    machine = _registered(described.workflow)
    reply: Body = {
        "stateMachineArn": described.state_machine_arn or state_machine_arn(described.workflow),
        "name": described.workflow,
        "definition": json.dumps(definition, ensure_ascii=False),
        "roleArn": _role(machine.role_arn if machine else None),
        "updateDate": epoch(described.start_time),
        "loggingConfiguration": (machine and machine.logging_configuration) or NO_LOGGING,
        "tracingConfiguration": (machine and machine.tracing_configuration) or NO_TRACING,
    }
    if described.revision_id:
        reply["revisionId"] = described.revision_id
    if described.map_run_arn:
        reply["mapRunArn"] = described.map_run_arn
    return reply


def _registered(workflow: str) -> StateMachineDescription | None:
    """The registered state machine of an execution's workflow, if it has one."""
    try:
        return machines.describe_state_machine(workflow)
    except (StateMachineNotFound, InvalidInputError):
        return None  # an inline definition's workflow, or a Map child's


_LISTED = ("name", "workflow", "status", "start", "stop", "redrives", "version", "alias", "map_run")


def _listed(execution_id: str, record: dict[str, str | None]) -> Body:
    workflow = record.get("workflow") or ""
    machine = state_machine_arn(workflow)
    item: Body = {
        "executionArn": execution_arn(workflow, record.get("name") or execution_id),
        "stateMachineArn": machine,
        "name": record.get("name") or execution_id,
        "status": record.get("status"),
        "startDate": float(record.get("start") or 0),
        "redriveCount": int(record.get("redrives") or 0),
    }
    if record.get("stop"):
        item["stopDate"] = float(record["stop"] or 0)
    if record.get("map_run"):
        item["mapRunArn"] = record["map_run"]
    if record.get("version"):
        item["stateMachineVersionArn"] = f"{machine}:{record['version']}"
    if record.get("alias"):
        item["stateMachineAliasArn"] = f"{machine}:{record['alias']}"
    return item


_OTHER_LISTING = "Invalid Token: a nextToken of another listing"


@action("ListExecutions")
def list_executions(body: Body) -> Body:
    size = page_size(body.get("maxResults"))
    status_text = _text(body, "statusFilter")
    statuses = [s.value for s in ExecutionStatus] + ["PENDING_REDRIVE"]
    if status_text is not None and status_text not in statuses:
        raise validation(f"statusFilter: one of {', '.join(statuses)}")
    redrive = _text(body, "redriveFilter")
    if redrive not in (None, "REDRIVEN", "NOT_REDRIVEN"):
        raise validation("redriveFilter: REDRIVEN or NOT_REDRIVEN")
    map_run = _text(body, "mapRunArn")
    token = _text(body, "nextToken")
    at = decode_token(token, "executions")["at"] if token else 0
    store = get_store()

    def wanted(record: dict[str, str | None]) -> bool:
        if status_text is not None and record.get("status") != status_text:
            return False
        redriven = int(record.get("redrives") or 0) > 0
        return redrive is None or redriven == (redrive == "REDRIVEN")

    items: list[Body] = []
    if map_run is not None:
        if body.get("stateMachineArn") is not None:
            raise validation("give either a stateMachineArn or a mapRunArn, not both")
        try:
            position = int(at)
        except (TypeError, ValueError):
            raise SfnError(
                "InvalidToken", "Invalid Token: a nextToken of another listing"
            ) from None
        try:
            children = mapruns.list_map_run_children(map_run, start=position, limit=size)
        except ExecutionNotFound:
            raise SfnError("ResourceNotFound", f"Map Run Does Not Exist: '{map_run}'") from None
        ids = [child.execution_id for child in children]
        for execution_id, record in zip(ids, store.execution_records(ids, _LISTED), strict=True):
            if record.get("status") is not None and wanted(record):
                items.append(_listed(execution_id, record))
        at = position + len(children)
        more = len(children) == size
    else:
        target = _machine_arn(body)
        machines.resolve_target(_required(body, "stateMachineArn"))
        status = (
            ExecutionStatus(status_text)
            if status_text is not None and status_text != "PENDING_REDRIVE"
            else None
        )
        try:
            cursor = ListingCursor.parse(at, store.partitions)
        except InvalidInputError:
            raise SfnError(
                "InvalidToken", "Invalid Token: a nextToken of another listing"
            ) from None
        rows, after = api.scan_executions(
            store, _LISTED, status=status, workflow=target.name, limit=size, cursor=cursor
        )
        for execution_id, record in rows:
            if target.version is not None and record.get("version") != str(target.version):
                continue
            if target.alias is not None and record.get("alias") != target.alias:
                continue
            if wanted(record):
                items.append(_listed(execution_id, record))
        size_now = store.execution_index_size(
            status=status.value if status is not None else None, workflow=target.name
        )
        more = len(rows) == size and size_now > after.passed
        at = after.text()
    reply: Body = {"executions": items}
    if more:
        reply["nextToken"] = encode_token("executions", at=at)
    return reply


@action("GetExecutionHistory")
def get_execution_history(body: Body) -> Body:
    execution_id = _execution(body)
    size = page_size(body.get("maxResults"))
    reverse = bool(_field(body, "reverseOrder", bool))
    include = _field(body, "includeExecutionData", bool)
    token = _text(body, "nextToken")
    cursor = None
    if token:
        where = decode_token(token, "history")
        if where.get("x") != execution_id or where.get("r") != reverse:
            raise SfnError("InvalidToken", "Invalid Token: a nextToken of another history")
        cursor = int(where["at"])
    store = get_store()
    length, status = store.history_cursor(execution_id)
    if status is None:
        raise ExecutionNotFound(execution_id)
    after, count, next_cursor = history_page(length, size, reverse, cursor)
    events = api.get_execution_history(execution_id, after=after, limit=count) if count else []
    shaper = HistoryShaper(include_data=include is not False, region=get_settings().region)
    shaped = shaper.events(events)
    if reverse:
        shaped.reverse()
    reply: Body = {"events": shaped}
    if next_cursor is not None:
        reply["nextToken"] = encode_token("history", x=execution_id, r=reverse, at=next_cursor)
    return reply


@action("StopExecution")
def stop_execution(body: Body) -> Body:
    execution_id = _execution(body)
    control.stop_execution(execution_id, _text(body, "error"), _text(body, "cause"))
    described = api.describe_execution(execution_id)
    return {"stopDate": epoch(described.stop_time)}


@action("RedriveExecution")
def redrive_execution(body: Body) -> Body:
    execution_id = _execution(body)
    control.redrive_execution(execution_id)
    history = api.get_execution_history(execution_id, after=0)
    redriven = [event.timestamp for event in history if event.type == "ExecutionRedriven"]
    return {"redriveDate": epoch(redriven[-1]) if redriven else None}


# ------------------------------------------------------------------ task tokens


def _answering(body: Body, call: Callable[[str], None]) -> Body:
    token = _required(body, "taskToken")
    try:
        call(token)
    except TaskTokenError:
        raise token_error(token) from None
    return {}


@action("SendTaskSuccess")
def send_task_success(body: Body) -> Body:
    _required(body, "output")
    output = _json_field(body, "output", "InvalidOutput")
    return _answering(body, lambda token: control.send_task_success(token, output))


@action("SendTaskFailure")
def send_task_failure(body: Body) -> Body:
    error, cause = _text(body, "error"), _text(body, "cause")
    return _answering(body, lambda token: control.send_task_failure(token, error, cause))


@action("SendTaskHeartbeat")
def send_task_heartbeat(body: Body) -> Body:
    return _answering(body, control.send_task_heartbeat)


# ------------------------------------------------------------------ tags


def _tagged(body: Body, call: Callable[[str], Any]) -> Any:
    """``call`` on the state machine ``resourceArn`` names (Step Functions tags state
    machines and activities; versions and aliases are not tagged)."""
    arn = _required(body, "resourceArn")
    target = rules.parse_arn(arn) if rules.is_arn(arn) else None
    if target is None or target.version is not None or target.alias is not None:
        raise InvalidArn(f"Invalid Arn: '{arn}' (tags are kept on state machines)")
    try:
        return call(target.name)
    except StateMachineNotFound:
        raise SfnError("ResourceNotFound", f"Resource not found: '{arn}'") from None


@action("TagResource")
def tag_resource(body: Body) -> Body:
    tags = rules.check_tags(_tags(body))
    if not _tagged(body, lambda name: machines.tag_state_machine(name, tags)):
        raise SfnError("TooManyTags", f"Too many tags: at most {rules.MAX_TAGS}")
    return {}


@action("UntagResource")
def untag_resource(body: Body) -> Body:
    keys = _field(body, "tagKeys", list, True)
    _tagged(body, lambda name: machines.untag_state_machine(name, keys))
    return {}


@action("ListTagsForResource")
def list_tags_for_resource(body: Body) -> Body:
    tags = _tagged(body, machines.state_machine_tags)
    return {"tags": [{"key": k, "value": v} for k, v in sorted(tags.items())]}


# ------------------------------------------------------------------ map runs


def _map_run_shape(run: MapRunDescription) -> Body:
    counts = run.counts
    pending = max(
        0,
        counts.total
        - counts.running
        - counts.succeeded
        - counts.failed
        - counts.timed_out
        - counts.aborted,
    )
    tally = {
        "pending": pending,
        "running": counts.running,
        "succeeded": counts.succeeded,
        "failed": counts.failed,
        "timedOut": counts.timed_out,
        "aborted": counts.aborted,
        "total": counts.total,
        "resultsWritten": counts.succeeded + counts.failed + counts.timed_out + counts.aborted,
        "failuresNotRedrivable": 0,
        "pendingRedrive": 0,
    }
    reply: Body = {
        "mapRunArn": run.map_run_arn,
        "executionArn": api.describe_execution(run.execution_id).execution_arn,
        "status": run.status,
        "startDate": epoch(run.start_time),
        "maxConcurrency": run.max_concurrency,
        "toleratedFailurePercentage": 0.0,
        "toleratedFailureCount": 0,
        "itemCounts": tally,
        "executionCounts": tally,
        "redriveCount": run.redrive_count,
    }
    if run.stop_time is not None:
        reply["stopDate"] = epoch(run.stop_time)
    return reply


@action("DescribeMapRun")
def describe_map_run(body: Body) -> Body:
    arn = _required(body, "mapRunArn")
    if not arn.startswith("arn:") or ":mapRun:" not in arn:
        raise InvalidArn(f"Invalid Arn: '{arn}'")
    try:
        return _map_run_shape(mapruns.describe_map_run(arn))
    except ExecutionNotFound:
        raise SfnError("ResourceNotFound", f"Map Run Does Not Exist: '{arn}'") from None


@action("ListMapRuns")
def list_map_runs(body: Body) -> Body:
    execution_id = _execution(body)
    size = page_size(body.get("maxResults"))
    token = _text(body, "nextToken")
    start = int(decode_token(token, "mapruns")["at"]) if token else 0
    described = api.describe_execution(execution_id)
    runs = mapruns.list_map_runs(execution_id)
    page = runs[start : start + size]
    reply: Body = {
        "mapRuns": [
            {
                "executionArn": described.execution_arn,
                "mapRunArn": run.map_run_arn,
                "stateMachineArn": described.state_machine_arn
                or state_machine_arn(described.workflow),
                "startDate": epoch(run.start_time),
                **({"stopDate": epoch(run.stop_time)} if run.stop_time else {}),
            }
            for run in page
        ]
    }
    if start + size < len(runs):
        reply["nextToken"] = encode_token("mapruns", at=start + size)
    return reply


@action("UpdateMapRun")
def update_map_run(body: Body) -> Body:
    arn = _required(body, "mapRunArn")
    describe_map_run({"mapRunArn": arn})
    raise validation(
        "UpdateMapRun is not supported: a Map Run keeps the MaxConcurrency and tolerated "
        "failures its Map state gave it"
    )


# ------------------------------------------------------------------ TestState


def _run_activity(state: TaskState, effective: Any) -> Any:
    """A tested Task's result: its activity called in this process, when it is registered
    here (the API's process imports the task modules it is configured with)."""
    name = activities.activity_name_for(state.resource)
    try:
        function = activities.get_activity(name or state.resource).function
    except ActivityNotFound:
        raise validation(
            f"cannot test Task {state.resource!r}: its activity is not registered in the API's "
            "process; give a mock result"
        ) from None
    try:
        return function(effective)
    except Exception as exc:  # noqa: BLE001 - the activity's error is the Task's
        raise TaskFailure(type(exc).__name__, str(exc)) from None


@action("TestState")
def test_one_state(body: Body) -> Body:
    definition = _definition(body)
    level = _text(body, "inspectionLevel") or "INFO"
    if level not in ("INFO", "DEBUG", "TRACE"):
        raise validation("inspectionLevel: INFO, DEBUG or TRACE")
    value = _json_field(body, "input", "InvalidExecutionInput", {})
    machine, name = state_under_test(definition, _text(body, "stateName"))
    reply = evaluate_state(
        machine, name, value, mock=_field(body, "mock", dict), run_task=_run_activity
    )
    if level == "INFO":
        reply.pop("inspectionData", None)  # as AWS: the data flow's steps at DEBUG and TRACE
    return reply
