-- Drop one dead letter, index entry and letter together, if it is still among the
-- oldest beyond the limit (another caller may have dropped it, or letters expired).
-- Key schema: see orchestrator/engine/keys.py. The letter is passed in KEYS, so a call
-- touches the global index and one letter (one execution's slot) only.
-- KEYS[1] the dead-letter index, KEYS[2] the letter; ARGV[1] how many to keep,
-- ARGV[2] the letter's id (its member in the index).
-- Returns 1 if it dropped the letter, else 0.
local rank = redis.call("ZRANK", KEYS[1], ARGV[2])
if not rank then return 0 end
if rank >= redis.call("ZCARD", KEYS[1]) - tonumber(ARGV[1]) then return 0 end
redis.call("ZREM", KEYS[1], ARGV[2])
redis.call("DEL", KEYS[2])
return 1
