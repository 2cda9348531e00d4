-- Read what firing one due timer needs, in one call (beat's hot path: the store sends
-- one call per timer of a burst, pipelined, instead of three commands each).
-- Key schema: see orchestrator/engine/keys.py. One execution's keys only (one slot).
--
-- KEYS[1] the execution hash, KEYS[2] its step hash, KEYS[3] its history stream (or
--   LIST, written before histories were streams)
-- ARGV[1] the step's status field, ARGV[2] its step key, ARGV[3] "1" to read the step's
--   record too ("0": the timer's firing needs only its status, e.g. a Map's refill, whose
--   record holds the Map's whole input)
-- Returns {name, workflow, start, def_hash, execution status, step status, step record,
-- priority, history length} (false where absent or not read).
local function history_length(key)
  local n = redis.pcall("XLEN", key)
  if type(n) == "table" then return redis.call("LLEN", key) end
  return n
end

local meta = redis.call("HMGET", KEYS[1], "name", "workflow", "start", "def_hash", "status",
  "priority")
local step
if ARGV[3] == "0" then
  step = {redis.call("HGET", KEYS[2], ARGV[1]), false}
else
  step = redis.call("HMGET", KEYS[2], ARGV[1], ARGV[2])
end
return {meta[1], meta[2], meta[3], meta[4], meta[5], step[1], step[2], meta[6],
  history_length(KEYS[3])}
