"""The Redis key schema: every key the orchestrator writes, defined once.

All keys start with the configured prefix (``ORCHESTRATOR_KEY_PREFIX``, default ``orch``)::

    {p}:x:{id}          HASH   execution record: status, name, workflow, input, output,
                               error, cause, start, stop, def_hash, redrives
    {p}:def:{hash}      STRING a definition (canonical ASL JSON), stored once per content
                               hash; kept twice the retention after its latest start
    {p}:x:{id}:h        STREAM history events, oldest first: entry ``0-<n>`` (field
                               ``event``, JSON) is event n; ids are dense and ordered by
                               construction (the writing script adds ``0-(XLEN+1)``...;
                               entries are never trimmed), so "events after n" is
                               ``XRANGE 0-(n+1) +`` and waiting for them ``XREAD BLOCK``.
                               Histories written by 0.1.0 and earlier are LISTs (event id
                               = index + 1): the scripts append to and the store reads
                               either type
    {p}:x:{id}:s        HASH   steps: ``{step key}`` -> JSON step record (state, input,
                               attempt, retries...), ``{step key}|s`` -> step status;
                               a finished step is removed (the history keeps it); a
                               Parallel or Map ``{key}`` also has ``|t`` branches or
                               items, ``|n`` ended, ``|r{i}`` results, ``|x{i}`` where a
                               branch failed; a Map ``|next`` item to start, ``|i{i}``
                               inputs not started yet, ``|f`` failures, ``|c`` items an
                               ending iteration starts (unbounded Maps)
    {p}:executions      ZSET   execution ids scored by start time (list_executions)
    {p}:timers          ZSET   due timers, member JSON ``[kind, id, step key, attempt]``,
                               scored by due time (epoch seconds)
    {p}:leases          ZSET   JSON ``[id, step key]`` scored by the time a dispatched or
                               running step is considered lost and dispatched again
    {p}:x:{id}:tok      HASH   the execution's live task tokens -> JSON ``[step key,
                               attempt]``; a token names its execution (see
                               orchestrator/language/tokens.py); deleted when the execution ends
    {p}:tokens          HASH   (no longer written) task tokens of earlier versions
    {p}:dlq             ZSET   dead-letter ids scored by time
    {p}:dl:{n}          STRING a dead letter, JSON
    {p}:lock:tick       STRING the timer loop's lock (SET NX PX), held by one beat at a time
    {p}:activities      SET    activity names that workers registered (advertised at start)

A step key names one active state of an execution: its state name, prefixed by the path
of the Parallel branch or Map iteration it runs in (``Map[3]/Charge``). Finished
executions' keys expire after the retention period.

Who reads and writes these: only :class:`orchestrator.engine.store.RedisStore`, through
named methods (``execution_status``, ``step_state``, ``due_timers``...; a test in
tests/unit/test_layers.py fails on any other use of the Redis client). The encodings
inside the values are :mod:`orchestrator.engine.records`'s: a step status is
``SCHEDULED``, ``RUNNING:<claim token>`` (the worker that claimed it), ``WAITING``,
``RETRYING``, ``FAILED`` or ``JOINING`` (``base_status``/``claim_token`` split it); timer and lease
members are built and parsed by ``timer_member``/``lease_member`` and their
``parse_`` counterparts. The interpreter still names step-hash fields in its
transitions (``Transition.fields``), which the runtime turns into one ``Write``.

The keys each Lua script call touches (what a Redis Cluster layout would have to put in
one slot):

* ``claim.lua``: one execution's record, step hash and history, and the global
  ``{p}:leases``.
* ``window.lua``: one execution's step hash.
* ``commit.lua``: one execution's record, step hash, history and tokens, plus the global
  ``{p}:leases`` and ``{p}:timers`` (most steps), ``{p}:executions`` (a start), the
  definition (a start, a redrive), ``{p}:dlq`` and that execution's ``{p}:dl:{id}`` (a
  failure, a redrive); never ``{p}:tokens``.
* ``timers.lua``: the record, step hash and history of every execution in a batch of due
  timers (many executions per call, by design: beat's burst path).
* ``trim_dead_letters.lua``: ``{p}:dlq`` and the letters it drops (any executions').

So hash-tagging an execution's keys (``{p}:x:{<id>}``) would not by itself make the
scripts single-slot: every commit also writes the global leases and timers sets, and
timers.lua and the dead-letter trim span executions.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key templates under one prefix."""

    prefix: str

    def execution(self, execution_id: str) -> str:
        """The execution record hash."""
        return f"{self.prefix}:x:{execution_id}"

    def definition(self, def_hash: str) -> str:
        """A definition, by content hash."""
        return f"{self.prefix}:def:{def_hash}"

    def history(self, execution_id: str) -> str:
        """The execution's history list."""
        return f"{self.prefix}:x:{execution_id}:h"

    def steps(self, execution_id: str) -> str:
        """The execution's step hash."""
        return f"{self.prefix}:x:{execution_id}:s"

    @property
    def executions(self) -> str:
        """Index of all executions by start time."""
        return f"{self.prefix}:executions"

    @property
    def timers(self) -> str:
        """Due-time sorted set of timers."""
        return f"{self.prefix}:timers"

    @property
    def leases(self) -> str:
        """Sorted set of step leases by expiry."""
        return f"{self.prefix}:leases"

    @property
    def tokens(self) -> str:
        """Task tokens of steps waiting for a callback (earlier versions; see task_tokens)."""
        return f"{self.prefix}:tokens"

    def task_tokens(self, execution_id: str) -> str:
        """The live task tokens of one execution."""
        return f"{self.prefix}:x:{execution_id}:tok"

    @property
    def dead_letters(self) -> str:
        """Index of dead letters by time."""
        return f"{self.prefix}:dlq"

    def dead_letter(self, letter_id: str) -> str:
        """One dead letter."""
        return f"{self.prefix}:dl:{letter_id}"

    @property
    def activities(self) -> str:
        """Activity names advertised by workers."""
        return f"{self.prefix}:activities"

    @property
    def tick_lock(self) -> str:
        """Lock held by the process running the timer loop."""
        return f"{self.prefix}:lock:tick"

    @staticmethod
    def fixed_field(field: str) -> bool:
        """A step-hash field that never changes while its container runs, so a transition
        that read it need not guard it: a container's ``|t`` and ``|c``, written when it
        starts, and a Map item's ``|i{i}``, deleted only by starting the item, which
        moves the ``|next`` that every reader of items reads and guards too."""
        _, pipe, suffix = field.rpartition("|")
        return bool(pipe) and (suffix in ("t", "c") or (suffix[:1] == "i" and suffix[1:].isdigit()))

    @staticmethod
    def status_field(step_key: str) -> str:
        """Field of the step hash holding a step's status."""
        return f"{step_key}|s"
