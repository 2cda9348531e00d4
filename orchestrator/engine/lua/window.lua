-- Read a Map's window in one round trip: its next item index, its item count, how many
-- items an ending iteration starts ("|c", absent: one) and the inputs of those items.
-- The caller guards the values it read in its commit.
-- Key schema: see orchestrator/engine/keys.py.
--
-- KEYS[1] the execution's step hash, KEYS[2] the Map's branch hash
-- ARGV[1] the Map's step key, ARGV[2] items per input chunk (records.ITEM_CHUNK)
-- Returns {next, total, refill count, chunk holding item next, the chunks after it up to
-- the one holding the last item that would start} (nil where absent). A refill starts
-- fewer items than a chunk holds, so that is one or two fields.
local next_index = redis.call("HGET", KEYS[1], ARGV[1] .. "|next")
local total = redis.call("HGET", KEYS[1], ARGV[1] .. "|t")
local count = redis.call("HGET", KEYS[1], ARGV[1] .. "|c")
local out = {next_index, total, count}
if next_index and total then
  local first = tonumber(next_index)
  local last = math.min(tonumber(total), first + (tonumber(count) or 1)) - 1
  local size = tonumber(ARGV[2])
  if last >= first then
    for chunk = math.floor(first / size), math.floor(last / size) do
      out[#out + 1] = redis.call("HGET", KEYS[2], "k" .. chunk)
    end
  end
end
return out
