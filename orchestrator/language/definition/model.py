"""Immutable pydantic model of an Amazon States Language state machine.

Attributes are snake_case; the ASL PascalCase names are their aliases, so
``Model.model_validate(asl_dict)`` reads ASL and ``to_asl()`` writes it back. Fields that the
definition did not set keep their defaults and are left out of ``to_asl()``, which makes
``parse_definition(machine.to_asl()) == machine`` hold.

The model only describes shape; the semantic rules (transitions, reachability, operand types,
exclusive fields...) live in :mod:`orchestrator.language.definition.validate`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

QueryLanguage = Literal["JSONPath", "JSONata"]

#: Every Choice comparison operator, as spelled in ASL.
COMPARISON_OPERATORS: frozenset[str] = frozenset(
    [
        *(
            f"{kind}{op}{suffix}"
            for kind in ("String", "Numeric", "Timestamp")
            for op in ("Equals", "LessThan", "GreaterThan", "LessThanEquals", "GreaterThanEquals")
            for suffix in ("", "Path")
        ),
        "StringMatches",
        "BooleanEquals",
        "BooleanEqualsPath",
        "IsNull",
        "IsPresent",
        "IsNumeric",
        "IsString",
        "IsBoolean",
        "IsTimestamp",
    ]
)

_CONFIG = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class _Model(BaseModel):
    model_config = _CONFIG


class Retrier(_Model):
    """One ``Retry`` rule of a Task, Parallel or Map state.

    Attributes:
        error_equals: Error names this rule handles (``States.ALL`` matches any error).
        interval_seconds: Delay before the first retry.
        max_attempts: Maximum number of retries (0 disables retrying).
        backoff_rate: Multiplier applied to the delay after each attempt.
        max_delay_seconds: Upper bound of the delay, if any.
        jitter_strategy: ``FULL`` randomises each delay in ``[0, delay]``.
        comment: Free text.
    """

    error_equals: tuple[str, ...] = Field(alias="ErrorEquals")
    interval_seconds: int = Field(1, alias="IntervalSeconds")
    max_attempts: int = Field(3, alias="MaxAttempts")
    backoff_rate: float = Field(2.0, alias="BackoffRate")
    max_delay_seconds: int | None = Field(None, alias="MaxDelaySeconds")
    jitter_strategy: Literal["FULL", "NONE"] = Field("NONE", alias="JitterStrategy")
    comment: str | None = Field(None, alias="Comment")


class Catcher(_Model):
    """One ``Catch`` rule of a Task, Parallel or Map state.

    Attributes:
        error_equals: Error names this rule handles.
        next: State to go to when it matches.
        result_path: Where the error object goes in the state input (``None``: discard it).
        assign: Variables to assign when it matches.
        output: JSONata output of the state when it matches.
        comment: Free text.
    """

    error_equals: tuple[str, ...] = Field(alias="ErrorEquals")
    next: str = Field(alias="Next")
    result_path: str | None = Field("$", alias="ResultPath")
    assign: Any = Field(None, alias="Assign")
    output: Any = Field(None, alias="Output")
    comment: str | None = Field(None, alias="Comment")


class ChoiceRule(_Model):
    """A Choice rule: a comparison, a boolean combination, or a JSONata ``Condition``.

    A comparison's ASL key (``"NumericLessThanPath": "$.limit"``) is stored as
    ``operator="NumericLessThanPath"`` and ``operand="$.limit"``.

    Attributes:
        variable: Path of the value compared (JSONPath rules).
        operator: Comparison operator name, e.g. ``StringEquals`` or ``IsPresent``.
        operand: The operator's value (a literal, or a path for ``...Path`` operators).
        and_: Sub-rules that must all match.
        or_: Sub-rules of which one must match.
        not_: Sub-rule that must not match.
        next: State to go to (top-level rules only).
        condition: JSONata condition (JSONata rules).
        assign: Variables assigned when the rule matches.
        output: JSONata output when the rule matches.
        comment: Free text.
    """

    variable: str | None = Field(None, alias="Variable")
    operator: str | None = None
    operand: Any = None
    and_: tuple[ChoiceRule, ...] | None = Field(None, alias="And")
    or_: tuple[ChoiceRule, ...] | None = Field(None, alias="Or")
    not_: ChoiceRule | None = Field(None, alias="Not")
    next: str | None = Field(None, alias="Next")
    condition: Any = Field(None, alias="Condition")
    assign: Any = Field(None, alias="Assign")
    output: Any = Field(None, alias="Output")
    comment: str | None = Field(None, alias="Comment")

    @model_validator(mode="before")
    @classmethod
    def _split_comparison(cls, data: Any) -> Any:
        # ASL spells the operator as a key; fold it into operator/operand so the model
        # does not need one field per operator.
        if not isinstance(data, dict):
            return data
        found = [key for key in data if key in COMPARISON_OPERATORS]
        if len(found) != 1 or "operator" in data:
            return data
        rest = {key: value for key, value in data.items() if key != found[0]}
        return {**rest, "operator": found[0], "operand": data[found[0]]}

    @model_serializer(mode="wrap")
    def _join_comparison(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if info.by_alias and "operator" in dumped:
            operator = dumped.pop("operator")
            operand = dumped.pop("operand", None)
            if operator is not None:
                dumped[operator] = operand
        return dumped


class Branch(_Model):
    """A nested scope of states: a Parallel branch or a Map item processor.

    Attributes:
        start_at: Name of the first state.
        states: The scope's states by name.
        comment: Free text.
        query_language: Default query language of the scope's states, if set.
        processor_config: Map only: raw ``ProcessorConfig`` (``Mode``, ``ExecutionType``).
    """

    start_at: str = Field(alias="StartAt")
    states: dict[str, State] = Field(alias="States")
    comment: str | None = Field(None, alias="Comment")
    query_language: QueryLanguage | None = Field(None, alias="QueryLanguage")
    processor_config: dict[str, Any] | None = Field(None, alias="ProcessorConfig")

    @property
    def processor_mode(self) -> str:
        """Map processor mode: ``INLINE`` (the default) or ``DISTRIBUTED``."""
        mode = (self.processor_config or {}).get("Mode")
        return mode if isinstance(mode, str) else "INLINE"

    def state(self, name: str) -> State:
        """Return the state called ``name`` (``KeyError`` if there is none)."""
        return self.states[name]


class _BaseState(_Model):
    # Declared first so that ``Type`` leads each state in ``to_asl()``; subclasses narrow it.
    type: str = Field(alias="Type")
    comment: str | None = Field(None, alias="Comment")
    query_language: QueryLanguage | None = Field(None, alias="QueryLanguage")


class _IOState(_BaseState):
    input_path: str | None = Field("$", alias="InputPath")
    output_path: str | None = Field("$", alias="OutputPath")
    output: Any = Field(None, alias="Output")


class _FlowState(_IOState):
    next: str | None = Field(None, alias="Next")
    end: bool = Field(False, alias="End")
    assign: Any = Field(None, alias="Assign")


class _ResultState(_FlowState):
    parameters: Any = Field(None, alias="Parameters")
    result_path: str | None = Field("$", alias="ResultPath")


class _WorkState(_ResultState):
    result_selector: Any = Field(None, alias="ResultSelector")
    retry: tuple[Retrier, ...] = Field((), alias="Retry")
    catch: tuple[Catcher, ...] = Field((), alias="Catch")


class TaskState(_WorkState):
    """A ``Task`` state: runs the work named by ``resource``.

    Attributes:
        resource: The resource URI (activity, Lambda ARN, service integration...).
        arguments: JSONata arguments passed to the resource.
        timeout_seconds: Task timeout (int, or a JSONata ``{% %}`` string).
        timeout_seconds_path: Path to the timeout in the input.
        heartbeat_seconds: Heartbeat timeout (int, or a JSONata string).
        heartbeat_seconds_path: Path to the heartbeat timeout in the input.
        credentials: Raw ``Credentials`` object.
    """

    type: Literal["Task"] = Field(alias="Type")
    resource: str = Field(alias="Resource")
    arguments: Any = Field(None, alias="Arguments")
    timeout_seconds: int | str | None = Field(None, alias="TimeoutSeconds")
    timeout_seconds_path: str | None = Field(None, alias="TimeoutSecondsPath")
    heartbeat_seconds: int | str | None = Field(None, alias="HeartbeatSeconds")
    heartbeat_seconds_path: str | None = Field(None, alias="HeartbeatSecondsPath")
    credentials: Any = Field(None, alias="Credentials")


class PassState(_ResultState):
    """A ``Pass`` state: passes its input (or ``result``) to its output.

    Attributes:
        result: The fixed result, when ``has_result``.
    """

    type: Literal["Pass"] = Field(alias="Type")
    result: Any = Field(None, alias="Result")

    @property
    def has_result(self) -> bool:
        """Whether ``Result`` was given (even as JSON null)."""
        return "result" in self.model_fields_set


class WaitState(_FlowState):
    """A ``Wait`` state: pauses for a duration or until a timestamp.

    Attributes:
        seconds: Seconds to wait (int, or a JSONata string).
        seconds_path: Path to the number of seconds in the input.
        timestamp: RFC 3339 timestamp to wait until (or a JSONata string).
        timestamp_path: Path to the timestamp in the input.
    """

    type: Literal["Wait"] = Field(alias="Type")
    seconds: int | str | None = Field(None, alias="Seconds")
    seconds_path: str | None = Field(None, alias="SecondsPath")
    timestamp: str | None = Field(None, alias="Timestamp")
    timestamp_path: str | None = Field(None, alias="TimestampPath")


class ChoiceState(_IOState):
    """A ``Choice`` state: goes to the ``next`` of the first matching rule.

    Attributes:
        choices: The rules, in order.
        default: State to go to when no rule matches.
        assign: Variables assigned by the state.
    """

    type: Literal["Choice"] = Field(alias="Type")
    choices: tuple[ChoiceRule, ...] = Field(alias="Choices")
    default: str | None = Field(None, alias="Default")
    assign: Any = Field(None, alias="Assign")


class SucceedState(_IOState):
    """A ``Succeed`` state: ends its scope successfully."""

    type: Literal["Succeed"] = Field(alias="Type")


class FailState(_BaseState):
    """A ``Fail`` state: ends the execution with an error.

    Attributes:
        error: Error name.
        error_path: Path to the error name.
        cause: Human-readable cause.
        cause_path: Path to the cause.
    """

    type: Literal["Fail"] = Field(alias="Type")
    error: str | None = Field(None, alias="Error")
    error_path: str | None = Field(None, alias="ErrorPath")
    cause: str | None = Field(None, alias="Cause")
    cause_path: str | None = Field(None, alias="CausePath")


class ParallelState(_WorkState):
    """A ``Parallel`` state: runs every branch on the same input.

    Attributes:
        branches: The branches, whose outputs form the result array in this order.
        arguments: JSONata input of the branches.
    """

    type: Literal["Parallel"] = Field(alias="Type")
    branches: tuple[Branch, ...] = Field(alias="Branches")
    arguments: Any = Field(None, alias="Arguments")


class MapState(_WorkState):
    """A ``Map`` state: runs ``item_processor`` once per item of an array.

    ``parameters`` is the legacy per-item selector (``Parameters``); ``item_selector`` is its
    current spelling (``ItemSelector``).

    Attributes:
        item_processor: The per-item scope (from ``ItemProcessor`` or legacy ``Iterator``).
        items_path: Path of the array in the input.
        item_selector: Template building each item's input.
        max_concurrency: Parallelism limit (0: unlimited; or a JSONata string).
        max_concurrency_path: Path to the parallelism limit.
        tolerated_failure_percentage: Failed items tolerated, in percent.
        tolerated_failure_percentage_path: Path to that percentage.
        tolerated_failure_count: Failed items tolerated.
        tolerated_failure_count_path: Path to that count.
        items: JSONata items expression (or literal array).
        label: Distributed map label.
        item_reader: Raw ``ItemReader``.
        item_batcher: Raw ``ItemBatcher``.
        result_writer: Raw ``ResultWriter``.
    """

    type: Literal["Map"] = Field(alias="Type")
    item_processor: Branch = Field(alias="ItemProcessor")
    items_path: str | None = Field("$", alias="ItemsPath")
    item_selector: Any = Field(None, alias="ItemSelector")
    max_concurrency: int | str = Field(0, alias="MaxConcurrency")
    max_concurrency_path: str | None = Field(None, alias="MaxConcurrencyPath")
    tolerated_failure_percentage: float | str | None = Field(
        None, alias="ToleratedFailurePercentage"
    )
    tolerated_failure_percentage_path: str | None = Field(
        None, alias="ToleratedFailurePercentagePath"
    )
    tolerated_failure_count: int | str | None = Field(None, alias="ToleratedFailureCount")
    tolerated_failure_count_path: str | None = Field(None, alias="ToleratedFailureCountPath")
    items: Any = Field(None, alias="Items")
    label: str | None = Field(None, alias="Label")
    item_reader: Any = Field(None, alias="ItemReader")
    item_batcher: Any = Field(None, alias="ItemBatcher")
    result_writer: Any = Field(None, alias="ResultWriter")

    @model_validator(mode="before")
    @classmethod
    def _legacy_iterator(cls, data: Any) -> Any:
        # ``Iterator`` is the pre-2022 name of ``ItemProcessor``; one field serves both.
        if isinstance(data, dict) and "Iterator" in data and "ItemProcessor" not in data:
            data = {**data, "ItemProcessor": data["Iterator"]}
            del data["Iterator"]
        return data


State = Annotated[
    TaskState
    | PassState
    | WaitState
    | ChoiceState
    | SucceedState
    | FailState
    | ParallelState
    | MapState,
    Field(discriminator="type"),
]
"""Any ASL state, discriminated by its ``Type``."""


class StateMachine(_Model):
    """A whole state machine definition.

    Attributes:
        start_at: Name of the first state.
        states: Top-level states by name.
        comment: Free text.
        timeout_seconds: Execution timeout, if any.
        version: ASL version string.
        query_language: Default query language of every state.
    """

    start_at: str = Field(alias="StartAt")
    states: dict[str, State] = Field(alias="States")
    comment: str | None = Field(None, alias="Comment")
    timeout_seconds: int | None = Field(None, alias="TimeoutSeconds")
    version: str | None = Field(None, alias="Version")
    query_language: QueryLanguage = Field("JSONPath", alias="QueryLanguage")

    def state(self, name: str) -> State:
        """Return the top-level state called ``name`` (``KeyError`` if there is none)."""
        return self.states[name]

    def to_asl(self) -> dict[str, Any]:
        """Return the definition as a JSON-compatible ASL dict (only the fields that were set)."""
        dumped: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        return dumped

    def walk(self) -> Iterator[tuple[str, str, State, StateMachine | Branch]]:
        """Yield every state at every depth, parents before their nested states.

        Yields:
            ``(path, name, state, scope)``: ``path`` is the state's JSON path in the
            definition (e.g. ``$.States.P.Branches[0].States.X``), ``scope`` the
            StateMachine or Branch whose ``states`` holds it.
        """
        yield from walk_scope(self, "$")


def walk_scope(
    scope: StateMachine | Branch, prefix: str
) -> Iterator[tuple[str, str, State, StateMachine | Branch]]:
    """Yield ``(path, name, state, scope)`` for the states of ``scope`` and their nested scopes.

    Args:
        scope: The StateMachine or Branch to walk.
        prefix: JSON path of ``scope`` itself (``$`` for the machine).
    """
    for name, state in scope.states.items():
        path = f"{prefix}.States.{name}"
        yield path, name, state, scope
        if isinstance(state, ParallelState):
            for index, branch in enumerate(state.branches):
                yield from walk_scope(branch, f"{path}.Branches[{index}]")
        elif isinstance(state, MapState):
            yield from walk_scope(state.item_processor, f"{path}.ItemProcessor")


ChoiceRule.model_rebuild()
Branch.model_rebuild()
StateMachine.model_rebuild()
