-- Read a Map's window in one round trip: its next item index, its item count and the
-- input of that next item. The caller guards the values it read in its commit.
-- Key schema: see orchestrator/keys.py.
--
-- KEYS[1] the execution's step hash; ARGV[1] the Map's step key
-- Returns {next, total, next item's input} (nil where absent).
local next_index = redis.call("HGET", KEYS[1], ARGV[1] .. "|next")
local total = redis.call("HGET", KEYS[1], ARGV[1] .. "|t")
local item = false
if next_index and total and tonumber(next_index) < tonumber(total) then
  item = redis.call("HGET", KEYS[1], ARGV[1] .. "|i" .. next_index)
end
return {next_index, total, item}
