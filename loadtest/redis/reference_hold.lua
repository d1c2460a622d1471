-- The fixed reference of scripts/bench: the least a hold can do in one
-- script — read a seat, write it, announce it on a stream. It is never
-- tuned: it is the denominator the bench divides the real hold function's
-- rate by, so a faster hold function shows as a higher ratio, not as a
-- faster denominator.
-- KEYS: 1 a seat hash, 2 a stream. ARGV: 1 a seat field, 2 a hold id.
local before = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], 'h' .. ARGV[2])
redis.call('XADD', KEYS[2], '*', 'type', 'hold.created', 'hold', ARGV[2], 'seats', ARGV[1])
return before and 0 or 1
