"""ARNs where Step Functions has ARNs (orchestrator/language/arns.py)."""

from __future__ import annotations

import pytest

from orchestrator.config import Settings, settings_from_env, using_settings
from orchestrator.errors import ConfigurationError
from orchestrator.language import arns


def test_execution_and_state_machine_arns_as_aws_forms_them() -> None:
    arn = arns.execution_arn("orders", "run-1")
    assert arn == "arn:aws:states:us-east-1:123456789012:execution:orders:run-1"
    assert arns.state_machine_arn("orders") == (
        "arn:aws:states:us-east-1:123456789012:stateMachine:orders"
    )
    # A sample splits the execution ARN on ':' and reads item 6 (workflow) or 7 (name).
    parts = arn.split(":")
    assert (parts[6], parts[7]) == ("orders", "run-1")


def test_region_and_account_come_from_the_settings_in_force() -> None:
    with using_settings(Settings(region="eu-west-3", account_id="000011112222")):
        assert arns.execution_arn("w", "n") == "arn:aws:states:eu-west-3:000011112222:execution:w:n"
        assert arns.state_machine_arn("w").startswith("arn:aws:states:eu-west-3:000011112222:")
    assert arns.execution_arn("w", "n", region="ap-south-1", account="999999999999") == (
        "arn:aws:states:ap-south-1:999999999999:execution:w:n"
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("run-1", "run-1"),
        ("arn:aws:states:us-east-1:123456789012:execution:orders:run-1", "run-1"),
        # any partition, region and account: an ARN copied from elsewhere
        ("arn:aws-cn:states:cn-north-1:000000000000:execution:w:abc", "abc"),
        ("arn:aws:states:us-east-1:123456789012:express:w/label:abc.1.2", "abc.1.2"),
        # a Distributed Map child's workflow is <parent's>/<label>: a label may hold ':'
        ("arn:aws:states:us-east-1:123456789012:execution:w/Map: 1:abc.1.2", "abc.1.2"),
        # not an execution ARN: returned as it is, for the id check to refuse
        (
            "arn:aws:states:us-east-1:123456789012:stateMachine:orders",
            ("arn:aws:states:us-east-1:123456789012:stateMachine:orders"),
        ),
        (
            "arn:aws:states:us-east-1:123456789012:execution:orders",
            ("arn:aws:states:us-east-1:123456789012:execution:orders"),
        ),
        (
            "arn:aws:states:us-east-1:123456789012:execution::n",
            ("arn:aws:states:us-east-1:123456789012:execution::n"),
        ),
    ],
)
def test_execution_id_from(given: str, expected: str) -> None:
    assert arns.execution_id_from(given) == expected


def test_execution_id_from_round_trips() -> None:
    assert arns.execution_id_from(arns.execution_arn("wf.v2", "x_y-z")) == "x_y-z"


def test_malformed_region_or_account_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_ACCOUNT_ID"):
        settings_from_env(account_id="12")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_REGION"):
        settings_from_env(region="US East")
