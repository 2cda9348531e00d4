-- Schedules (orchestrator/engine/schedules.py): create, guarded update, delete.
-- Key schema: see orchestrator/engine/keys.py. KEYS[1] the schedule's hash, KEYS[2] its
-- log, KEYS[3] {S}:due (names by when to look next), KEYS[4] {S}:names: all four under
-- the schedules' one hash tag, so a call touches one slot.
-- ARGV[1] the operation, ARGV[2] the schedule's name.
--   create: ARGV[3] creation time, ARGV[4] when to look first ("" never), ARGV[5..] field,
--           value pairs. 0 if the schedule exists (nothing written), else 1.
--   update: ARGV[3] the version read (the hash's ``v``), ARGV[4] when to look next (""
--           not at all), ARGV[5] how many log entries to keep, ARGV[6] n, then n field,
--           value pairs (a value "" deletes the field), then log entries (JSON, oldest
--           first). 0 if the version moved meanwhile (another beat fired it, a pause...):
--           nothing written; else 1 and the version moves.
--   delete: 1 if the schedule existed.
local op = ARGV[1]
local name = ARGV[2]
if op == "create" then
  if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
  local fields = {}
  for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call("HSET", KEYS[1], "v", "1", unpack(fields))
  redis.call("ZADD", KEYS[4], ARGV[3], name)
  if ARGV[4] ~= "" then redis.call("ZADD", KEYS[3], ARGV[4], name) end
  return 1
elseif op == "update" then
  if redis.call("HGET", KEYS[1], "v") ~= ARGV[3] then return 0 end
  local n = tonumber(ARGV[6])
  for i = 0, n - 1 do
    local field, value = ARGV[7 + 2 * i], ARGV[8 + 2 * i]
    if value == "" then
      redis.call("HDEL", KEYS[1], field)
    else
      redis.call("HSET", KEYS[1], field, value)
    end
  end
  redis.call("HINCRBY", KEYS[1], "v", 1)
  if ARGV[4] == "" then
    redis.call("ZREM", KEYS[3], name)
  else
    redis.call("ZADD", KEYS[3], ARGV[4], name)
  end
  local first = 7 + 2 * n
  if first <= #ARGV then
    for i = first, #ARGV do redis.call("LPUSH", KEYS[2], ARGV[i]) end
    redis.call("LTRIM", KEYS[2], 0, tonumber(ARGV[5]) - 1)
  end
  return 1
elseif op == "delete" then
  local existed = redis.call("DEL", KEYS[1], KEYS[2])
  redis.call("ZREM", KEYS[3], name)
  redis.call("ZREM", KEYS[4], name)
  if existed > 0 then return 1 end
  return 0
end
return redis.error_reply("schedules.lua: unknown operation " .. tostring(op))
