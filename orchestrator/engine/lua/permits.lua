-- Global activity limits (orchestrator/engine/limits.py): permits (max_concurrency) and
-- a token bucket (rate_limit). Key schema: see orchestrator/engine/keys.py.
--
-- One activity's keys only, all tagged {activity:<a>}: one slot. The partition-side
-- effects (a waiting step out of its outbox, a granted step into it, a rate-limited
-- step's timer) are the store's own calls before or after this one (RedisStore
-- acquire_permits, release_permits, recover_permits, take_rate_token), ordered so that
-- a crash between the two loses no step: see keys.py, "The global activity limits".
--
-- Permits. KEYS[1] the activity's permits zset, KEYS[2] its waiting zset, KEYS[3] its
-- granted zset. ARGV[1] op, ARGV[2] the limit, ARGV[3] a permit's (and a grant's)
-- expiry, ARGV[4] now, then the op's arguments:
--   acquire: ARGV[5...] lease members. For each, 1 if it holds a permit (it had one:
--     renewed; or one was free and nobody waits), else 0: it waits (its caller then
--     takes it out of its outbox).
--   release: ARGV[5...] triples (member, its permit's score read before its liveness,
--     "1" if it was then in its partition's leases or outbox). A live member keeps its
--     permit (dispatched again: a loop back to the same state, a retried or
--     re-dispatched attempt); a dead one gives it back, but only if the score is still
--     the one read: a permit renewed since (an acquire after a dispatch the liveness
--     read did not see yet) stays. Either way its grant record goes (it ran).
--   recover: ARGV[5] the number of permit triples that follow (member, score, live), as
--     release's, for the permits due by now; then pairs (member, score) of the due
--     grant records whose steps are back in their outbox (or running): dropped if
--     unchanged. A live permit is pushed back to ARGV[3].
-- Each op then hands the free permits to the first waiting steps (500 at most): a
-- permit and a grant record each (granted, scored ARGV[3]: when the timer process makes
-- sure the step is in its outbox); the caller, or the read that publishes the step,
-- adds it to its outbox, and the grant record outlives that write (an acquire's ZREM
-- racing it would otherwise go unseen).
-- Returns {results (acquire), granted members of other calls}.
--
-- Rate. KEYS[1] the activity's bucket hash. ARGV[1] "rate", ARGV[2] tokens per second,
-- ARGV[3] capacity, ARGV[4] now. Takes a token (the bucket may go negative: tokens
-- reserved ahead, one per waiting step); returns the wait in seconds as a string ("0":
-- publish now). The caller then sets the waiting step's timer and moves its outbox entry.
local op = ARGV[1]
local now = tonumber(ARGV[4])

if op == "rate" then
  local rate = tonumber(ARGV[2])
  local capacity = tonumber(ARGV[3])
  local bucket = redis.call("HMGET", KEYS[1], "tokens", "ts")
  local tokens = tonumber(bucket[1]) or capacity
  local ts = tonumber(bucket[2]) or now
  -- limits.bucket_take, the same arithmetic.
  if now > ts then
    tokens = math.min(capacity, tokens + (now - ts) * rate)
    ts = now
  end
  tokens = tokens - 1
  redis.call("HSET", KEYS[1], "tokens", tostring(tokens), "ts", tostring(ts))
  local wait = 0
  if tokens < 0 then wait = -tokens / rate end
  redis.call("PEXPIRE", KEYS[1], math.ceil((wait + capacity / rate) * 1000) + 60000)
  return tostring(wait)
end

local permits, waiting, granted_set = KEYS[1], KEYS[2], KEYS[3]
local limit = tonumber(ARGV[2])
local expiry = ARGV[3]
local results = {}
local mine = {}

-- Whether a member's permit still has the score its caller read (false: none). The
-- caller passes the score as Python's repr of what ZSCORE gave it: the same double.
local function unchanged(m, score)
  local now_score = redis.call("ZSCORE", permits, m)
  return now_score and tonumber(now_score) == tonumber(score)
end

-- A permit triple of release or recover.
local function settle(m, score, live)
  if live == "1" then
    if redis.call("ZSCORE", permits, m) then redis.call("ZADD", permits, expiry, m) end
  elseif unchanged(m, score) then
    -- Not from the waiting set: a step waiting there is a later run's, kept.
    redis.call("ZREM", permits, m)
  end
end

if op == "acquire" then
  for i = 5, #ARGV do
    local m = ARGV[i]
    if redis.call("ZSCORE", permits, m) then
      redis.call("ZADD", permits, expiry, m)
      results[#results + 1] = 1
    elseif redis.call("ZCARD", waiting) == 0 and redis.call("ZCARD", permits) < limit then
      redis.call("ZADD", permits, expiry, m)
      results[#results + 1] = 1
    else
      -- NX: a step already waiting keeps its place. %.17g: tostring's 14 digits would
      -- round the microseconds that order one call's steps away (and order by name).
      redis.call("ZADD", waiting, "NX", string.format("%.17g", now + i * 1e-6), m)
      results[#results + 1] = 0
      mine[m] = #results
    end
  end
elseif op == "release" then
  for i = 5, #ARGV, 3 do
    settle(ARGV[i], ARGV[i + 1], ARGV[i + 2])
    redis.call("ZREM", granted_set, ARGV[i])
  end
elseif op == "recover" then
  local count = tonumber(ARGV[5])
  local last = 5 + 3 * count
  for i = 6, last, 3 do
    settle(ARGV[i], ARGV[i + 1], ARGV[i + 2])
  end
  for i = last + 1, #ARGV, 2 do
    local score = redis.call("ZSCORE", granted_set, ARGV[i])
    -- A step granted again since (a later run) keeps its newer record.
    if score and tonumber(score) == tonumber(ARGV[i + 1]) then
      redis.call("ZREM", granted_set, ARGV[i])
    end
  end
end

-- Hand free permits to the first waiting steps: at most 500 a call (a limit raised by
-- thousands, its waiting steps queued; the timer process hands on the rest, a batch a
-- tick), so no call grows with the waiting set.
local granted = {}
while #granted < 500 and redis.call("ZCARD", permits) < limit do
  local head = redis.call("ZPOPMIN", waiting)
  if #head == 0 then break end
  local m = head[1]
  redis.call("ZADD", permits, expiry, m)
  if mine[m] then
    results[mine[m]] = 1  -- this call's own step: still in its outbox, its caller publishes it
  else
    redis.call("ZADD", granted_set, expiry, m)
    granted[#granted + 1] = m
  end
end
return {results, granted}
