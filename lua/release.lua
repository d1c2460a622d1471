-- Releases a hold, by its owner or by expiry. Idempotent: a hold that is
-- no longer held is left alone, so exactly one hold.released or
-- hold.expired is ever appended for it. The finished record stays in
-- `holds` (and in `ended`, by end time) until forget.lua drops it.
-- KEYS: 1 holds, 2 avail, 3 users, 4 stream, 5 ended,
--       6.. the seat hash of each of the hold's seats, in the order of its
--       `seats` field, or the section's ga zset for general admission;
--       none for a hold on a resale listing (it takes no seats).
-- ARGV: 1 hold id, 2 reason ('released' | 'expired'), 3 requesting user
--       ('' for the expiry worker).
-- Returns {'released'} | {'expired', exp} | {'noop', status} | {'not_yet', exp}
-- | {'not_found'}; an error reply for keys or arguments out of shape.
local hold, reason, requester = ARGV[1], ARGV[2], ARGV[3]
local base = key_base(KEYS[1], 'holds')
if not base or #ARGV ~= 3 or not is_id(hold) or (reason ~= 'released' and reason ~= 'expired')
  or (requester ~= '' and not is_id(requester))
  or not keys_are(KEYS, base, 2, { 'avail', 'users', 'stream', 'ended' }) then
  return shape_error('release')
end
local h = load_hold(redis.call('HGET', KEYS[1], hold))
if not h then return { 'not_found' } end
if requester ~= '' and requester ~= h.user then return { 'not_found' } end
if h.status ~= 'held' then return { 'noop', h.status } end
local now = now_ms()
if tonumber(h.exp) <= now then
  reason = 'expired' -- whoever asks, a lapsed hold has expired
elseif reason == 'expired' then
  return { 'not_yet', h.exp }
end
-- A hold on a resale listing takes no seats: it is called with none.
if h.listing then
  if #KEYS ~= 5 then return shape_error('release') end
elseif not seat_keys_are(KEYS, base, 6, h.seats, h.section) then
  return shape_error('release')
end

end_hold({ holds = KEYS[1], avail = KEYS[2], users = KEYS[3], stream = KEYS[4], ended = KEYS[5] },
  base, hold, h, reason, now)
return { reason, h.exp }
