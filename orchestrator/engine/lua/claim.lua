-- Claim a dispatched step for one worker: SCHEDULED -> RUNNING:<token>.
--
-- The claim is what makes step messages idempotent: of all the copies of a step's
-- message (redelivery, re-dispatch after a lost worker), exactly one finds the step
-- SCHEDULED and runs it; the others see it running or done and drop their message.
-- Key schema: see orchestrator/engine/keys.py.
--
-- KEYS[1] execution hash, KEYS[2] step hash, KEYS[3] leases zset, KEYS[4] history stream
-- (entries "0-<n>", field "e", as commit.lua's "history" op writes them), KEYS[5]
-- the outbox zset
-- ARGV[1] step key, ARGV[2] token, ARGV[3] lease expiry (epoch s), ARGV[4] lease member,
-- ARGV[5] the TaskStarted history event (its stored text: orchestrator/engine/history.py),
-- ARGV[6] the step key of the Map or Parallel the step runs in ("" outside any), ARGV[7]
-- a "published" deadline and
-- ARGV[8...] outbox members (of any execution) this worker published since its last
-- claim: marked published here, for free, rather than by a write of their own
-- Returns {"ok", record, status, name, workflow, start, def_hash, history length,
-- that container's "|next" and "|t"} or {"skip", reason}.
if #ARGV > 7 then
  -- XX: a step claimed since (its entry gone) stays gone. Not this step's own (the
  -- Celery chain's message that carried it here): it leaves the outbox below.
  local marks = {}
  for m = 8, #ARGV do
    if ARGV[m] ~= ARGV[4] then
      marks[#marks + 1] = ARGV[7]
      marks[#marks + 1] = ARGV[m]
    end
  end
  if #marks > 0 then redis.call("ZADD", KEYS[5], "XX", unpack(marks)) end
end
local status = redis.call("HGET", KEYS[1], "status")
if not status then return {"skip", "no execution"} end
if status ~= "RUNNING" then return {"skip", "execution " .. status} end
local field = ARGV[1] .. "|s"
local st = redis.call("HGET", KEYS[2], field)
if st ~= "SCHEDULED" then return {"skip", "step " .. tostring(st)} end
redis.call("HSET", KEYS[2], field, "RUNNING:" .. ARGV[2])
redis.call("ZADD", KEYS[3], ARGV[3], ARGV[4])
-- Claimed: no longer the outbox's to send again (a lapsed lease is the reconciler's cue).
redis.call("ZREM", KEYS[5], ARGV[4])
-- The execution's priority too (its step messages carry it), returned after the history
-- length: {..., length, priority, "|next", "|t"}; and its type.
local meta = redis.call("HMGET", KEYS[1], "name", "workflow", "start", "def_hash", "priority",
  "type")
local length = redis.pcall("XLEN", KEYS[4])
if meta[6] == "EXPRESS" then
  -- An EXPRESS child of a Distributed Map keeps no state history (maprun.py).
  if type(length) == "table" then length = redis.call("LLEN", KEYS[4]) end
elseif type(length) == "table" then
  -- A history written before histories were streams (a LIST) stays one.
  length = redis.call("RPUSH", KEYS[4], ARGV[5])
else
  length = length + 1
  redis.call("XADD", KEYS[4], "0-" .. length, "e", ARGV[5])
end
local rec = redis.call("HGET", KEYS[2], ARGV[1])
-- A Map's window, read here for free: once "|next" reached "|t" it never moves again,
-- and the iteration's end needs no read of its own to know that no item is left.
local window = {false, false}
if ARGV[6] ~= "" then
  window = redis.call("HMGET", KEYS[2], ARGV[6] .. "|next", ARGV[6] .. "|t")
end
return {"ok", rec, "RUNNING:" .. ARGV[2], meta[1], meta[2], meta[3], meta[4], length,
  meta[5], window[1], window[2]}
