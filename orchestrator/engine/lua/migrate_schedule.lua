-- Move one schedule from the keys earlier versions wrote (no hash tag) to its keys now
-- (RedisStore.migrate_schedules). Those keys only ever lived on a single Redis, never a
-- cluster, so this call may span slots; it runs only where old keys are found.
-- Key schema: see orchestrator/engine/keys.py. KEYS[1] the old hash, KEYS[2] the old
-- log, KEYS[3] the old {p}:schedules, KEYS[4] the old {p}:schedules:names; KEYS[5..8]
-- the same four now. ARGV[1] the schedule's name.
-- 0: not in the old index any more (another process moved it); 1: moved; 2: a schedule
-- of that name exists under the new keys (written since the upgrade): it stays, the old
-- one is dropped.
local name = ARGV[1]
local created = redis.call("ZSCORE", KEYS[4], name)
if not created then return 0 end
local due = redis.call("ZSCORE", KEYS[3], name)
local outcome = 1
if redis.call("EXISTS", KEYS[5]) == 1 then
  outcome = 2
  redis.call("DEL", KEYS[1], KEYS[2])
elseif redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("RENAME", KEYS[1], KEYS[5])
  if redis.call("EXISTS", KEYS[2]) == 1 then redis.call("RENAME", KEYS[2], KEYS[6]) end
  redis.call("ZADD", KEYS[8], created, name)
  if due then redis.call("ZADD", KEYS[7], due, name) end
else
  -- Its hash is gone (an index entry left behind): nothing to move.
  redis.call("DEL", KEYS[2])
end
redis.call("ZREM", KEYS[3], name)
redis.call("ZREM", KEYS[4], name)
return outcome
