-- Drops what the expiry worker has released from a deadline bucket: the
-- first `n` ids of `d:<b>`, if the first is still the one the worker read
-- (another worker that raced it may have dropped them already, and then
-- nothing is dropped twice). Once the list is empty the bucket leaves
-- `deadlines`.
-- KEYS: 1 deadlines, 2 the bucket's list d:<b>.
-- ARGV: 1 bucket, 2 n (0 when the list was found empty), 3 the first id
--       read ('' when none).
-- Returns the number of ids left in the list; an error reply for keys or
-- arguments out of shape.
local base = key_base(KEYS[1], 'deadlines')
if not base or #KEYS ~= 2 or #ARGV ~= 3 or not is_int(ARGV[1], 1) or not is_int(ARGV[2], 0)
  or (ARGV[3] ~= '' and not is_id(ARGV[3])) or KEYS[2] ~= base .. 'd:' .. ARGV[1] then
  return shape_error('trim_bucket')
end
if ARGV[3] ~= '' and tonumber(ARGV[2]) > 0 and redis.call('LINDEX', KEYS[2], 0) == ARGV[3] then
  redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
end
local left = redis.call('LLEN', KEYS[2])
if left == 0 then redis.call('ZREM', KEYS[1], ARGV[1]) end
return left
