r"""The Redis key schema: every key the orchestrator writes, defined once.

All keys start with the configured prefix (``ORCHESTRATOR_KEY_PREFIX``, default ``orch``).

**Partitions.** The executions are split into ``ORCHESTRATOR_PARTITIONS`` partitions
(default 1; fixed for a deployment's life, recorded in ``{p}:partitions``). An execution's
partition is the first 32 bits of its id's SHA-1 modulo their number (``partition_of``).
Every key of a partition, the keys of its executions and its indexes (timers, leases,
outbox, listings, dead letters, counters, definitions), starts with ``{P}`` =
``<prefix>:{<tag>}``: the Redis Cluster hash tag ``<tag>`` (``<k>.<j>``, chosen so
that partition k hashes into the k-th of equal slot ranges: ``partition_tags``) puts
all of them in one slot, so each call on an execution touches one slot, and a cluster
spreads the partitions over its masters. With one partition, ``{P}`` is
``orch:{0.0}`` (``orch:{0.0}:x:order-17:s``). Execution ids hold no brace, nor does the
prefix. An execution's keys::

    {P}:x:<id>        HASH   execution record: status, name, workflow, input, output,
                               error, cause, start, stop, def_hash, redrives, priority
                               (0-9, read with it by whoever publishes a step); a child
                               workflow's ``parent``/``parent_state``/``parent_run``/
                               ``parent_mode`` link it to the Task that started it (and a
                               ``.sync`` child's ``notify`` holds its parent's ``childend``
                               timer member); ``child:<id>`` -> JSON ``[step key, mode]``
                               for each child workflow it started (engine/children.py)
    {P}:x:<id>:h      STREAM history events, oldest first: entry ``0-<n>`` is event n,
                               its one field ``e`` a compact JSON array (engine/history.py:
                               ``[type code, ms after the record's start, step key, main
                               detail, {other details}]``, e.g. ``[2,1534,"M[7]/P",7]``;
                               one field name for every entry, so a stream node's entries
                               store none). Entries written before that have the field
                               ``event`` (the event as a JSON object) and still read. Ids
                               are dense and ordered by construction (the writing script
                               adds ``0-(XLEN+1)``...; entries are never trimmed), so
                               "events after n" is ``XRANGE 0-(n+1) +`` and waiting for
                               them ``XREAD BLOCK``. Histories written by 0.1.0 and
                               earlier are LISTs (event id = index + 1): the scripts
                               append to and the store reads either type
    {P}:x:<id>:s      HASH   steps: ``{step key}`` -> JSON step record (state, input,
                               attempt, retries...), ``{step key}|s`` -> step status;
                               a finished step is removed (the history keeps it); a
                               Parallel or Map ``{key}`` also has ``|t`` branches or
                               items, ``|n`` ended; a Map ``|next`` item to start, ``|f``
                               failures, ``|tol`` its tolerated failures (beside its
                               record, which holds its input), ``|c`` items an ending
                               iteration starts (unbounded Maps), ``|d`` item starts
                               left to a refill timer; ``|vars`` and ``|x0`` (where the
                               execution failed in an inline state) of the top level.
                               Only live steps and containers' counters: its size follows
                               the steps in flight, never a Map's item count
    {P}:x:<id>:b:{key} HASH  a Parallel's or Map's branch hash (``key`` its step key):
                               ``r{i}`` branch/item results, ``v{i}`` their variables,
                               ``x{i}`` where one failed, and ``k{j}`` the inputs of items
                               not started yet, ``ITEM_CHUNK`` items per field (JSON
                               ``[first index, input, input...]``, written once when the
                               Map starts, deleted once every item in it started). Deleted
                               whole (UNLINK) when the container ends or is caught, so a
                               Map of any size ends with one call
    {P}:x:<id>:b:{key}|mr  HASH  a Distributed Map's Map Run (``key`` the Map's step key;
                               a step key never holds ``|``): ``run``, ``arn``, ``label``,
                               ``status``, ``start``/``stop``, ``max`` (children in flight at
                               most), ``next`` (children started), ``cursor`` (where the
                               items go on: a stored-items index or an ItemReader's cursor
                               state, a small JSON object), ``done`` (no more items),
                               counters ``running``/``succeeded``/``failed``/``timed_out``/
                               ``aborted``, ``redrives``, ``rptr`` (a redrive's scan position),
                               ``abort`` (ABORTED by its execution's failure or timeout, its
                               children still to stop) and ``v``, a version every write of
                               the run moves and
                               guards. O(1) fields
                               whatever the item count. Kept after the Map ends (listed in
                               ``:bs``, so it expires and is redriven with its execution)
    {P}:x:<id>:b:{key}|mrc HASH  the Map Run's children: child index -> ``R`` running, ``S``
                               succeeded, ``F`` failed, ``T`` timed out, ``A`` aborted (the
                               redrive and the stop find the children to move here, a page
                               at a time). A child is the execution ``child_id(parent, run,
                               index)``; its record's ``parent``/``map_key``/``map_index``/
                               ``map_run`` fields link it back, ``type`` is ``EXPRESS`` for
                               an EXPRESS child (no state history: claim.lua writes no
                               ``TaskStarted``), and ``notify`` holds the timer member its
                               final commit adds (commit.lua's ``notify``)
    {P}:x:<id>:bs     SET    the step keys of the containers that have a branch hash: the
                               end of an execution gives each the retention period, a
                               redrive takes it back (commit.lua's ``branches`` op)
    {P}:x:<id>:tok      HASH   the execution's live task tokens -> JSON ``[step key,
                               attempt]``; a token names its execution (see
                               orchestrator/language/tokens.py); deleted when the execution ends
    {P}:dl:<id>         STRING a dead letter, JSON: an execution's (id = execution id, so in
                               its partition) or a message's (id ``msg-<hex>``, in the
                               partition of that id)

Each partition's indexes (members name executions of that partition, but for a
child's ``notify`` timer, below)::

    {P}:def:{hash}      STRING a definition (canonical ASL JSON), stored once per content
                               hash in each partition that starts it (a start writes it
                               in its own slot); kept twice the retention after its
                               latest start there
    {P}:executions      ZSET   execution ids scored by start time (list_executions)
    {P}:executions:status:{S}          ZSET   the same, of the executions with status S
    {P}:executions:wf:{w}              ZSET   the same, of the executions of workflow w
    {P}:executions:wf:{w}:status:{S}   ZSET   of workflow w with status S
                               (``executions_index``). A listing pages through the one
                               its filters name, so its cost follows the page. The
                               write that changes an execution's status moves it between
                               the status indexes (start, end, stop, redrive); ids whose
                               records expired are dropped from an index by the listing
                               that meets them (forget_execution.lua). {w} is the
                               workflow name, or ``~<sha1>`` of one with other characters
    {P}:timers          ZSET   due timers, member JSON ``[kind, id, step key, attempt]``,
                               scored by due time (epoch seconds). A timer fires from its
                               execution's partition; a child's end adds its parent's
                               ``mapchild``/``childend`` timer to the child's partition
                               (its commit stays in one slot) and beat moves it to the
                               parent's when it finds it due (``due_timer_entries``)
    {P}:leases          ZSET   JSON ``[id, step key]`` scored by the time a running step
                               (or a joining container) is considered lost and dispatched
                               again (or joined); claim.lua adds a step's, its worker renews it
    {P}:outbox          ZSET   the same members: steps dispatched and not claimed yet,
                               scored by when the reconciler publishes them again. The
                               commit that dispatches a step adds it due in
                               ``lease_seconds`` (not published yet), pushed a lease on
                               (``ZADD XX``) every third of one while its publisher still
                               sends it; once its message went
                               to the broker, a plain ``ZADD XX`` moves it to
                               ``dispatch_timeout_seconds`` (published: only a broker that
                               lost it sends it again); claim.lua removes it
    {P}:dlq             ZSET   dead-letter ids scored by time (``max_dead_letters`` over all
                               the partitions: the trim drops the oldest of their merge)
    {P}:metrics:executions HASH execution counters for Prometheus (orchestrator/engine/
                               metrics.py), field ``<kind>|<workflow>`` -> count, kind
                               ``started``, ``redriven`` or an end status (``SUCCEEDED``,
                               ``FAILED``, ``TIMED_OUT``, ``ABORTED``): HINCRBY in the very
                               commit that starts, redrives or ends the execution, so a
                               redelivered message or a retried start never counts twice.
                               One field per workflow and kind, whatever the execution
                               count; the metrics sum the partitions

The readers of the indexes (beat's timers, leases and outbox, the listings, the dead
letters, the metrics) read every partition in one pipelined round trip and merge.

Global keys (one each)::

    {p}:partitions      STRING the partition count, set by the first write (SET NX)
    {p}:tokens          HASH   (no longer written) task tokens of earlier versions
    {p}:lock:tick       STRING the timer loop's lock (SET NX PX), held by one beat at a time
    {p}:activities      SET    activity names that workers registered (advertised at start)
    {p}:activity-queues HASH   activity name -> its queue ("" for the default queue),
                               advertised with the names: where a process that does not
                               import an activity (a client, beat, a worker publishing
                               for another) sends its steps
    {p}:resource-bindings HASH Task Resource key -> activity name, advertised by the workers
                               importing an activity bound to it (``@activity(...,
                               resources=[...])``; an integration ARN's key is its
                               integration name, ``sns:publish``): a process that does not
                               import the activity resolves the Resource with it
    {p}:workers         HASH   worker node name -> JSON ``{"queues": [...], "until": t}``,
                               refreshed by each running worker, dropped when it stops;
                               an entry past ``until`` is a dead worker's (ignored, pruned)
    {p}:activity-limits HASH   activity name -> JSON ``{"max_concurrency": N or null,
                               "rate_limit": "10/s" or null}``, advertised by the workers
                               that import the activity (a field is dropped when its limits
                               are): what every publishing process obeys (engine/limits.py)

The schedules (orchestrator/engine/schedules.py): every key starts with ``{S}`` =
``<prefix>:{<prefix>:schedules}``, one hash tag for all of them, so each call on the
schedules touches one slot (``orch:{orch:schedules}:schedule:nightly``). The tag holds a
colon, which neither a partition's tag (``<k>.<j>``) nor a state machine's (its name)
can, and it comes before the schedule's name (a name holds no brace or colon anyway)::

    {S}:due             ZSET   schedule names scored by when the timer process looks at
                               each next (its next fire time, or sooner while a BUFFER_ONE
                               firing waits); a paused or finished schedule is not in it
    {S}:names           ZSET   every schedule's name, scored by creation time (listing)
    {S}:schedule:{n}    HASH   schedule {n}: its settings
                               (``target``, ``expression``, ``input``, ``timezone``,
                               ``overlap``, ``catchup``, ``start``, ``end``, ``created``),
                               ``enabled``, ``next`` (the next scheduled time), ``last`` (its
                               last execution's id), ``buffered`` (a firing waiting for it)
                               and ``v``, a version every firing moves and guards
                               (schedules.lua: two beats never both fire one time)
    {S}:schedule:{n}:log LIST  the schedule's latest events (JSON, newest first, capped):
                               firings started, skipped (overlap, or missed beyond the
                               catch-up window), buffered, cancelled, failed

Earlier versions wrote them without a hash tag (``{p}:schedules``,
``{p}:schedules:names``, ``{p}:schedule:{n}``, ``{p}:schedule:{n}:log``): beat's first
tick, and a client's first schedule call, move what is left there
(``RedisStore.migrate_schedules``, migrate_schedule.lua: a page of names per call; a
single read of ``{p}:schedules:names`` once nothing is).

The global activity limits (engine/limits.py, permits.lua): each limited activity's
keys carry the hash tag ``activity:<a>`` (``<a>`` its name; the fixed word keeps it
apart from a partition's ``<k>.<j>``, and a brace in a name only shortens the tag alike
in all its keys), so each call of permits.lua touches one slot::

    {p}:permits:{activity:<a>}  ZSET  the permits of activity {a} (``max_concurrency``):
                               lease members ``[id, step key]`` of the steps holding one,
                               scored by when the timer process looks at the permit
                               again (if the step is in neither ``{P}:leases`` nor
                               ``{P}:outbox`` then, it is handed on; else pushed back a
                               lease). ZCARD is the number of permits in use
                               (``orchestrator_activity_permits_in_use{activity}``)
    {p}:permits:{activity:<a>}:waiting  ZSET  steps of {a} waiting for a permit (not
                               published, out of the outbox), scored by arrival
    {p}:permits:{activity:<a>}:granted  ZSET  steps handed a permit while they waited,
                               scored by when the timer process makes sure each is in its
                               outbox (a lease after the grant); the step's release drops
                               its entry (it ran), else the timer process does, once the
                               step is in its outbox or running
    {p}:rate:{activity:<a>}     HASH  activity {a}'s token bucket (``rate_limit``):
                               ``tokens`` (negative: reserved ahead) and ``ts`` (their
                               time); a step over the rate waits as a ``limit`` timer in
                               ``{P}:timers``

The steps they name are in every partition, and a call touches one slot, so a limit's
write on the activity's slot and its effect on a step's partition are two calls, in
this order (RedisStore's methods; "lost" would mean a SCHEDULED step in neither its
outbox nor the waiting set, which nothing would ever publish):

* acquire (publishing a limited step, in its outbox since its commit): permits.lua
  gives it a permit or puts it in the waiting set; then a waiting step leaves its
  outbox (ZREM, its partition). A crash between: it is in both, and the reconciler
  publishes it again when its entry comes due (a lease), to wait again (one more
  acquire, its place in the queue kept). A release granting it between the two calls
  puts it in its outbox, which the ZREM then empties; its grant record brings it back.
* grant (the free permits handed to the first waiting steps, by any op): permits.lua
  moves each from the waiting set to the permits and records it in ``granted``; then
  each goes into its partition's outbox (ZADD, due a lease on) and is published: a
  worker's release and the timer process leave the ZADD to the publishing, in the
  pipelined read of the step's state (``waiting_step``), an acquire makes it in its
  second call. A crash between, or the acquire's ZREM above: the granted step holds a
  permit and is in no outbox; its grant record comes due a lease later, when the timer
  process finds it in neither its leases nor its outbox and
  puts it back in its outbox (ZADD NX, due at once: the reconciler publishes it; one
  that finished meanwhile is dropped there, as claim.lua would drop its message), its
  permit kept. A lease of delay, no loss, no leak. Grant records are not dropped right
  after the outbox ZADD (that would reopen the race with an acquire's ZREM) but by the
  step's release (it ran) or by the timer process once the step is in its outbox or
  running.
* release (a step ended) and recover (the timer process, each tick, at most 500 due
  permits and 500 due grant records): the permits' scores first (the activity's slot),
  then whether each step is in its leases or outbox (one pipelined call, the
  partitions' slots), then permits.lua with both: a permit goes back only if its step
  was in neither and its score is the one read, so a step dispatched again after the
  liveness read, whose acquire renewed the permit (a new expiry), keeps it. A crash
  before the script: the permit lapses and recover takes it back (a lease late).
  Before taking a permit back, recover puts its step in its outbox (ZADD NX, due at
  once): a step that finished is dropped there, and one still SCHEDULED (whose entry
  an acquire's ZREM stalled past its grant record removed) is published, to take a
  permit anew. These outbox entries are rare (a crash, a race, a worker dead before
  its release) and cost the reconciler one look each.
* rate: permits.lua takes the token; a step that must wait then gets its ``limit``
  timer and its outbox entry moved past it (one MULTI, its partition). A crash
  between: the token is spent, the step stays in its outbox, due at the lease, and the
  reconciler publishes it then (taking another token): one token and a lease lost.

The state-machine registry (engine/registry.py): each state machine's keys carry its
name as hash tag (a name holds no brace), so one registry write touches one slot; the
index of names ``{p}:machines`` follows in a call of its own::

    {p}:sm:{<name>}     HASH   a registered state machine: ``name``, ``type`` (STANDARD or
                               EXPRESS), ``description``, ``created``/``updated`` (epoch
                               seconds), ``definition`` (canonical ASL JSON, its latest
                               revision), ``revision`` (that text's sha1, as an
                               execution's ``def_hash``: same content, same revision),
                               ``versions`` (the last version number published; never
                               reused), ``rv``, a random token every registry write of
                               the machine guards and renews (compare-and-set), and for
                               the Step Functions API its ``role`` (roleArn),
                               ``logging`` and ``tracing`` configurations (JSON) and
                               tags (``tag:<key>`` -> value)
    {p}:sm:{<name>}:v   HASH   its published versions: number -> JSON ``{"revision",
                               "definition", "description", "created"}``, immutable
    {p}:sm:{<name>}:a   HASH   its aliases: name -> JSON ``{"routing": [[version,
                               weight], ...], "description", "created", "updated"}``
    {p}:machines        ZSET   registered names, score 0 (listed in name order)

The registry keeps its own copy of every revision and version it names (a ``{P}:def``
expires); an execution records which ``version`` and ``alias`` it ran (fields of its
record beside ``workflow``, the machine's name, and ``def_hash``, the revision).

Above, ``{p}``, ``{P}``, ``{S}``, ``{hash}``, ``{w}``, ``{a}`` and ``{n}`` are
placeholders; ``{<name>}`` stands for the name written between braces
(``orch:sm:{orders}``), ``{<tag>}`` and ``{<prefix>:schedules}`` for theirs; a key holds
no other braces. Data written before the partitions (keys ``{p}:x:{<id>}``,
``{p}:timers``...) is not read any more: this is pre-1.0 and there is no migration;
executions running across the upgrade are lost, drain them first. (The registry kept its
keys; the schedules are moved, above.) The activity limits' keys before their hash tag
(``{p}:permits:<a>``, ``{p}:permits:<a>:waiting``, ``{p}:rate:<a>``) are not read
either: steps waiting in them then never run, permits held in them no longer count;
drain the limited activities too.

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
``parse_`` counterparts. The interpreter never names a step-hash field: its transitions
change and read ``Slot``\ s (orchestrator/language/slots.py: an item's input, a branch's
result, a scope's variables...), and ``records.field_name`` maps each to its field here.

Every script call, and every MULTI the store sends, touches the keys of at most ONE
execution and its partition's indexes (one slot), or one activity's limit keys (one
slot), or the schedules' keys (one slot), or one global key, every one passed in KEYS
(no script builds a key name itself); tests/integration/test_key_slots.py watches
running workflows with MONITOR and fails otherwise. A change that reaches two slots is
two calls, ordered so that a process dying between them loses nothing (below). The one
exception is the move of schedules from the keys of earlier versions, which only ever
were on a single Redis.

* ``claim.lua``: one execution's record, step hash and history; its ``{P}:leases`` and
  ``{P}:outbox`` (whose "published" marks of other steps it may carry: members, not keys).
* ``window.lua``: one execution's step hash.
* ``commit.lua``: one execution's record, step hash, history and tokens, and its dead
  letter (a failure, a redrive); of its partition ``{P}:leases``, ``{P}:outbox`` and
  ``{P}:timers`` (most steps),
  ``{P}:executions`` and the definition (a start; the definition on a redrive too), the
  listing indexes of its status and workflow (a start, an end, a redrive), ``{P}:dlq``
  (a failure, a redrive), ``{P}:metrics:executions`` (a start, an end, a redrive);
  never ``{p}:tokens``.
* A Distributed Map's child: ``commit.lua`` on the child's keys; its final commit adds the
  parent's ``mapchild`` timer to the child's own ``{P}:timers`` and never touches the
  parent's keys. Beat moves the timer to the parent's partition: a ZADD there, then a
  ZREM here (two calls; a timer left in both is fired once, and a firing is guarded by
  the step it moves, so one fired again changes nothing). The parent's Map Run moves in
  commits of the parent's own keys (its step hash, history, Map Run hashes) fired from
  its ``{P}:timers`` (orchestrator/engine/maprun.py).
* ``forget_execution.lua``: one execution's record (to see it expired) and the listing
  indexes it is dropped from.
* ``timers.lua``: one timer's execution record, step hash and history; no global key.
  Beat fires a batch of timers with one call per timer, pipelined (one round trip).
* ``trim_dead_letters.lua``: ``{P}:dlq`` and one letter, dropped if it is still among
  the oldest beyond the limit; the store calls it once per letter to drop (after a
  write, one letter or none).
* MULTI (``add_dead_letter``): one message's letter and its partition's ``{P}:dlq``.
* ``permits.lua``: one activity's ``{p}:permits:{activity:<a>}``, its waiting and
  granted sets, or its ``{p}:rate:{activity:<a>}``; no partition's key. The partition
  side of a limit is a call of its own on the step's partition (a ZREM or ZADD on
  ``{P}:outbox``, ZSCOREs of ``{P}:leases`` and ``{P}:outbox``, a MULTI of the
  ``limit`` timer and the outbox entry): see "The global activity limits" above.
* The registry (below): one machine's keys (a commit.lua write), then ``{p}:machines``
  in a call of its own (orchestrator/engine/registry.py).
* A child workflow's start (``states:startExecution``, orchestrator/engine/children.py):
  the link in the parent's record, guarded by the parent still running, then the child's
  start: two ``commit.lua`` calls, each on one execution's keys.
* ``schedules.lua``: one schedule's hash and log, ``{S}:due`` and ``{S}:names``; no
  execution's keys (a firing's execution is started by its own start, before). One slot:
  the schedules' tag. The store's other schedule calls (reads, a pipelined read of many
  hashes) are in that slot too.
* ``migrate_schedule.lua``: one schedule's four old keys (no tag) and its four new ones.
  Several slots, and never on a cluster: it runs only where old keys are found, which
  only earlier versions on a single Redis wrote.

"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass, field

from redis.crc import key_slot

from orchestrator.errors import ConfigurationError

#: Execution statuses (``orchestrator.client.models.ExecutionStatus``'s values), each
#: with its listing index.
EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")

#: Suffixes of a Map Run's hashes among an execution's branch hashes (``:bs`` members).
MAP_RUN_SUFFIX = "|mr"
MAP_RUN_CHILDREN_SUFFIX = "|mrc"

#: Workflow names that name their index as they are; others are hashed (a brace would
#: become a hash tag, a colon would make keys ambiguous).
_PLAIN_WORKFLOW = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


#: The most partitions a deployment can have (each is one hash slot of a Redis Cluster).
MAX_PARTITIONS = 256

#: The slots of a Redis Cluster.
CLUSTER_SLOTS = 16384


@functools.cache
def partition_tags(partitions: int) -> tuple[str, ...]:
    """The hash tag of each partition: ``<k>.<j>`` for the smallest ``j`` whose slot lies
    in the k-th of ``partitions`` equal slot ranges, so that the partitions spread over a
    cluster's masters as evenly as its slot ranges do (a master holding a third of the
    slots holds a third of the partitions)."""
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ConfigurationError(f"partitions must be 1 to {MAX_PARTITIONS}, not {partitions}")
    tags: list[str] = []
    for k in range(partitions):
        low = k * CLUSTER_SLOTS // partitions
        high = (k + 1) * CLUSTER_SLOTS // partitions
        j = 0
        while not low <= key_slot(f"{k}.{j}".encode()) < high:
            j += 1
        tags.append(f"{k}.{j}")
    return tuple(tags)


def partition_of(execution_id: str, partitions: int) -> int:
    """The partition of an execution: the first 32 bits of its id's SHA-1, modulo the
    partition count."""
    if partitions == 1:
        return 0
    return int(hashlib.sha1(execution_id.encode()).hexdigest()[:8], 16) % partitions


@dataclass(frozen=True)
class Keys:
    """Key templates under one prefix, for a fixed number of partitions."""

    prefix: str
    partitions: int = 1
    #: How the keys of each partition start: ``{p}:{<tag>}`` (built once: every key of
    #: the hot path is made of one).
    _starts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A brace in the prefix would become every key's hash tag: one slot for all.
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError(f"the key prefix {self.prefix!r} must not contain braces")
        tags = partition_tags(self.partitions)
        object.__setattr__(self, "_starts", tuple(f"{self.prefix}:{{{t}}}" for t in tags))

    # -- partitions -------------------------------------------------------------------

    def partition_of(self, execution_id: str) -> int:
        """The partition of an execution's keys and of its entries in the indexes."""
        if self.partitions == 1:  # on every key of the hot path: no call more
            return 0
        return partition_of(execution_id, self.partitions)

    def all_partitions(self) -> range:
        """Every partition, for the readers that walk them all (beat, listings, metrics)."""
        return range(self.partitions)

    def _tagged(self, kind: str, execution_id: str) -> str:
        """``{p}:{<tag>}:<kind>:<id>``: an execution's keys are in its partition's slot,
        with that partition's indexes."""
        if self.partitions == 1:
            return f"{self._starts[0]}:{kind}:{execution_id}"
        return f"{self._starts[partition_of(execution_id, self.partitions)]}:{kind}:{execution_id}"

    def execution(self, execution_id: str) -> str:
        """The execution record hash."""
        return self._tagged("x", execution_id)

    def definition(self, p: int, def_hash: str) -> str:
        """A definition, by content hash, in partition ``p`` (each partition that runs
        it holds a copy: a start writes it in its own slot)."""
        return f"{self._starts[p]}:def:{def_hash}"

    def history(self, execution_id: str) -> str:
        """The execution's history stream."""
        return self._tagged("x", execution_id) + ":h"

    def steps(self, execution_id: str) -> str:
        """The execution's step hash."""
        return self._tagged("x", execution_id) + ":s"

    def branches(self, execution_id: str, container: str) -> str:
        """The branch hash of a Parallel or Map (step key ``container``): its branches'
        results, variables and failure marks, and its items' inputs."""
        return self._tagged("x", execution_id) + ":b:" + container

    def map_run(self, execution_id: str, container: str) -> str:
        """The Map Run of the Distributed Map ``container`` (a branch hash of the
        execution, so it shares its retention and redrive)."""
        return self.branches(execution_id, container + MAP_RUN_SUFFIX)

    def map_run_children(self, execution_id: str, container: str) -> str:
        """The status of each child of the Map Run of ``container``."""
        return self.branches(execution_id, container + MAP_RUN_CHILDREN_SUFFIX)

    def branch_hashes(self, execution_id: str) -> str:
        """The set of the execution's containers that have a branch hash (so that the end
        of the execution, and its redrive, reach every one)."""
        return self._tagged("x", execution_id) + ":bs"

    def executions(self, p: int) -> str:
        """Index of partition ``p``'s executions by start time."""
        return f"{self._starts[p]}:executions"

    def executions_index(
        self, p: int, status: str | None = None, workflow: str | None = None
    ) -> str:
        """Partition ``p``'s listing index of the executions with ``status`` and of
        ``workflow`` (None: any), scored by start time; neither: :meth:`executions`."""
        key = self.executions(p)
        if workflow is not None:
            if not _PLAIN_WORKFLOW.match(workflow):
                workflow = "~" + hashlib.sha1(workflow.encode()).hexdigest()
            key += f":wf:{workflow}"
        if status is not None:
            if status not in EXECUTION_STATUSES:
                raise ValueError(f"no execution status {status!r}")
            key += f":status:{status}"
        return key

    def listing_indexes(self, p: int, workflow: str | None) -> list[str]:
        """Every listing index of partition ``p`` an execution of ``workflow`` can be in
        (None: those that do not name a workflow): what an expired execution is dropped
        from."""
        keys = [self.executions_index(p, workflow=workflow)]
        if workflow is not None:
            keys.append(self.executions(p))
        for status in EXECUTION_STATUSES:
            keys.append(self.executions_index(p, status))
            if workflow is not None:
                keys.append(self.executions_index(p, status, workflow))
        return keys

    def timers(self, p: int) -> str:
        """Partition ``p``'s due-time sorted set of timers."""
        return f"{self._starts[p]}:timers"

    def leases(self, p: int) -> str:
        """Partition ``p``'s sorted set of step leases by expiry."""
        return f"{self._starts[p]}:leases"

    def outbox(self, p: int) -> str:
        """Partition ``p``'s sorted set of dispatched, unclaimed steps by when they are
        published again."""
        return f"{self._starts[p]}:outbox"

    @property
    def tokens(self) -> str:
        """Task tokens of steps waiting for a callback (earlier versions; see task_tokens)."""
        return f"{self.prefix}:tokens"

    def task_tokens(self, execution_id: str) -> str:
        """The live task tokens of one execution."""
        return self._tagged("x", execution_id) + ":tok"

    def dead_letters(self, p: int) -> str:
        """Partition ``p``'s index of dead letters by time."""
        return f"{self._starts[p]}:dlq"

    def dead_letter(self, letter_id: str) -> str:
        """One dead letter (an execution's has its id: in that execution's partition; a
        message's, ``msg-<hex>``, in the partition of that id)."""
        return self._tagged("dl", letter_id)

    @property
    def activities(self) -> str:
        """Activity names advertised by workers."""
        return f"{self.prefix}:activities"

    @property
    def activity_queues(self) -> str:
        """The queue of each advertised activity ("" for the default one)."""
        return f"{self.prefix}:activity-queues"

    @property
    def resource_bindings(self) -> str:
        """Task Resources bound to advertised activities (Resource key -> activity name)."""
        return f"{self.prefix}:resource-bindings"

    @property
    def workers(self) -> str:
        """Running workers' node names and the queues they consume."""
        return f"{self.prefix}:workers"

    def execution_counters(self, p: int) -> str:
        """Partition ``p``'s executions started, redriven and ended, per workflow
        (Prometheus counters: the sum over the partitions)."""
        return f"{self._starts[p]}:metrics:executions"

    @property
    def activity_limits(self) -> str:
        """The advertised global limits of each limited activity (JSON per name)."""
        return f"{self.prefix}:activity-limits"

    @staticmethod
    def activity_tag(activity: str) -> str:
        """``{activity:<name>}``: the hash tag of an activity's limit keys, so that
        permits.lua touches one slot. The word keeps it apart from the partitions'
        ``<k>.<j>``; a brace in the name only shortens the tag, alike in every key of
        the activity (the tag ends at the first ``}``)."""
        return f"{{activity:{activity}}}"

    def activity_permits(self, activity: str) -> str:
        """The permits of ``activity`` in use: a sorted set of the lease members of the
        steps holding one (``max_concurrency``); its ZCARD is the number in use, what the
        ``orchestrator_activity_permits_in_use{activity}`` gauge reads."""
        return f"{self.prefix}:permits:{self.activity_tag(activity)}"

    def activity_waiting(self, activity: str) -> str:
        """The steps of ``activity`` waiting for a permit, scored by arrival."""
        return self.activity_permits(activity) + ":waiting"

    def activity_granted(self, activity: str) -> str:
        """The steps of ``activity`` handed a permit while they waited, scored by when
        the timer process makes sure each is in its outbox."""
        return self.activity_permits(activity) + ":granted"

    def activity_rate(self, activity: str) -> str:
        """The token bucket of ``activity``'s ``rate_limit`` (``tokens``, ``ts``)."""
        return f"{self.prefix}:rate:{self.activity_tag(activity)}"

    def machine(self, name: str) -> str:
        """A registered state machine's record."""
        return f"{self.prefix}:sm:{{{name}}}"

    def machine_versions(self, name: str) -> str:
        """A registered state machine's published versions."""
        return self.machine(name) + ":v"

    def machine_aliases(self, name: str) -> str:
        """A registered state machine's aliases."""
        return self.machine(name) + ":a"

    @property
    def machines(self) -> str:
        """The registered state machines' names."""
        return f"{self.prefix}:machines"

    @property
    def schedules(self) -> str:
        """``{p}:{<p>:schedules}``, how every schedule key starts: one hash tag for all of
        them, so each call on the schedules touches one slot. The colon keeps the tag
        apart from every other: a partition's is digits and a dot, a state machine's is
        its name, which holds no colon."""
        return f"{self.prefix}:{{{self.prefix}:schedules}}"

    @property
    def schedules_due(self) -> str:
        """Schedule names by when the timer process looks at each next."""
        return f"{self.schedules}:due"

    @property
    def schedule_names(self) -> str:
        """Every schedule's name by creation time."""
        return f"{self.schedules}:names"

    def schedule(self, name: str) -> str:
        """A schedule's settings and state (the tag comes before the name, so a brace in
        a name could not move the key to another slot)."""
        return f"{self.schedules}:schedule:{name}"

    def schedule_log(self, name: str) -> str:
        """A schedule's latest events, newest first."""
        return f"{self.schedule(name)}:log"

    @property
    def legacy_schedule_names(self) -> str:
        """The names index of the schedules earlier versions wrote (no hash tag), read
        only to move them to their keys now (``RedisStore.migrate_schedules``)."""
        return f"{self.prefix}:schedules:names"

    @property
    def legacy_schedules_due(self) -> str:
        """The due index of the schedules earlier versions wrote."""
        return f"{self.prefix}:schedules"

    def legacy_schedule(self, name: str) -> str:
        """A schedule's hash as earlier versions wrote it."""
        return f"{self.prefix}:schedule:{name}"

    def legacy_schedule_log(self, name: str) -> str:
        """A schedule's log as earlier versions wrote it."""
        return f"{self.prefix}:schedule:{name}:log"

    @property
    def partition_count(self) -> str:
        """The deployment's number of partitions, recorded by the first process to run
        (the others refuse another count: they would look for keys where none are)."""
        return f"{self.prefix}:partitions"

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
