"""Built-in service integrations: Task Resources the workers serve without user code.

An integration is a function that workers run like an activity: the state's effective
Parameters in, its result out, an exception (a :class:`~orchestrator.errors.StatesError`
for a named error) failing the attempt. Each is a built-in Celery task
(``orchestrator.integration.<name>``, :mod:`orchestrator.engine.activities` makes it)
that every worker consuming the default queue serves, so Retry/Catch, TimeoutSeconds,
heartbeats, cancellation and the history work as for activities.

The registry is keyed by the integration name of
:func:`orchestrator.language.resources.integration_name` (``http:invoke``; a
region-qualified ARN normalizes to the same). Resolution
(:func:`orchestrator.engine.activities.resolve_name`): an activity bound to the Resource
(``@activity("x", resources=[...])`` or ``ORCHESTRATOR_RESOURCE_ALIASES``) wins, then a
built-in integration here, else a definition error naming the integration
(:func:`unsupported`).

Services in :data:`ENGINE_SERVICES` (``states:*``: child workflows) are the engine's own,
run by the interpreter rather than as a worker task: this registry never claims them, and
:func:`engine_handles` is where the engine says which of their Resources it runs.

An integration may also serve its ``.waitForTaskToken`` form (``callback``: the same
call, then the step waits for the token the Parameters passed on), and a *family*
integration serves every name under its prefix (``aws-sdk``: ``aws-sdk:SERVICE:ACTION``);
it learns which one from :attr:`ActivityContext.resource
<orchestrator.engine.context.ActivityContext.resource>`, and checks it at definition time
with its ``resource_check``.

One module per integration (``http``: the HTTP Task; ``aws_optimized``: DynamoDB, SNS,
SQS, EventBridge; ``aws_sdk``: every service boto3 knows; ``aws_jobs``: the ``.sync``
jobs of Athena, Glue, Batch, ECS and CodeBuild; ``bedrock``; ``apigateway``), each
registering with :func:`integration`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.language.children import child_mode
from orchestrator.language.resources import integration_name, without_suffix

#: Prefix of the Celery task names of the built-in integrations.
TASK_PREFIX = "orchestrator.integration."
#: Services the engine runs itself (in the interpreter), never a worker task of this
#: registry: ``states:startExecution`` and its patterns (child workflows).
ENGINE_SERVICES = frozenset({"states"})

#: A definition-time check of a Task state's static Parameters (a dict, or None when they
#: are known only at run time): a problem, or None.
ParametersCheck = Callable[[Mapping[str, Any] | None], str | None]
#: A family integration's definition-time check of one of its Resources and its static
#: Parameters: a problem, or None.
ResourceCheck = Callable[[str, Mapping[str, Any] | None], str | None]
#: The callback pattern's suffix.
WAIT_FOR_TOKEN = ".waitForTaskToken"


@dataclass(frozen=True)
class Integration:
    """A built-in integration."""

    name: str
    """Its integration name (``http:invoke``)."""
    function: Callable[[Any], Any]
    """Runs one attempt: the state's effective Parameters -> its result."""
    check: ParametersCheck | None = None
    callback: bool = False
    """It also serves ``NAME.waitForTaskToken``."""
    family: bool = False
    """``name`` is a prefix (``aws-sdk``): it serves every ``NAME:...`` its
    ``resource_check`` does not refuse."""
    resource_check: ResourceCheck | None = None

    @property
    def task_name(self) -> str:
        """Its Celery task (the step's ``activity`` in records and messages)."""
        return TASK_PREFIX + self.name

    @property
    def label(self) -> str:
        """How messages list it (``aws-sdk:*``, ``sqs:sendMessage[.waitForTaskToken]``)."""
        name = f"{self.name}:*" if self.family else self.name
        return f"{name}[{WAIT_FOR_TOKEN}]" if self.callback else name


_integrations: dict[str, Integration] = {}


def integration(
    name: str,
    *,
    check: ParametersCheck | None = None,
    callback: bool = False,
    family: bool = False,
    resource_check: ResourceCheck | None = None,
) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register a built-in integration under its integration name (a decorator); see
    :class:`Integration` for ``callback``, ``family`` and ``resource_check``."""
    if name.partition(":")[0] in ENGINE_SERVICES:
        raise ValueError(f"{name!r}: the engine runs the {ENGINE_SERVICES} services itself")

    def decorator(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _integrations[name] = Integration(name, function, check, callback, family, resource_check)
        return function

    return decorator


def all_integrations() -> list[Integration]:
    """Every built-in integration, by name."""
    return [_integrations[name] for name in sorted(_integrations)]


def for_resource(resource: str) -> Integration | None:
    """The built-in integration a Resource names (any region and account), or None.

    Its exact name first, then its ``.waitForTaskToken`` form's base (a ``callback``
    one), then a family's prefix; a family's integration comes back with its ``check``
    bound to this Resource."""
    name = integration_name(resource)
    if name is None or name.partition(":")[0] in ENGINE_SERVICES or engine_handles(resource):
        return None
    found = _integrations.get(name)
    if found is not None and not found.family:
        return found
    base, suffix = without_suffix(name)
    if suffix == WAIT_FOR_TOKEN:
        found = _integrations.get(base)
        if found is not None and found.callback and not found.family:
            return found
    family = _integrations.get(name.partition(":")[0])
    if family is None or not family.family or (suffix and not family.callback):
        return None
    if suffix not in ("", WAIT_FOR_TOKEN):
        return None
    resource_check = family.resource_check
    if resource_check is None:
        return family
    return dataclasses.replace(family, check=lambda params: resource_check(resource, params))


def by_task_name(task_name: str) -> Integration | None:
    """The integration whose Celery task this is, or None."""
    if not task_name.startswith(TASK_PREFIX):
        return None
    return _integrations.get(task_name[len(TASK_PREFIX) :])


def engine_handles(resource: str) -> bool:
    """Whether the engine itself runs this Resource (an :data:`ENGINE_SERVICES` one): the
    child workflows the interpreter starts (``states:startExecution`` and its patterns,
    :mod:`orchestrator.language.children`). Any other ``states:*`` Resource is reported
    unsupported unless an activity is bound to it."""
    return child_mode(resource) is not None


def unsupported(resource: str) -> str:
    """Why a Resource naming an integration nobody serves is refused, and how to bind it."""
    name = integration_name(resource)
    base = without_suffix(name)[0] if name else resource
    what = f"the {name} integration" if name else "this Resource"
    supported = ", ".join(i.label for i in all_integrations()) or "none"
    return (
        f"{what} ({resource!r}) is not supported (built-in integrations: {supported}); "
        f'bind it to your own code with an activity, @activity("my-{_slug(base)}", '
        f"resources=[{resource!r}]), or map it to one in ORCHESTRATOR_RESOURCE_ALIASES "
        f'(a JSON object: {{{_json(resource)}: "my-activity"}})'
    )


def fields_problem(
    name: str, params: Mapping[str, Any], fields: Collection[str], required: Collection[str]
) -> str | None:
    """The problem with static Parameters' field names (``X.$`` counts as ``X``): a field
    ``name`` does not take, or a required one missing; None when there is none."""
    given = {key.removesuffix(".$") for key in params}
    unknown = sorted(given - set(fields))
    if unknown:
        return f"{name} does not take {', '.join(unknown)} (fields: {', '.join(sorted(fields))})"
    for field in required:
        if field not in given:
            return f"{name} needs {field} in Parameters (or Arguments)"
    return None


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.rpartition(":")[2]).strip("-") or "x"


def _json(text: str) -> str:
    return json.dumps(text)


# The integrations: each module registers itself when imported.
from orchestrator.engine.integrations import apigateway as apigateway  # noqa: E402
from orchestrator.engine.integrations import aws_jobs as aws_jobs  # noqa: E402
from orchestrator.engine.integrations import aws_optimized as aws_optimized  # noqa: E402
from orchestrator.engine.integrations import aws_sdk as aws_sdk  # noqa: E402
from orchestrator.engine.integrations import bedrock as bedrock  # noqa: E402
from orchestrator.engine.integrations import http as http  # noqa: E402
