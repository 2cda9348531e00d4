"""Every public definition of ``tests/conformance/public`` passes the project's validator.

The corpus is AWS's published sample state machines (third-party data: see its NOTICE),
with their template placeholders filled in as ``benchmarks/public_definitions.py`` does
and their Lambda functions registered as echoing activities (at collection: a running
worker does not learn new tasks). The corpus is read at collection; without it collection
fails, so no definition can silently vanish. Definitions the engine still refuses are
listed in ``GAPS`` with the part of the refusal that names the gap; a listed definition
that validates fails too, so the list shrinks as gaps close. Running them all (minutes:
Waits run on the wall clock) is the benchmark's job: ``python
benchmarks/public_definitions.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks import public_definitions as public

SOURCES = public.load_sources()
ENTRIES = public.load_corpus()
public.register_activities(ENTRIES)

COLLECTION = "step-functions-workflows-collection/"
EXAMPLES = "aws-stepfunctions-examples/"
PATTERNS = "serverless-patterns/"
#: Definitions the validator refuses, with what the refusal must say: the engine's gaps
#: (or, where noted, a definition Step Functions itself would refuse).
GAPS: dict[str, str] = {
    # A path ending in '.': Jayway's JSONPath (Step Functions') refuses it too.
    EXAMPLES + "app-concurrency-control--concurrency-control-flow.asl.json": (
        "invalid JSONPath '$.flag.Payload.'"
    ),
    # Athena's request-response integrations (its .sync form is supported).
    EXAMPLES + "app-s3-athena-dataprocessing--execute_athena_query.asl.json": (
        "athena:startQueryExecution integration"
    ),
    # API Gateway's callback form.
    COLLECTION + "checkout-processing-workflow--checkout_workflow.asl.json": (
        "apigateway:invoke.waitForTaskToken integration"
    ),
    # The HTTP Task's InvocationConfig.ConnectionArn (AWS's newer name for the connection).
    COLLECTION + "distributed-data-stream-aggregator--data-processing-child.asl.json": (
        "http:invoke does not take InvocationConfig"
    ),
    # The sample's own unfilled placeholder: a FunctionName no activity can have. Step
    # Functions accepts any string there and fails at run time; the validator refuses.
    COLLECTION + "ingest-and-analyze-historical-storm-events--statemachine.asl.json": (
        "no registered activity for FunctionName 'arn:aws:lambda:us-east-1:<account_number>"
    ),
    # The sample's own mistake ("Next": "Choice", no such state): Step Functions refuses
    # it too.
    COLLECTION + "lookout-for-vision-inference-sam--statemachine.asl.json": (
        "$.States.L4V Inference.Next: no state named 'Choice'"
    ),
    # EMR's and MediaConvert's integrations.
    COLLECTION + "manage-emr-job-cdk--statemachine.asl.json": (
        "elasticmapreduce:createCluster.sync integration"
    ),
    COLLECTION + "segment-detection-workflow--statemachine.asl.json": (
        "mediaconvert:createJob.sync integration"
    ),
}


def test_the_corpus_is_complete() -> None:
    # Every listed file is on disk and every file on disk is listed, with its provenance.
    on_disk = {str(path.relative_to(public.CORPUS)) for path in public.CORPUS.glob("*/*.asl.json")}
    assert {source["file"] for source in SOURCES} == on_disk
    assert len(ENTRIES) == len(SOURCES) >= 100
    for source in SOURCES:
        assert source["license"] == "MIT-0"
        assert source["repository"].startswith("https://github.com/aws-samples/")
        assert len(source["commit"]) == 40


def test_placeholders_are_all_filled_in() -> None:
    for entry in ENTRIES:
        assert "${" not in json.dumps(entry.definition), entry.file


def test_the_gaps_are_corpus_files() -> None:
    assert set(GAPS) <= {entry.file for entry in ENTRIES}


def test_a_missing_corpus_fails_loudly(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError, match="no public-definitions corpus"):
        public.load_sources(tmp_path)


@pytest.mark.parametrize("entry", ENTRIES, ids=[entry.file for entry in ENTRIES])
def test_definition_validates(entry: public.Entry, orchestrator: Any) -> None:
    problem = public.validate(entry)
    gap = GAPS.get(entry.file)
    if gap is None:
        assert problem is None, f"{entry.file} is refused: {problem}"
    else:
        assert problem is not None, f"{entry.file} validates now: remove it from GAPS"
        assert gap in problem, problem
