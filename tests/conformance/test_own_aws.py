"""The project's own conformance cases for the AWS service integrations
(``tests/conformance/own/aws``).

Realistic definitions as written for Step Functions (optimized DynamoDB, SNS, SQS and
EventBridge integrations, ``aws-sdk:`` calls), run unchanged against moto's server
(``tests.aws.local_aws``: every boto3 client pointed at it with ``AWS_ENDPOINT_URL``),
with the table, bucket, queues and topic they name created first. Each case's
``expected.json`` is what AWS gives for the same calls (the result shapes and error names
are AWS's), compared as the recorded corpus is (``orchestrator.conformance.compare``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import conformance
from orchestrator.engine.items import aws
from tests.aws import local_aws

pytest.importorskip("boto3")  # the dev extra installs it; see pyproject.toml

OWN = Path(__file__).parent / "own"
CASES = conformance.load_cases(OWN, "aws")


@pytest.fixture(scope="module")
def services(orchestrator) -> Iterator[None]:
    """The AWS resources the definitions name, on moto's server."""
    with local_aws():
        aws.client("dynamodb").create_table(
            TableName="Orders",
            KeySchema=[{"AttributeName": "OrderId", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "OrderId", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        aws.client("s3").create_bucket(Bucket="acme-invoices")
        for queue in ("order-events", "audit-events"):
            aws.client("sqs").create_queue(QueueName=queue)
        aws.client("sns").create_topic(Name="order-notifications")
        yield


def test_the_own_corpus_is_there() -> None:
    assert len(CASES) >= 5, [case.id for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_case(case: conformance.Case, services: None) -> None:
    outcome = conformance.run_case(case, timeout=30)
    assert outcome.passed, (outcome.detail, outcome.actual)
