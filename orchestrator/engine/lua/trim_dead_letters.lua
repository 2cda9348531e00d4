-- Drop the oldest dead letters beyond the limit, index entry and letter together.
-- KEYS[1] the dead-letter index; ARGV[1] how many to keep, ARGV[2] the letters' key prefix.
local over = redis.call("ZCARD", KEYS[1]) - tonumber(ARGV[1])
if over <= 0 then return 0 end
local popped = redis.call("ZPOPMIN", KEYS[1], over)
for i = 1, #popped, 2 do redis.call("DEL", ARGV[2] .. popped[i]) end
return over
