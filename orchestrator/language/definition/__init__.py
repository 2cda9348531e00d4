"""State machine definitions: the ASL model, loading and validation.

``parse_definition`` is the entry point; it returns an immutable ``StateMachine`` or raises
``orchestrator.errors.DefinitionError`` listing every problem.
"""

from orchestrator.language.definition.model import (
    COMPARISON_OPERATORS,
    Branch,
    Catcher,
    ChoiceRule,
    ChoiceState,
    FailState,
    MapState,
    ParallelState,
    PassState,
    Retrier,
    State,
    StateMachine,
    SucceedState,
    TaskState,
    WaitState,
    walk_scope,
)
from orchestrator.language.definition.parser import ResourceCheck, load_source, parse_definition
from orchestrator.language.definition.validate import (
    check_path,
    is_jsonata_expression,
    parse_timestamp,
)

__all__ = [
    "COMPARISON_OPERATORS",
    "Branch",
    "Catcher",
    "ChoiceRule",
    "ChoiceState",
    "FailState",
    "MapState",
    "ParallelState",
    "PassState",
    "ResourceCheck",
    "Retrier",
    "State",
    "StateMachine",
    "SucceedState",
    "TaskState",
    "WaitState",
    "check_path",
    "is_jsonata_expression",
    "load_source",
    "parse_definition",
    "parse_timestamp",
    "walk_scope",
]
