#!/usr/bin/env python
"""Public Step Functions definitions, run unchanged against local stand-ins (issue 14).

    python benchmarks/public_definitions.py [--deadline 90] [--json results.json] [--only NAME]

The corpus (``tests/conformance/public``: third-party sample definitions from AWS's
public sample repositories, each listed with its source in ``SOURCES.json``) is run as
it is. For each definition the harness

1. fills in its template placeholders (``${Name}``: SAM ``DefinitionSubstitutions``,
   Terraform ``templatefile`` variables) with plausible values: a Lambda function, table,
   topic, queue, bucket, event bus or state machine *named after the placeholder*,
   chosen by the field it stands in (``FunctionName``, ``TableName``, ``TopicArn``...)
   or, failing that, by its name; ``overrides.json`` gives the values that neither can
   tell (a Resource written as ``${SNSTopicPublishAction}``, a concurrency limit, a
   child state machine that is another file of the corpus). Every value used is
   recorded per definition in the results;
2. validates it with the project's validator (:func:`orchestrator.validate_definition`);
3. registers one activity per Lambda function it names (Lambda ARNs as Resource,
   ``lambda:invoke`` ``FunctionName``), which **echoes its input** (a Lambda ``Payload``
   of ``lambda:invoke`` is that input), and nothing else: every other Resource runs on
   the engine's own integrations. Step Functions activity ARNs (``...:activity:NAME``)
   are served the same way, by an echoing activity bound to the ARN, and counted apart;
4. creates in moto's server (``AWS_ENDPOINT_URL`` points every boto3 client at it) the
   tables (key schema taken from the definition's ``Key`` parameters, else its first
   ``Item`` attribute), topics, queues, buckets and event buses the definition names,
   and registers the child state machines it starts (a stand-in Pass machine unless
   ``overrides.json`` names the corpus file the sample deploys);
5. registers it as a state machine (so ``$$.StateMachine.Id`` is a real machine's ARN)
   and runs it, on an embedded Redis with an in-process worker and the timer loop, with
   ``AWS_ENDPOINT_URL_SFN`` pointing at the orchestrator's own Step Functions API (the
   service an ``aws-sdk:sfn:*`` Task calls is the one running it), input
   ``{}`` (none of the sources ships an ``input.json`` beside the definition), or the
   input the sample documents (its README's test input, its ``events/`` file) where
   ``overrides.json`` gives one with where it comes from, until it ends or ``--deadline``
   seconds pass. Waits run on the wall clock (the engine has no injectable clock): a
   definition still running at the deadline is reported with where it is (a Wait, a Task
   waiting for its callback token, a retry) and its longest literal Wait, and is stopped.
   The harness plays the other side of ``.waitForTaskToken`` Tasks (the approver, the
   external system): every task token an execution waits for is answered, once, with
   SendTaskSuccess ``{}`` (``--no-callbacks``: left unanswered, as with no counterpart).

Each definition is classified: ``succeeded``; ``failed`` (the execution failed, with
the error and whether it came from the input ``{}``, a stand-in service, or the
definition's own Fail state, as Step Functions would fail given the same); ``running``
at the deadline (as above); ``rejected`` (the validator's message); ``engine-error``
(an exception escaping the engine, or an error an engine bug produces: listed for
review). The summary prints the percentage *accepted and run unchanged*: not rejected
and no engine error. ``--json`` writes the per-definition results.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "conformance" / "public"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[^:]*:[^:]*:function:([^:]+)(:[^:]+)?$")
ACTIVITY_ARN = re.compile(r"^arn:aws[a-z-]*:states:[^:]*:[^:]*:activity:([^:]+)$")
#: A stand-in for a child state machine the corpus does not hold.
STAND_IN_CHILD = {"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}}
#: Errors that only an engine bug produces (a Python exception escaping as the error).
PYTHON_ERRORS = frozenset(
    {
        "KeyError",
        "TypeError",
        "AttributeError",
        "ValueError",
        "IndexError",
        "RuntimeError",
        "AssertionError",
        "NotImplementedError",
        "UnboundLocalError",
        "NameError",
        "RecursionError",
        "ZeroDivisionError",
        "JSONDecodeError",
        "ValidationError",
    }
)


@dataclass
class Entry:
    """One corpus definition, its source, and what the harness made of it."""

    file: str
    source: dict[str, Any]
    original: dict[str, Any]
    definition: dict[str, Any] = field(default_factory=dict)
    substitutions: dict[str, str] = field(default_factory=dict)
    lambdas: set[str] = field(default_factory=set)
    activities: dict[str, str] = field(default_factory=dict)
    """Activity ARN -> the activity serving it."""
    children: dict[str, dict[str, Any]] = field(default_factory=dict)
    """State machine name -> the definition registered under it."""
    input: Any = field(default_factory=dict)
    input_source: str = "none published: {}"


def load_sources(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    """``SOURCES.json``: where each corpus file comes from; raises if the corpus is missing."""
    listing = corpus / "SOURCES.json"
    if not listing.is_file():
        raise FileNotFoundError(
            f"no public-definitions corpus at {corpus} (expected its SOURCES.json)"
        )
    sources: list[dict[str, Any]] = json.loads(listing.read_text(encoding="utf-8"))
    return sources


def load_overrides(corpus: Path = CORPUS) -> dict[str, Any]:
    """``overrides.json``: placeholder values by file (``"*"``: every file), children."""
    path = corpus / "overrides.json"
    overrides: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return overrides


def load_corpus(corpus: Path = CORPUS) -> list[Entry]:
    """Every corpus definition with its placeholders filled in, sorted by file."""
    overrides = load_overrides(corpus)
    entries = []
    for source in sorted(load_sources(corpus), key=lambda s: s["file"]):
        original = json.loads((corpus / source["file"]).read_text(encoding="utf-8"))
        entry = Entry(source["file"], source, original)
        prepare(entry, overrides, corpus)
        entries.append(entry)
    return entries


# -- placeholders ---------------------------------------------------------------------


def _bucket_name(name: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-")[:63] or "bucket"


def placeholder_value(name: str, key: str, fixed: dict[str, str], tag: str = "") -> str:
    """A plausible value for ``${name}`` found under ``key``: a resource named after it.

    A table's name gets ``tag`` (the file's) appended: samples share placeholder names
    (``${DDBTable}``) for tables of different key schemas, all in the one stand-in.
    """
    if name in fixed:
        return fixed[name]
    lower = name.lower()
    lambda_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    if lower == "partition":
        return "aws"
    if lower in ("account_id", "accountid", "aws::accountid"):
        return ACCOUNT
    if key == "Resource":
        if "activity" in lower:
            return f"arn:aws:states:{REGION}:{ACCOUNT}:activity:{name}"
        return lambda_arn
    if key == "FunctionName":
        return lambda_arn
    if key == "TableName" or "table" in lower:
        return f"{name}-{tag}" if tag else name
    if key == "TopicArn":
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    if key == "QueueUrl":
        # boto3 sends SQS calls to its endpoint (moto here) whatever host the URL names.
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
    if key == "EventBusName":
        return name
    if key in ("Bucket", "OutputLocation", "OutputBucketName"):
        return _bucket_name(name)
    if key == "StateMachineArn":
        return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    if key in ("RoleArn", "ServiceRole") or lower.endswith(("role", "rolearn")):
        return f"arn:aws:iam::{ACCOUNT}:role/{name}"
    if key == "JobQueue":
        return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/{name}"
    if key == "JobDefinition":
        return f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/{name}"
    if any(word in lower for word in ("function", "lambda", "fnarn")):
        return lambda_arn
    if "statemachine" in lower:
        return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
    if "topic" in lower:
        return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    if "bucket" in lower:
        return _bucket_name(name)
    return name


def substitute(
    node: Any, key: str, fixed: dict[str, str], used: dict[str, str], tag: str = ""
) -> Any:
    """``node`` with every ``${name}`` in keys and strings replaced (``used`` records them)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            new_key = substitute(k, "", fixed, used, tag) if isinstance(k, str) else k
            out[new_key] = substitute(v, new_key.removesuffix(".$"), fixed, used, tag)
        return out
    if isinstance(node, list):
        return [substitute(item, key, fixed, used, tag) for item in node]
    if isinstance(node, str) and "${" in node:

        def one(match: re.Match[str]) -> str:
            value = placeholder_value(match.group(1), key, fixed, tag)
            used[match.group(1)] = value
            return value

        return PLACEHOLDER.sub(one, node)
    return node


# -- what a definition uses -------------------------------------------------------------


def task_states(states: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every Task state, nested ones (Parallel branches, Map processors) included."""
    for state in states.values():
        if not isinstance(state, dict):
            continue
        if state.get("Type") == "Task":
            yield state
        for branch in state.get("Branches") or []:
            if isinstance(branch, dict):
                yield from task_states(branch.get("States") or {})
        for processor in (state.get("ItemProcessor"), state.get("Iterator")):
            if isinstance(processor, dict):
                yield from task_states(processor.get("States") or {})


def function_name(value: str) -> str:
    """The function a ``FunctionName`` (name, partial or full ARN, qualified) names."""
    match = LAMBDA_ARN.match(value)
    if match:
        return match.group(1)
    parts = value.split(":")
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]  # ACCOUNT:function:NAME[:QUALIFIER]
    return parts[0]


def uses(definition: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The Lambda functions (by name) and Step Functions activity ARNs a definition runs."""
    lambdas: set[str] = set()
    activity_arns: set[str] = set()
    for state in task_states(definition.get("States") or {}):
        resource = str(state.get("Resource", ""))
        match = LAMBDA_ARN.match(resource)
        if match:
            lambdas.add(match.group(1))
        elif ACTIVITY_ARN.match(resource):
            activity_arns.add(resource)
        elif ":lambda:invoke" in resource:
            params = state.get("Parameters") or state.get("Arguments") or {}
            name = params.get("FunctionName") if isinstance(params, dict) else None
            if isinstance(name, str) and not name.startswith("{%"):
                lambdas.add(function_name(name))
    return lambdas, activity_arns


def walk_dicts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk_dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_dicts(value)


def _attribute_type(value: Any) -> str:
    if isinstance(value, dict):
        for kind in ("S", "N", "B"):
            if kind in value or f"{kind}.$" in value:
                return kind
    return "S"


@dataclass
class Resources:
    """What a definition needs to exist in the stand-in AWS."""

    tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    topics: set[str] = field(default_factory=set)
    queues: set[str] = field(default_factory=set)
    buses: set[str] = field(default_factory=set)
    buckets: set[str] = field(default_factory=set)


def needed_resources(definition: dict[str, Any]) -> Resources:
    """Tables (with a key schema), topics, queues, buses and buckets the definition names."""
    found = Resources()
    for node in walk_dicts(definition):
        table = node.get("TableName")
        if isinstance(table, str) and table:
            keys = node.get("Key")
            schema = found.tables.setdefault(table, [])
            if isinstance(keys, dict) and keys:
                attrs = [(k.removesuffix(".$"), _attribute_type(v)) for k, v in keys.items()]
                if not schema or len(attrs) > len(schema) or schema[0][0] not in keys:
                    found.tables[table] = attrs[:2]
            elif not schema and isinstance(node.get("Item"), dict) and node["Item"]:
                first = next(iter(node["Item"].items()))
                found.tables[table] = [(first[0].removesuffix(".$"), _attribute_type(first[1]))]
        topic = node.get("TopicArn")
        if isinstance(topic, str) and topic.startswith("arn:aws:sns:"):
            found.topics.add(topic)
        queue = node.get("QueueUrl")
        if isinstance(queue, str) and "/" in queue:
            found.queues.add(queue.rstrip("/").rsplit("/", 1)[-1])
        bus = node.get("EventBusName")
        if isinstance(bus, str) and bus and bus != "default" and ":" not in bus:
            found.buses.add(bus)
        bucket = node.get("Bucket")
        if isinstance(bucket, str) and bucket and not bucket.startswith("{%"):
            found.buckets.add(bucket)
        location = node.get("OutputLocation")
        if isinstance(location, str) and location.startswith("s3://"):
            found.buckets.add(location[5:].split("/", 1)[0])
    for table, schema in list(found.tables.items()):
        if not schema:
            found.tables[table] = [("id", "S")]
    return found


def max_literal_wait(definition: Any) -> float:
    """The longest ``Seconds`` of a Wait state (0 if none): what the deadline must allow."""
    longest = 0.0
    for node in walk_dicts(definition):
        if node.get("Type") == "Wait" and isinstance(node.get("Seconds"), int | float):
            longest = max(longest, float(node["Seconds"]))
    return longest


def prepare(entry: Entry, overrides: dict[str, Any], corpus: Path = CORPUS) -> None:
    """Fill in ``entry``'s placeholders and find its functions, activities and children."""
    fixed = {**overrides.get("*", {}), **overrides.get(entry.file, {}).get("values", {})}
    tag = hashlib.sha1(entry.file.encode()).hexdigest()[:6]
    entry.definition = substitute(entry.original, "", fixed, entry.substitutions, tag)
    own = overrides.get(entry.file, {})
    if "input" in own:
        entry.input, entry.input_source = own["input"], own.get("input_source", "")
    entry.lambdas, activity_arns = uses(entry.definition)
    for arn in activity_arns:
        entry.activities[arn] = ACTIVITY_ARN.match(arn).group(1)  # type: ignore[union-attr]
    children_files = overrides.get(entry.file, {}).get("children", {})
    for name, value in entry.substitutions.items():
        if ":stateMachine:" not in value:
            continue
        child_file = children_files.get(name)
        if child_file:
            child = Entry(child_file, {}, json.loads((corpus / child_file).read_text()))
            prepare(child, overrides, corpus)
            entry.children[name] = child.definition
            entry.children.update(child.children)
            entry.lambdas |= child.lambdas
            entry.activities.update(child.activities)
        else:
            entry.children[name] = STAND_IN_CHILD


# -- the stand-in AWS -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's server on a free loopback port, with boto3 pointed at it (dummy credentials)."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = dict(os.environ)
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_ENDPOINT_URL=url,
    )
    try:
        yield url
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def create_resources(needed: Resources) -> list[str]:
    """Create ``needed`` in the stand-in AWS; the problems met (a name moto refuses...)."""
    import boto3

    problems: list[str] = []
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    for table, schema in needed.tables.items():
        with _noting(problems, f"table {table}"):
            dynamodb.create_table(
                TableName=table,
                KeySchema=[
                    {"AttributeName": n, "KeyType": "HASH" if i == 0 else "RANGE"}
                    for i, (n, _) in enumerate(schema)
                ],
                AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in schema],
                BillingMode="PAY_PER_REQUEST",
            )
    for topic in needed.topics:
        region = topic.split(":")[3] or REGION
        with _noting(problems, f"topic {topic}"):
            boto3.client("sns", region_name=region).create_topic(Name=topic.rsplit(":", 1)[-1])
    sqs = boto3.client("sqs", region_name=REGION)
    for queue in needed.queues:
        with _noting(problems, f"queue {queue}"):
            sqs.create_queue(QueueName=queue)
    events = boto3.client("events", region_name=REGION)
    for bus in needed.buses:
        with _noting(problems, f"event bus {bus}"):
            events.create_event_bus(Name=bus)
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in needed.buckets:
        with _noting(problems, f"bucket {bucket}"):
            s3.create_bucket(Bucket=bucket)
    return problems


@contextlib.contextmanager
def _noting(problems: list[str], what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - an existing or refused resource is noted
        if "AlreadyExists" not in type(exc).__name__ and "AlreadyOwned" not in str(exc):
            problems.append(f"{what}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def step_functions_endpoint() -> Iterator[str]:
    """The orchestrator's own Step Functions API on a loopback port, for ``aws-sdk:sfn:*``.

    On AWS the service a definition calls as ``aws-sdk:sfn:listExecutions`` or
    ``sendTaskSuccess`` is the one running it; here that is the orchestrator, so
    ``AWS_ENDPOINT_URL_SFN`` points at its API rather than at moto.
    """
    import threading

    import uvicorn

    from orchestrator.ui import create_app

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    config = uvicorn.Config(
        create_app(token="", api_keys={}),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        if time.monotonic() - started > 15 or not thread.is_alive():
            raise RuntimeError("the Step Functions API did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    os.environ["AWS_ENDPOINT_URL_SFN"] = url
    try:
        yield url
    finally:
        del os.environ["AWS_ENDPOINT_URL_SFN"]
        server.should_exit = True
        thread.join(15)
        listener.close()


# -- activities -------------------------------------------------------------------------


def echo(event: Any) -> Any:
    """The stand-in Lambda function: returns its input."""
    return event


def register_activities(entries: list[Entry]) -> list[str]:
    """One echoing activity per Lambda function and per activity ARN of ``entries``.

    Call before the worker starts. Returns the names that could not be registered.
    """
    from orchestrator.engine.activities import activity, is_known

    refused = []
    for name in sorted({name for entry in entries for name in entry.lambdas}):
        if is_known(name):
            continue
        try:
            activity(name)(echo)
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            refused.append(f"{name}: {exc}")
    for arn, name in sorted({(a, n) for entry in entries for a, n in entry.activities.items()}):
        try:
            activity(f"{name}-activity", resources=[arn])(echo)
        except Exception as exc:  # noqa: BLE001 - reported, the run goes on
            refused.append(f"{arn}: {exc}")
    return refused


# -- running ----------------------------------------------------------------------------


def validate(entry: Entry) -> str | None:
    """The validator's message for ``entry``, or None when the definition is valid."""
    from orchestrator import validate_definition
    from orchestrator.errors import DefinitionError

    try:
        validate_definition(entry.definition)
    except DefinitionError as exc:
        return "; ".join(str(issue) for issue in exc.issues) or str(exc)
    return None


def register_children(entries: list[Entry]) -> dict[str, str]:
    """Register every child state machine; problems by name."""
    from orchestrator import create_state_machine, update_state_machine

    problems: dict[str, str] = {}
    registered: dict[str, dict[str, Any]] = {}
    for entry in entries:
        for name, definition in entry.children.items():
            if name in registered:
                continue
            registered[name] = definition
            try:
                try:
                    create_state_machine(name, definition)
                except Exception as exc:  # noqa: BLE001
                    if "AlreadyExists" not in type(exc).__name__:
                        raise
                    update_state_machine(name, definition=definition)
            except Exception as exc:  # noqa: BLE001 - the parent reports its failure
                problems[name] = f"{type(exc).__name__}: {exc}"
    return problems


def _where(description: Any) -> str:
    steps = [f"{s.key} ({s.status}, attempt {s.attempts})" for s in description.steps]
    return ", ".join(steps) or "no running step"


#: What a failure because the data lacks what the definition reads says (the input
#: ``{}``, or an echoing stand-in Lambda returning what the real one would not).
DATA_CAUSES = (
    "could not be found in the input",
    "Invalid path",
    "Map state input must be an array",
    "returned nothing (undefined)",
    "out of bounds",
)


def classify_failure(entry: Entry, error: str | None, cause: str | None) -> tuple[str, str]:
    """``(category, reason)`` for a failed execution."""
    error = error or ""
    text = f"{error} {cause or ''}"
    if error in PYTHON_ERRORS or "Traceback" in text or "runner error" in text:
        return "engine-error", error
    fails = {
        node.get("Error")
        for node in walk_dicts(entry.definition)
        if node.get("Type") == "Fail" and isinstance(node.get("Error"), str)
    }
    if error in fails or (not error and cause is None):
        return "failed", "the definition's own Fail state"
    if error == "States.NoChoiceMatched" or any(marker in text for marker in DATA_CAUSES):
        return "failed", f"{error}: the data lacks a path it reads (input {{}}, echoing Lambda)"
    if error == "States.ItemReaderFailed":
        return "failed", f"{error} (no such object in the stand-in S3)"
    if error.startswith("States.") and error not in ("States.TaskFailed", "States.Timeout"):
        # Not the data, not a service: the engine's own doing, to review.
        return "engine-error", f"{error}: {(cause or '')[:200]}"
    return "failed", f"{error} (stand-in service)"


def machine_name(entry: Entry) -> str:
    """The state machine name a definition is registered under: its file's, shortened."""
    stem = entry.file.split("/", 1)[-1].removesuffix(".asl.json")
    tag = hashlib.sha1(entry.file.encode()).hexdigest()[:6]
    return f"{re.sub(r'[^A-Za-z0-9_-]+', '-', stem)[:70]}-{tag}"


def answer_callbacks(execution_id: str, answered: set[str]) -> None:
    """Answer every task token the execution waits for (once each) with ``{}``.

    The stand-in for the other side of a ``.waitForTaskToken`` Task: the approver, the
    external system, the Lambda function that would call SendTaskSuccess.
    """
    from orchestrator import describe_execution, send_task_success
    from orchestrator.errors import TaskTokenError
    from orchestrator.ui.data import waiting_token

    for step in describe_execution(execution_id).steps:
        if step.status != "WAITING":
            continue
        try:
            token = waiting_token(execution_id, step.key)
        except LookupError:
            continue  # waiting on something else (a .sync job or child)
        if token not in answered:
            answered.add(token)
            with contextlib.suppress(TaskTokenError):
                send_task_success(token, {})


def run_one(entry: Entry, deadline: float, callbacks: bool = True) -> dict[str, Any]:
    """Validate and run one definition; its result record.

    With ``callbacks``, the harness answers the task tokens the execution waits for.
    """
    from orchestrator import (
        create_state_machine,
        describe_execution,
        start_workflow,
        stop_execution,
    )
    from orchestrator.errors import DefinitionError

    record: dict[str, Any] = {
        "file": entry.file,
        "source": entry.source,
        "substitutions": entry.substitutions,
        "lambdas": sorted(entry.lambdas),
        "activity_arns": sorted(entry.activities),
        "children": {
            n: ("stand-in" if d is STAND_IN_CHILD else "corpus") for n, d in entry.children.items()
        },
        "max_wait_s": max_literal_wait(entry.definition),
        "input": entry.input,
        "input_source": entry.input_source,
    }
    started = time.monotonic()
    answered: set[str] = set()
    record["callbacks_answered"] = answered
    problem = validate(entry)
    if problem is not None:
        return {**record, "category": "rejected", "reason": problem, "seconds": 0.0}
    try:
        # Registered and started by name, as on AWS: $$.StateMachine.Id is its ARN, which
        # the definition may hand to the Step Functions API (aws-sdk:sfn:listExecutions).
        machine = machine_name(entry)
        create_state_machine(machine, entry.definition)
        handle = start_workflow(machine, entry.input, name=f"pub-{uuid.uuid4().hex[:20]}")
    except DefinitionError as exc:
        return {**record, "category": "rejected", "reason": f"at start: {exc}", "seconds": 0.0}
    except Exception as exc:  # noqa: BLE001 - an engine failure to start is a finding
        return {
            **record,
            "category": "engine-error",
            "reason": f"start: {type(exc).__name__}: {exc}",
        }
    record["execution_id"] = handle.execution_id
    ends = time.monotonic() + deadline
    try:
        while True:
            try:
                result = handle.result(max(0.1, min(2.0, ends - time.monotonic())))
                break
            except TimeoutError:
                if time.monotonic() >= ends:
                    raise
                if callbacks:
                    answer_callbacks(handle.execution_id, answered)
    except TimeoutError:
        description = describe_execution(handle.execution_id)
        with contextlib.suppress(Exception):
            stop_execution(handle.execution_id, error="Harness.Deadline", cause="deadline")
        return {
            **record,
            "category": "running",
            "reason": f"at {deadline:.0f} s: {_where(description)}",
            "seconds": round(time.monotonic() - started, 1),
        }
    except Exception as exc:  # noqa: BLE001 - the engine failed to report the end
        return {
            **record,
            "category": "engine-error",
            "reason": f"result: {type(exc).__name__}: {exc}",
        }
    status = getattr(result.status, "value", result.status)
    record.update(
        status=status,
        error=result.error,
        cause=(result.cause or "")[:2000] or None,
        output=result.output if status == "SUCCEEDED" else None,
        seconds=round(time.monotonic() - started, 1),
    )
    if status == "SUCCEEDED":
        return {**record, "category": "succeeded", "reason": ""}
    category, reason = classify_failure(entry, result.error, result.cause)
    return {**record, "category": category, "reason": f"{status}: {reason}"}


def run_all(
    entries: list[Entry], deadline: float, workers: int, callbacks: bool = True
) -> list[dict[str, Any]]:
    """Run ``entries`` on a fresh moto server and local orchestrator; their records."""
    import logging

    from orchestrator.testing import local_orchestrator

    for noisy in ("celery", "werkzeug", "orchestrator"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    with moto_server():
        refused = register_activities(entries)
        with local_orchestrator(task_modules=[], concurrency=32), step_functions_endpoint():
            child_problems = register_children(entries)
            setup: dict[str, list[str]] = {}
            for entry in entries:
                setup[entry.file] = create_resources(needed_resources(entry.definition))
            with ThreadPoolExecutor(max_workers=workers) as pool:
                records = list(pool.map(lambda e: run_one(e, deadline, callbacks), entries))
    for record in records:
        # The tokens themselves stay out of the results: how many were answered.
        record["callbacks_answered"] = len(record["callbacks_answered"])
        record["setup_problems"] = setup.get(record["file"], [])
        record["child_problems"] = {
            n: child_problems[n] for n in record["children"] if n in child_problems
        }
    if refused:
        print("activities not registered:", *refused, sep="\n  ", file=sys.stderr)
    return records


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per category and per reason, and the share accepted and run unchanged."""
    total = len(records)
    categories = Counter(r["category"] for r in records)
    accepted = total - categories["rejected"] - categories["engine-error"]
    reasons: Counter[str] = Counter()
    for record in records:
        if record["category"] in ("failed", "running", "rejected", "engine-error"):
            reasons[f"{record['category']}: {_reason_kind(record)}"] += 1
    return {
        "total": total,
        "categories": dict(categories),
        "accepted": accepted,
        "accepted_percent": round(100.0 * accepted / total, 1) if total else 0.0,
        "succeeded_percent": round(100.0 * categories["succeeded"] / total, 1) if total else 0.0,
        "reasons": dict(reasons.most_common()),
    }


def _reason_kind(record: dict[str, Any]) -> str:
    reason = str(record.get("reason", ""))
    if record["category"] == "running":
        if "WAITING" in reason:
            return "waiting (Wait state or callback token)"
        return "still running (retries or long steps)"
    if record["category"] == "rejected":
        match = re.search(r"the ([\w:.-]+) integration", reason)
        return match.group(1) if match else reason[:100]
    if record["category"] == "failed":
        return re.sub(r"^\w+: ", "", reason)[:100]
    return reason[:100]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=90.0, help="seconds per execution")
    parser.add_argument("--workers", type=int, default=24, help="executions at once")
    parser.add_argument("--json", type=Path, default=None, help="write per-definition results")
    parser.add_argument("--only", action="append", default=None, help="run files containing this")
    parser.add_argument("--no-callbacks", action="store_true", help="leave task tokens unanswered")
    args = parser.parse_args(argv)
    try:
        entries = load_corpus()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.only:
        entries = [e for e in entries if any(o in e.file for o in args.only)]
    started = time.monotonic()
    records = run_all(entries, args.deadline, args.workers, not args.no_callbacks)
    summary = summarize(records)
    width = max(len(r["file"]) for r in records)
    for record in records:
        reason = str(record.get("reason", ""))[:160]
        print(f"{record['file']:<{width}}  {record['category']:<12}  {reason}")
    print()
    for name, count in sorted(summary["categories"].items()):
        print(f"{name:<14} {count:>4}")
    print(f"{'total':<14} {summary['total']:>4}")
    print(
        f"accepted and run unchanged: {summary['accepted']}/{summary['total']} "
        f"= {summary['accepted_percent']} % ({time.monotonic() - started:.0f} s); "
        f"succeeded: {summary['succeeded_percent']} %"
    )
    print("reasons for the rest:")
    for reason, count in summary["reasons"].items():
        print(f"  {count:>3}  {reason}")
    if args.json:
        args.json.write_text(
            json.dumps({"summary": summary, "results": records}, indent=1, default=str) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
