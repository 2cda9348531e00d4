"""Lambda functions named with a qualifier or a partial ARN run their activity end to end
(issue 14 item 7)."""

from __future__ import annotations

import pytest

from orchestrator import ExecutionStatus
from tests.helpers import machine, run_workflow

pytestmark = pytest.mark.usefixtures("orchestrator")


def test_lambda_function_names_with_qualifiers_and_partial_arns_run() -> None:
    definition = machine(
        {
            "ByAlias": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "echo:prod", "Payload.$": "$"},
                "ResultSelector": {"v.$": "$.Payload.v"},
                "Next": "ByPartialArn",
            },
            "ByPartialArn": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "123456789012:function:echo:7", "Payload.$": "$"},
                "OutputPath": "$.Payload",
                "Next": "ByQualifiedArn",
            },
            "ByQualifiedArn": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:eu-west-1:000000000000:function:echo:$LATEST",
                "End": True,
            },
        }
    )
    _handle, result = run_workflow(definition, {"v": 3})
    assert result.status is ExecutionStatus.SUCCEEDED, result
    assert result.output == {"v": 3}
