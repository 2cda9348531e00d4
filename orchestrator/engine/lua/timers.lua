-- Read what firing one due timer needs, in one call (beat's hot path: the store sends
-- one call per timer of a burst, pipelined, instead of three commands each).
-- Key schema: see orchestrator/engine/keys.py. One execution's keys only (one slot).
--
-- KEYS[1] the execution hash, KEYS[2] its step hash, KEYS[3] its history stream (or
--   LIST, written before histories were streams)
-- ARGV[1] the step's status field, ARGV[2] its step key
-- Returns {name, workflow, start, def_hash, execution status, step status, step record,
-- history length} (false where absent).
local function history_length(key)
  local n = redis.pcall("XLEN", key)
  if type(n) == "table" then return redis.call("LLEN", key) end
  return n
end

local meta = redis.call("HMGET", KEYS[1], "name", "workflow", "start", "def_hash", "status")
local step = redis.call("HMGET", KEYS[2], ARGV[1], ARGV[2])
return {meta[1], meta[2], meta[3], meta[4], meta[5], step[1], step[2],
  history_length(KEYS[3])}
