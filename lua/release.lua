-- Releases a hold, by its owner or by expiry. Idempotent: a hold that is
-- no longer held is left alone, so exactly one hold.released or
-- hold.expired is ever appended for it.
-- KEYS: 1 hold, 2 avail, 3 users, 4 deadlines, 5 stream, 6 timer,
--       7.. the seat hash of each of the hold's seats, in the order of its
--       `seats` field, or the section's ga zset for general admission.
-- ARGV: 1 hold id, 2 reason ('released' | 'expired'), 3 requesting user
--       ('' for the expiry worker), 4 retention ms of the finished record.
-- Returns {'released'} | {'expired'} | {'noop', status} | {'not_yet', exp}
-- | {'not_found'}; an error reply for keys or arguments out of shape.
local hold, reason, requester = ARGV[1], ARGV[2], ARGV[3]
local base = is_id(hold) and key_base(KEYS[1], 'h:' .. hold)
if not base or #ARGV ~= 4 or (reason ~= 'released' and reason ~= 'expired')
  or (requester ~= '' and not is_id(requester)) or not is_int(ARGV[4], 1)
  or not keys_are(base, 2, { 'avail', 'users', 'deadlines', 'stream', 't:' .. hold }) then
  return shape_error('release')
end
local h = redis.call('HMGET', KEYS[1], 'user', 'status', 'seats', 'section', 'qty', 'exp', 'amount')
local user, status, seats, section, qty, exp = h[1], h[2], h[3], h[4], tonumber(h[5]), tonumber(h[6])
if not user then return { 'not_found' } end
if requester ~= '' and requester ~= user then return { 'not_found' } end
if status ~= 'held' then return { 'noop', status } end
local now = now_ms()
if exp <= now then
  reason = 'expired' -- whoever asks, a lapsed hold has expired
elseif reason == 'expired' then
  return { 'not_yet', exp }
end
if not seat_keys_are(base, 7, seats, section) then return shape_error('release') end

if section ~= '' then
  if redis.call('ZREM', KEYS[7], qty .. ':' .. hold) == 1 then
    redis.call('HINCRBY', KEYS[2], section, qty)
  end
else
  local i = 0
  for id in string.gmatch(seats, '[^,]+') do
    i = i + 1
    local sid, field = string.match(id, '^(%d+):(.+)$')
    local v = redis.call('HGET', KEYS[6 + i], field)
    -- Free only what this hold still owns: a lapsed seat may be someone else's now.
    if v and string.sub(v, 1, 1) == 'h' and string.match(v, ':(.+)$') == hold then
      redis.call('HDEL', KEYS[6 + i], field)
      redis.call('HINCRBY', KEYS[2], sid, 1)
    end
  end
end

local sold, _, kept = load_user(redis.call('HGET', KEYS[3], user), now)
save_user(KEYS[3], user, sold, without(kept, hold))
redis.call('HSET', KEYS[1], 'status', reason, 'ended', fmt(now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('DEL', KEYS[6])
redis.call('ZREM', KEYS[4], hold)
redis.call('XADD', KEYS[5], '*', 'type', 'hold.' .. reason, 'hold', hold, 'user', user, 'seats', seats,
  'section', section, 'qty', qty, 'amount', h[7], 'exp', fmt(exp), 'at', fmt(now))
return { reason }
