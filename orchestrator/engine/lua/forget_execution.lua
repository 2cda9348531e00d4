-- Drop an execution whose record expired from listing indexes, unless it exists again.
--
-- A listing that meets an id whose record is gone drops it here rather than with a plain
-- ZREM: between its read and the drop, the same name may have been started again (and
-- indexed), which must stay. Key schema: see orchestrator/engine/keys.py.
--
-- KEYS[1] the execution record, KEYS[2..] the indexes; ARGV[1] the execution id.
-- Returns 1 if it was dropped, 0 if the record exists.
if redis.call("EXISTS", KEYS[1]) == 1 then return 0 end
for k = 2, #KEYS do
  redis.call("ZREM", KEYS[k], ARGV[1])
end
return 1
