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
-- Returns {1, history length after the writes (0 if untouched)} or {0, failed guard index}.
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
local length = 0
for _, op in ipairs(t["o"]) do
  local name, key = op[1], KEYS[op[2]]
  local args = {}
  for j = 3, #op do args[#args + 1] = op[j] end
  local r
  if name == "zadd" then
    r = redis.call("ZADD", key, tostring(args[1]), args[2])
  elseif name == "expire" then
    r = redis.call("EXPIRE", key, tostring(args[1]))
  else
    r = redis.call(string.upper(name), key, unpack(args))
  end
  if name == "rpush" then length = r end
end
return {1, length}
