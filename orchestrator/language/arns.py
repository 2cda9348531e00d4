"""ARNs where Step Functions has ARNs: the one place they are formed and read back.

An execution's ARN is ``arn:aws:states:REGION:ACCOUNT:execution:WORKFLOW:NAME`` and a
workflow's ``arn:aws:states:REGION:ACCOUNT:stateMachine:WORKFLOW``, exactly as AWS forms
them, so a definition that splits ``$$.Execution.Id`` on ``:`` reads the same parts
(item 6 the workflow, item 7 the name). REGION and ACCOUNT are the configured ones
(``ORCHESTRATOR_REGION``, ``ORCHESTRATOR_ACCOUNT_ID``; see :mod:`orchestrator.config`)
unless given. Execution names and workflow names hold no colon, so an ARN's last part is
always the name.
"""

from __future__ import annotations

from orchestrator.config import get_settings

__all__ = [
    "execution_arn",
    "execution_id_from",
    "map_run_arn",
    "partition_region_account",
    "state_machine_arn",
]

#: Resource types whose ARN ends with an execution's name (``express``: an Express
#: execution's ARN on AWS, e.g. a Distributed Map's EXPRESS child).
_EXECUTION_TYPES = ("execution", "express")


def partition_region_account(
    region: str | None = None, account: str | None = None
) -> tuple[str, str]:
    """``(region, account)``: those given, else the configured ones."""
    if region is None or account is None:
        # Read when called: the settings in force may be bound to this context.
        settings = get_settings()
        region = settings.region if region is None else region
        account = settings.account_id if account is None else account
    return region, account


def state_machine_arn(
    workflow: str, *, region: str | None = None, account: str | None = None
) -> str:
    """``arn:aws:states:REGION:ACCOUNT:stateMachine:WORKFLOW`` (``$$.StateMachine.Id``)."""
    region, account = partition_region_account(region, account)
    return f"arn:aws:states:{region}:{account}:stateMachine:{workflow}"


def execution_arn(
    workflow: str, name: str, *, region: str | None = None, account: str | None = None
) -> str:
    """``arn:aws:states:REGION:ACCOUNT:execution:WORKFLOW:NAME`` (``$$.Execution.Id``).

    ``name`` is the execution's name, which is also its id here.
    """
    region, account = partition_region_account(region, account)
    return f"arn:aws:states:{region}:{account}:execution:{workflow}:{name}"


def map_run_arn(
    workflow: str,
    label: str,
    run: str,
    *,
    region: str | None = None,
    account: str | None = None,
) -> str:
    """``arn:aws:states:REGION:ACCOUNT:mapRun:WORKFLOW/LABEL:RUN`` (a Map Run's ARN)."""
    region, account = partition_region_account(region, account)
    return f"arn:aws:states:{region}:{account}:mapRun:{workflow}/{label}:{run}"


def execution_id_from(id_or_arn: str) -> str:
    """The execution id an API caller means: an execution ARN's name, else ``id_or_arn``.

    Any region, account and partition are accepted (an ARN copied from AWS, or formed
    under other settings). Anything that is not an execution ARN is returned as it is,
    for the caller's own check of ids to refuse (an id holds no colon).
    """
    if not isinstance(id_or_arn, str) or not id_or_arn.startswith("arn:"):
        return id_or_arn
    parts = id_or_arn.split(":")
    # arn : partition : states : region : account : execution : workflow : name (the
    # workflow of a Distributed Map's child, <parent's>/<label>, may hold a colon)
    if len(parts) >= 8 and parts[2] == "states" and parts[5] in _EXECUTION_TYPES:
        if parts[6] and parts[-1]:
            return parts[-1]
    return id_or_arn
