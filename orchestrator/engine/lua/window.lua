-- Read a Map's window in one round trip: its next item index, its item count, how many
-- items an ending iteration starts ("|c", absent: one) and the inputs of those items.
-- The caller guards the values it read in its commit.
-- Key schema: see orchestrator/engine/keys.py.
--
-- KEYS[1] the execution's step hash; ARGV[1] the Map's step key
-- Returns {next, total, refill count, input of item next, of next + 1, ...} (nil where
-- absent; the inputs of the items that would start).
local next_index = redis.call("HGET", KEYS[1], ARGV[1] .. "|next")
local total = redis.call("HGET", KEYS[1], ARGV[1] .. "|t")
local count = redis.call("HGET", KEYS[1], ARGV[1] .. "|c")
local out = {next_index, total, count}
if next_index and total then
  local first = tonumber(next_index)
  local last = math.min(tonumber(total), first + (tonumber(count) or 1)) - 1
  for i = first, last do
    out[#out + 1] = redis.call("HGET", KEYS[1], ARGV[1] .. "|i" .. i)
  end
end
return out
