"""Task Resources that name a Step Functions service integration: pure parsing.

``arn:aws:states:::http:invoke`` and its region-qualified form
``arn:aws:states:us-east-1:123456789012:http:invoke`` (any partition, region and account)
name the same integration, ``http:invoke``: the *integration name* is
``SERVICE:ACTION`` with the integration pattern's suffix kept (``.sync``, ``.sync:2``,
``.waitForTaskToken``), so that a registry can tell the patterns apart.

The ARNs of other Step Functions resources (``activity:``, ``stateMachine:``,
``execution:``...) are not integrations. Nothing here knows which integrations exist:
:mod:`orchestrator.engine.integrations` does.
"""

from __future__ import annotations

import re

#: ``arn:PARTITION:states:REGION:ACCOUNT:SERVICE:ACTION[SUFFIX]``.
STATES_ARN = re.compile(
    r"^arn:aws[a-z-]*:states:(?P<region>[^:]*):(?P<account>[^:]*):"
    r"(?P<service>[A-Za-z0-9-]+):(?P<action>[A-Za-z0-9_.-]+(?::[A-Za-z0-9_.:-]+)?)$"
)
#: Step Functions resource types with ARNs that are no service integration.
NOT_INTEGRATIONS = frozenset(
    {"activity", "stateMachine", "execution", "express", "mapRun", "labelledExecution"}
)
#: Integration pattern suffixes, longest first.
SUFFIXES = (".waitForTaskToken", ".sync:2", ".sync")


def integration_name(resource: str) -> str | None:
    """``SERVICE:ACTION[SUFFIX]`` of an integration ARN (any region and account), or None.

    ``arn:aws:states:::aws-sdk:s3:getObject`` gives ``aws-sdk:s3:getObject``.
    """
    match = STATES_ARN.match(resource)
    if match is None or match.group("service") in NOT_INTEGRATIONS:
        return None
    return f"{match.group('service')}:{match.group('action')}"


def without_suffix(name: str) -> tuple[str, str]:
    """An integration name split into its base and its pattern suffix (``""``: none)."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


def resource_fields(resource: str) -> dict[str, str]:
    """``resourceType`` and ``resource`` as Step Functions writes them in the Task events
    of an integration (``{"resourceType": "http", "resource": "invoke"}``); ``{}`` for a
    Resource that is no integration ARN."""
    name = integration_name(resource)
    if name is None:
        return {}
    service, _, action = name.partition(":")
    return {"resourceType": service, "resource": action}
