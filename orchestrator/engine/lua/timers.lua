-- Read what firing a batch of due timers needs, in one call (beat's hot path: a burst
-- of thousands of timers would otherwise cost three commands each).
-- Key schema: see orchestrator/engine/keys.py.
--
-- KEYS: per timer i, KEYS[3i-2] its execution hash, KEYS[3i-1] its step hash,
--       KEYS[3i] its history stream (or LIST, written before histories were streams)
-- ARGV: per timer i, ARGV[2i-1] its step's status field, ARGV[2i] its step key
-- Returns per timer {name, workflow, start, def_hash, execution status, step status,
-- step record, history length} (false where absent).
local function history_length(key)
  local n = redis.pcall("XLEN", key)
  if type(n) == "table" then return redis.call("LLEN", key) end
  return n
end

local out = {}
for i = 1, #KEYS / 3 do
  local meta = redis.call("HMGET", KEYS[3 * i - 2], "name", "workflow", "start", "def_hash",
    "status")
  local step = redis.call("HMGET", KEYS[3 * i - 1], ARGV[2 * i - 1], ARGV[2 * i])
  out[i] = {meta[1], meta[2], meta[3], meta[4], meta[5], step[1], step[2],
    history_length(KEYS[3 * i])}
end
return out
