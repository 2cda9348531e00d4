-- Read a Map's window in one round trip: its next item index, its item count, how many
-- items an ending iteration starts ("|c", absent: one) and the inputs of those items.
-- The caller guards the values it read in its commit.
-- Key schema: see orchestrator/engine/keys.py.
--
-- KEYS[1] the execution's step hash, KEYS[2] the Map's branch hash
-- ARGV[1] the Map's step key, ARGV[2] items per input chunk (records.ITEM_CHUNK),
--   ARGV[3] (optional) how many items will start, when the caller knows (a refill
--   timer's deferred items: at most the interpreter's MAP_START_BUDGET)
-- Returns {next, total, refill count, chunk holding item next, the chunks after it up to
-- the one holding the last item that would start} (nil where absent). An ending
-- iteration starts fewer items than a chunk holds, so that is one or two fields; a
-- refill's budget of items, a few more.
local next_index = redis.call("HGET", KEYS[1], ARGV[1] .. "|next")
local total = redis.call("HGET", KEYS[1], ARGV[1] .. "|t")
local count = redis.call("HGET", KEYS[1], ARGV[1] .. "|c")
local out = {next_index, total, count}
if next_index and total then
  local first = tonumber(next_index)
  local starting = tonumber(ARGV[3]) or tonumber(count) or 1
  local last = math.min(tonumber(total), first + starting) - 1
  local size = tonumber(ARGV[2])
  if last >= first then
    for chunk = math.floor(first / size), math.floor(last / size) do
      out[#out + 1] = redis.call("HGET", KEYS[2], "k" .. chunk)
    end
  end
end
return out
