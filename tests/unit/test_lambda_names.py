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


#: The lambda:invoke integration as a definition may name it: any partition, region and
#: account, as any integration ARN.
INVOKE_FORMS = [
    "arn:aws:states:::lambda:invoke",
    "arn:aws:states:us-east-1:123456789012:lambda:invoke",
    "arn:aws-us-gov:states:us-gov-west-1:123456789012:lambda:invoke",
]


@pytest.mark.parametrize("resource", INVOKE_FORMS)
@pytest.mark.parametrize("suffix", ["", ".waitForTaskToken"])
def test_a_region_qualified_lambda_invoke_is_lambda_invoke(resource: str, suffix: str) -> None:
    from orchestrator.language.interpreter import is_lambda_invoke

    assert is_lambda_invoke(resource + suffix)


@pytest.mark.parametrize(
    "resource",
    [
        "arn:aws:states:::lambda:invokeAsync",
        "arn:aws:states:us-east-1:123456789012:lambda:invoke.sync",
        "arn:aws:states:us-east-1:123456789012:activity:lambda",
        "arn:aws:lambda:us-east-1:123456789012:function:invoke",
        "",
    ],
)
def test_other_resources_are_not_lambda_invoke(resource: str) -> None:
    from orchestrator.language.interpreter import is_lambda_invoke

    assert not is_lambda_invoke(resource)


def _invoke_definition(resource: str, function: str) -> dict[str, Any]:
    params: dict[str, Any] = {"FunctionName": function, "Payload": {"x.$": "$.x"}}
    if resource.endswith(".waitForTaskToken"):
        params["Payload"]["token.$"] = "$$.Task.Token"
    return {
        "StartAt": "Invoke",
        "States": {
            "Invoke": {"Type": "Task", "Resource": resource, "Parameters": params, "End": True}
        },
    }


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("resource", INVOKE_FORMS)
@pytest.mark.parametrize("suffix", ["", ".waitForTaskToken"])
def test_a_region_qualified_lambda_invoke_resolves_like_the_unqualified_one(
    resource: str, suffix: str
) -> None:
    """The function comes from FunctionName (validated against the activities), the
    payload is the effective input, the result wrapped in Lambda's envelope (not for the
    callback form, whose answer is the token's), exactly as for the unqualified ARN."""
    from orchestrator.language.interpreter import ExecutionInfo, Interpreter

    resource += suffix
    function = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION}"
    definition = _invoke_definition(resource, function)
    machine = parse_definition(definition, resource_check=activities.resource_problem)
    info = ExecutionInfo("e", "e", "wf", 0.0, {"x": 1})
    interp = Interpreter(
        machine,
        info,
        activities.resolve,
        resolve_name=activities.resolve_name,
        new_token=lambda: "tok",
    )
    tr = interp.start(0.0)
    (dispatch,) = tr.dispatches
    assert dispatch.activity == FUNCTION
    record = tr.records["Invoke"]
    assert record is not None
    if suffix:
        assert dispatch.params == {"x": 1, "token": "tok"}
        assert not record.envelope and tr.tokens == {"tok": ["Invoke", 0]}
    else:
        assert dispatch.params == {"x": 1}
        assert record.envelope
        done = interp.task_succeeded("Invoke", record, {"ok": True}, 0.0)
        assert done.end is not None and done.end["output"]["Payload"] == {"ok": True}
    scheduled = next(e for e in tr.events if e["type"] == "TaskScheduled")
    assert (scheduled["resourceType"], scheduled["resource"]) == ("lambda", "invoke" + suffix)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("resource", INVOKE_FORMS[1:])
def test_a_region_qualified_lambda_invoke_refuses_an_unknown_function(resource: str) -> None:
    definition = _invoke_definition(resource, "resize-imag_v2")
    with pytest.raises(DefinitionError) as caught:
        parse_definition(definition, resource_check=activities.resource_problem)
    assert f"did you mean {FUNCTION!r}" in str(caught.value)
