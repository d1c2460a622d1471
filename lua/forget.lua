-- Drops finished holds (released, expired or confirmed) from Redis once
-- Postgres has them: the caller passes a cutoff no later than the end time
-- of the oldest stream entry the persister has not yet committed, and no
-- later than now minus the retention that payment retries and clients'
-- reads of a finished hold rely on. Their idempotency entries go with them.
-- KEYS: 1 holds, 2 ended, 3 idem.
-- ARGV: 1 cutoff (epoch ms; records that ended at or before it go), 2 at
--       most this many.
-- Returns the number of records dropped; an error reply for keys or
-- arguments out of shape.
local base = key_base(KEYS[1], 'holds')
if not base or #KEYS ~= 3 or #ARGV ~= 2 or not is_int(ARGV[1], -1e17) or not is_int(ARGV[2], 1)
  or not keys_are(KEYS, base, 2, { 'ended', 'idem' }) then
  return shape_error('forget')
end
local done = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, hold in ipairs(done) do
  local h = load_hold(redis.call('HGET', KEYS[1], hold))
  -- A record that is held again cannot be (ids are never reused), but a
  -- live hold is never dropped.
  if not h or h.status ~= 'held' then
    redis.call('HDEL', KEYS[1], hold)
    if h and h.idem ~= '' then redis.call('HDEL', KEYS[3], h.user .. ':' .. h.idem) end
  end
  redis.call('ZREM', KEYS[2], hold)
end
return #done
