-- Apply one workflow transition atomically, if its guards still hold.
--
-- A transition is computed in Python from values read earlier; this script re-checks
-- those values (compare-and-set on the raw strings) and applies every write in one step,
-- so a transition is all-or-nothing and a redelivered message cannot apply it twice.
-- Key schema: see orchestrator/engine/keys.py.
--
-- KEYS: every key the guards and ops name (they refer to them by 1-based index k)
-- ARGV: flat, so no JSON is built in Python or decoded here (the hot path of every step):
--   ARGV[1] the number of guards, then each guard:
--     "h", k, field, expected    HGET equals expected
--     "h-", k, field             the field is absent
--     "z", k, member             member present in the sorted set
--     "x", k, "0"|"1"            key does not exist (0) or does (1)
--     "n", k, most               history k holds at most "most" events (the quota)
--   then each op: name, k, argument count, arguments...
--     hset, hdel, rpush, zadd, zrem, expire, persist, set, del, incr, hincrby: the Redis
--       command
--     history: append the arguments (events, each in the compact form of
--       orchestrator/engine/history.py) to history stream k, as entries "0-<n>" with
--       the one field "e", n counting on from its length: ids stay dense (the
--       history is never trimmed) and are known to readers without a lookup; a history
--       written before streams (a LIST) is appended to as a list
--     compact: rewrite history stream k at its exact size (DUMP, RESTORE REPLACE), done
--       once when an execution ends: a stream's last node keeps the room it reserved for
--       more entries (about 2 KB per history, as much again as the events themselves)
--     join: container, leases k, lease score, lease member, ended — count that many more
--       ended branches of a Parallel/Map (field "<container>|n" of step hash k); when it
--       reaches "<container>|t", the container becomes JOINING and gets a lease (so the
--       reconciler joins it if we die first)
--     notify: timers k, score — when record k (an execution's) has a "notify" field (a
--       Distributed Map's child: its parent's timer member), add it to sorted set k due
--       at score: the parent learns of the child's end in the child's final commit
--     branches: prefix, "expire" seconds | "persist" — give every branch hash named in
--       set k (prefix .. member: one execution's keys, in its hash slot) and k itself the
--       retention period, or take it back (the execution ended, or is redriven); the set
--       holds the containers in flight, not their items
-- Returns {1, history length after the writes (0 if untouched), joined containers...}
-- or {0, failed guard index}.
--
-- All or nothing: Redis does not roll a script back, so every op is checked before the
-- first write (each key's type, the history's ids, a join's counter); a check that fails
-- returns an error with nothing written. The checks are cheap on the hot path: a key's
-- type is looked up once (not at all for a key a guard read), and the ids of a history
-- written first are checked by its first XADD, which fails before anything is written.
-- Long argument lists are sent to Redis in slices (Lua's unpack stops at a few thousand
-- values).
--
-- Out of memory (maxmemory with noeviction): Redis refuses a script's first write that
-- could grow memory, before anything is written, and lets every later one through; the
-- guards only read, so a commit is refused whole (an OOM error to the caller, which
-- leaves the step to be tried again) or applied whole, never half.
-- A history's length: XLEN, or LLEN for a LIST written before histories were streams;
-- and which it is (a key that does not exist reads as an empty stream).
local function history_length(key)
  local n = redis.pcall("XLEN", key)
  if type(n) == "table" then return redis.call("LLEN", key), "list" end
  return n, "stream"
end

-- The type of each key a check or guard found (a guard's HGET or ZSCORE fails on a key of
-- another type, before any write): what the checks below need not look up again.
local known = {}
local i = 2
for g = 1, tonumber(ARGV[1]) do
  local kind, key = ARGV[i], KEYS[tonumber(ARGV[i + 1])]
  if kind == "h" then
    if redis.call("HGET", key, ARGV[i + 2]) ~= ARGV[i + 3] then return {0, g} end
    known[key] = "hash"
    i = i + 4
  else
    if kind == "h-" then
      if redis.call("HEXISTS", key, ARGV[i + 2]) == 1 then return {0, g} end
      known[key] = "hash"
    elseif kind == "z" then
      if not redis.call("ZSCORE", key, ARGV[i + 2]) then return {0, g} end
      known[key] = "zset"
    elseif kind == "x" then
      if redis.call("EXISTS", key) ~= tonumber(ARGV[i + 2]) then return {0, g} end
    elseif kind == "n" then
      local length, history_type = history_length(key)
      if length > tonumber(ARGV[i + 2]) then return {0, g} end
      if known[key] == nil then known[key] = history_type end
    else
      return redis.error_reply("unknown guard " .. tostring(kind))
    end
    i = i + 3
  end
end
-- The type each op needs its key to have ("none": absent, always fine).
local NEEDS = {
  hset = "hash", hdel = "hash", join = "hash", rpush = "list", zadd = "zset",
  zrem = "zset", sadd = "set", srem = "set", branches = "set", incr = "string",
  hincrby = "hash",
  history = "stream", compact = "stream", notify = "hash",
}
-- SET replaces a value of any type.
local ANY = {expire = true, persist = true, del = true, unlink = true, set = true}

-- The first argument of a history op left to its own XADD to check (the first write).
local history_unchecked = 0
-- ``first_write``: the op is the script's first write, so an error of its own leaves
-- nothing written either.
local function check(name, key, first, first_write)
  local needed = NEEDS[name]
  if not needed then
    if ANY[name] then return nil end
    return "unknown op " .. tostring(name)
  end
  local kind = known[key]
  if kind == nil or (kind ~= needed and kind ~= "none") then
    kind = redis.call("TYPE", key)["ok"]
    known[key] = kind
  end
  local old_history = (name == "history" or name == "compact") and kind == "list"
  if kind == "none" or kind == needed or old_history then
    if name == "history" and kind == "stream" and first_write then
      -- Its first XADD fails on ids that are not dense before anything is written.
      history_unchecked = first
    elseif name == "history" and kind == "stream" then
      -- XADD of "0-(XLEN+1)" needs the ids dense, as this script writes them.
      local n = redis.call("XLEN", key)
      local newest = redis.call("XREVRANGE", key, "+", "-", "COUNT", 1)[1]
      if newest and newest[1] ~= "0-" .. n then
        return "history " .. key .. " ends at " .. newest[1] .. " with " .. n .. " entries"
      end
    elseif name == "join" then
      local ended = redis.call("HGET", key, ARGV[first] .. "|n")
      if ended and not tonumber(ended) then
        return "join counter of " .. ARGV[first] .. " is not a number"
      end
    end
    return nil
  end
  return name .. " on " .. key .. ", which holds a " .. kind
end

local last = #ARGV
local j = i
while j <= last do
  local name, key = ARGV[j], KEYS[tonumber(ARGV[j + 1])]
  local problem = check(name, key, j + 3, j == i)
  if problem then return redis.error_reply("commit refused, nothing written: " .. problem) end
  j = j + 3 + tonumber(ARGV[j + 2])
end

local SLICE = 1000
local function call_sliced(name, key, first, stop)
  local r
  for s = first, stop, SLICE do
    r = redis.call(name, key, unpack(ARGV, s, math.min(s + SLICE - 1, stop)))
  end
  return r
end

local result = {1, 0}
while i <= last do
  local name, key, argc = ARGV[i], KEYS[tonumber(ARGV[i + 1])], tonumber(ARGV[i + 2])
  local first = i + 3
  i = first + argc
  if name == "join" then
    local container = ARGV[first]
    local n = redis.call("HINCRBY", key, container .. "|n", tonumber(ARGV[first + 4]))
    local total = tonumber(redis.call("HGET", key, container .. "|t"))
    if total and n == total then
      redis.call("HSET", key, container .. "|s", "JOINING")
      redis.call("ZADD", KEYS[tonumber(ARGV[first + 1])], ARGV[first + 2], ARGV[first + 3])
      result[#result + 1] = container
    end
  elseif name == "history" then
    local n = redis.pcall("XLEN", key)
    if type(n) == "table" then
      n = call_sliced("RPUSH", key, first, i - 1)
    else
      for j = first, i - 1 do
        n = n + 1
        if j == first and first == history_unchecked then
          -- The first write, whose ids were not checked (see check): refused whole.
          local added = redis.pcall("XADD", key, "0-" .. n, "e", ARGV[j])
          if type(added) == "table" and added.err then
            if string.find(added.err, "XADD", 1, true) then
              return redis.error_reply("commit refused, nothing written: history " .. key
                .. " does not end at 0-" .. (n - 1) .. " (" .. added.err .. ")")
            end
            return redis.error_reply(added.err)
          end
        else
          redis.call("XADD", key, "0-" .. n, "e", ARGV[j])
        end
      end
    end
    result[2] = n
  elseif name == "branches" then
    local prefix, mode = ARGV[first], ARGV[first + 1]
    for _, member in ipairs(redis.call("SMEMBERS", key)) do
      if mode == "expire" then
        redis.call("EXPIRE", prefix .. member, ARGV[first + 2])
      else
        redis.call("PERSIST", prefix .. member)
      end
    end
    if mode == "expire" then
      redis.call("EXPIRE", key, ARGV[first + 2])
    else
      redis.call("PERSIST", key)
    end
  elseif name == "notify" then
    local member = redis.call("HGET", key, "notify")
    if member then redis.call("ZADD", KEYS[tonumber(ARGV[first])], ARGV[first + 1], member) end
  elseif name == "compact" then
    if redis.call("TYPE", key)["ok"] == "stream" then
      redis.call("RESTORE", key, 0, redis.call("DUMP", key), "REPLACE")
    end
  else
    local r
    if first > i - 1 then
      r = redis.call(name, key)
    else
      r = call_sliced(name, key, first, i - 1)
    end
    if name == "rpush" then result[2] = r end
  end
end
return result
