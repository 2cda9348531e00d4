"""Lambda functions named in every form AWS accepts (issue 14 item 7): each runs the
activity named after the function."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.engine import activities
from orchestrator.errors import DefinitionError
from orchestrator.language.definition import parse_definition

FUNCTION = "resize-image_v2"

#: Every form of FunctionName (and of a Lambda Resource) AWS accepts.
FORMS = [
    FUNCTION,
    f"{FUNCTION}:prod",
    f"{FUNCTION}:7",
    f"{FUNCTION}:$LATEST",
    f"123456789012:function:{FUNCTION}",
    f"123456789012:function:{FUNCTION}:live",
    f"us-west-2:123456789012:function:{FUNCTION}",
    f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}",
    f"arn:aws:lambda:eu-west-1:000000000000:function:{FUNCTION}:prod",
    f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}:$LATEST",
    f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}:12",
    f"arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:{FUNCTION}",
    f"arn:aws-cn:lambda:cn-north-1:123456789012:function:{FUNCTION}:blue",
]

#: Not a Lambda function: no activity is read out of them.
NOT_LAMBDA = [
    "urn:billing:charge",
    f"{FUNCTION}:a:b",
    f"123:function:{FUNCTION}",
    f"123456789012:{FUNCTION}",
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:::sns:publish",
    f"arn:aws:lambda:us-east-1:123456789012:layer:{FUNCTION}",
    f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}:bad.qualifier",
]


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The activity ``FUNCTION``, registered for the test; nothing advertised."""
    monkeypatch.setattr(activities, "_advertised", lambda: {})

    def resize(value: Any) -> Any:
        return value

    activities.activity(FUNCTION)(resize)
    try:
        yield
    finally:
        activities._registry.pop(FUNCTION, None)


@pytest.mark.parametrize("form", FORMS)
def test_every_form_names_the_function(form: str) -> None:
    match = activities.LAMBDA_ARN.match(form)
    assert match is not None and match.group("name") == FUNCTION


@pytest.mark.parametrize("form", NOT_LAMBDA)
def test_other_strings_name_no_function(form: str) -> None:
    match = activities.LAMBDA_ARN.match(form)
    assert match is None or match.group("name") != FUNCTION


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("form", FORMS)
def test_every_form_resolves_to_the_activity(form: str) -> None:
    assert activities.activity_name_for(form) == FUNCTION
    assert activities.resolve_name(form) == FUNCTION


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("form", FORMS)
def test_a_lambda_invoke_function_name_in_any_form_validates(form: str) -> None:
    definition = {
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": form, "Payload.$": "$"},
                "End": True,
            }
        },
    }
    parse_definition(definition, resource_check=activities.resource_problem)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("form", [f for f in FORMS if f.startswith("arn:")])
def test_a_lambda_arn_resource_in_any_form_validates(form: str) -> None:
    definition = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": form, "End": True}}}
    parse_definition(definition, resource_check=activities.resource_problem)


@pytest.mark.usefixtures("registered")
def test_an_unknown_function_in_any_form_is_refused_with_a_suggestion() -> None:
    definition = {
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {"FunctionName": "123456789012:function:resize-imag_v2:prod"},
                "End": True,
            }
        },
    }
    with pytest.raises(DefinitionError) as caught:
        parse_definition(definition, resource_check=activities.resource_problem)
    assert f"did you mean {FUNCTION!r}" in str(caught.value)
