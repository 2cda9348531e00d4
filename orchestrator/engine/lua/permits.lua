-- Global activity limits (orchestrator/engine/limits.py): permits (max_concurrency) and
-- a token bucket (rate_limit). Key schema: see orchestrator/engine/keys.py.
--
-- Permits. KEYS[1] the activity's permits zset, KEYS[2] its waiting zset, then the N
-- partitions' outboxes, then their leases zsets (a member is in its execution's
-- partition: keys.partition_of, computed here as well). ARGV[1] op, ARGV[2] the limit, ARGV[3] a permit's (and
-- a granted step's outbox entry's) expiry, ARGV[4] now, ARGV[5...] lease members.
--   acquire: for each member, 1 if it holds a permit (it had one: renewed; or one was
--     free and nobody waits), else 0: it waits (out of the outbox: not published).
--   release: the members give their permits back, unless dispatched again meanwhile (in
--     the leases or the outbox: a loop back to the same state, a retried or re-dispatched
--     attempt), which keeps the permit for the step's next run.
--   recover: permits due by now whose step is in neither the leases nor the outbox (a
--     finished step whose worker died before its release, a stopped one) are taken back;
--     the others are pushed back to ARGV[3].
-- Each op then hands the free permits to the first waiting steps, putting them in the
-- outbox (due at ARGV[3]: the reconciler publishes them if the caller does not).
-- Returns {results (acquire) , granted members of other calls}.
--
-- Rate. KEYS[1] the activity's bucket hash, KEYS[2] the timers zset, KEYS[3] the outbox
-- (of the step's partition).
-- ARGV[1] "rate", ARGV[2] tokens per second, ARGV[3] capacity, ARGV[4] now, ARGV[5] the
-- step's lease member, ARGV[6] its "limit" timer member, ARGV[7] the lease (s).
-- Takes a token (the bucket may go negative: tokens reserved ahead, one per waiting
-- step); returns the wait in seconds as a string ("0": publish now). A step that waits
-- gets its timer at now + wait, and its outbox entry moves past it.
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
  if wait > 0 then
    redis.call("ZADD", KEYS[2], tostring(now + wait), ARGV[6])
    redis.call("ZADD", KEYS[3], "XX", tostring(now + wait + tonumber(ARGV[7])), ARGV[5])
  end
  return tostring(wait)
end

local parts = (#KEYS - 2) / 2

-- The outbox and the leases of a lease member's partition (keys.partition_of: the first
-- 32 bits of the execution id's SHA-1, modulo the partition count).
local function homes(m)
  if parts == 1 then return KEYS[3], KEYS[4] end
  local id = cjson.decode(m)[1]
  local p = tonumber(string.sub(redis.sha1hex(id), 1, 8), 16) % parts
  return KEYS[3 + p], KEYS[3 + parts + p]
end

-- Whether the step is running (a lease) or dispatched (in the outbox).
local function live(m)
  local outbox, leases = homes(m)
  return redis.call("ZSCORE", leases, m) or redis.call("ZSCORE", outbox, m)
end

local limit = tonumber(ARGV[2])
local expiry = ARGV[3]
local results = {}
local mine = {}

if op == "acquire" then
  for i = 5, #ARGV do
    local m = ARGV[i]
    if redis.call("ZSCORE", KEYS[1], m) then
      redis.call("ZADD", KEYS[1], expiry, m)
      results[#results + 1] = 1
    elseif redis.call("ZCARD", KEYS[2]) == 0 and redis.call("ZCARD", KEYS[1]) < limit then
      redis.call("ZADD", KEYS[1], expiry, m)
      results[#results + 1] = 1
    else
      -- NX: a step already waiting keeps its place.
      redis.call("ZADD", KEYS[2], "NX", tostring(now + i * 1e-6), m)
      redis.call("ZREM", (homes(m)), m)
      results[#results + 1] = 0
      mine[m] = #results
    end
  end
elseif op == "release" then
  for i = 5, #ARGV do
    local m = ARGV[i]
    if live(m) then
      if redis.call("ZSCORE", KEYS[1], m) then redis.call("ZADD", KEYS[1], expiry, m) end
    else
      -- Not from the waiting set: a step waiting there is a later run's, kept.
      redis.call("ZREM", KEYS[1], m)
    end
  end
elseif op == "recover" then
  local due = redis.call("ZRANGEBYSCORE", KEYS[1], "-inf", now, "LIMIT", 0, 500)
  for _, m in ipairs(due) do
    if live(m) then
      redis.call("ZADD", KEYS[1], expiry, m)
    else
      redis.call("ZREM", KEYS[1], m)
    end
  end
end

-- Hand free permits to the first waiting steps.
local granted = {}
while redis.call("ZCARD", KEYS[1]) < limit do
  local head = redis.call("ZPOPMIN", KEYS[2])
  if #head == 0 then break end
  local m = head[1]
  redis.call("ZADD", KEYS[1], expiry, m)
  redis.call("ZADD", (homes(m)), expiry, m)
  if mine[m] then
    results[mine[m]] = 1  -- this call's own step: its caller publishes it
  else
    granted[#granted + 1] = m
  end
end
return {results, granted}
