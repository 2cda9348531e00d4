-- Apply one workflow transition atomically, if its guards still hold.
--
-- A transition is computed in Python from values read earlier; this script re-checks
-- those values (compare-and-set on the raw strings) and applies every write in one step,
-- so a transition is all-or-nothing and a redelivered message cannot apply it twice.
-- Key schema: see orchestrator/keys.py.
--
-- KEYS: every key the guards and ops name (ops refer to them by 1-based index)
-- ARGV[1]: JSON {"g": [guard...], "o": [op...]}
--   guards: ["h", k, field, expected|false]   HGET equals expected (false: field absent)
--           ["z", k, member]                  member present in the sorted set
--           ["x", k, 0|1]                     key exists (1) or does not (0)
--   ops:    ["hset", k, f, v, ...] ["hdel", k, f, ...] ["rpush", k, v, ...]
--           ["zadd", k, score, member] ["zrem", k, member] ["expire", k, seconds]
--           ["persist", k] ["set", k, v] ["del", k] ["incr", k]
--           ["join", k, container, leases k, lease score, lease member]
--              count one more ended branch of a Parallel/Map (field "<container>|n" of
--              step hash k); when it reaches "<container>|t", the container becomes
--              JOINING and gets a lease (so the reconciler joins it if we die first)
-- Returns {1, history length after the writes (0 if untouched), joined containers...}
-- or {0, failed guard index}.
local t = cjson.decode(ARGV[1])
for i, g in ipairs(t["g"]) do
  local kind, key = g[1], KEYS[g[2]]
  if kind == "h" then
    local v = redis.call("HGET", key, g[3])
    local want = g[4]
    if want == false then
      if v then return {0, i} end
    elseif v ~= want then
      return {0, i}
    end
  elseif kind == "z" then
    if not redis.call("ZSCORE", key, g[3]) then return {0, i} end
  elseif kind == "x" then
    if redis.call("EXISTS", key) ~= g[3] then return {0, i} end
  end
end
local result = {1, 0}
for _, op in ipairs(t["o"]) do
  local name, key = op[1], KEYS[op[2]]
  local args = {}
  for j = 3, #op do args[#args + 1] = op[j] end
  local r
  if name == "join" then
    local container = args[1]
    local n = redis.call("HINCRBY", key, container .. "|n", 1)
    local total = tonumber(redis.call("HGET", key, container .. "|t"))
    if total and n == total then
      redis.call("HSET", key, container .. "|s", "JOINING")
      redis.call("ZADD", KEYS[args[2]], tostring(args[3]), args[4])
      result[#result + 1] = container
    end
  elseif name == "zadd" then
    r = redis.call("ZADD", key, tostring(args[1]), args[2])
  elseif name == "expire" then
    r = redis.call("EXPIRE", key, tostring(args[1]))
  else
    r = redis.call(string.upper(name), key, unpack(args))
  end
  if name == "rpush" then result[2] = r end
end
return result
