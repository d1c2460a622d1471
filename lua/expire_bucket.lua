-- Expires the holds of a deadline bucket that has ended (by Redis's clock),
-- up to `n` of them in one call: each one still held is ended as
-- 'expired' exactly as release.lua would (one finished or forgotten
-- meanwhile is left alone), then the ids are dropped from the bucket's
-- list, and the bucket from `deadlines` once its list is empty. Atomic, so
-- two workers never drop what the other has not done.
-- KEYS: 1 holds, 2 avail, 3 users, 4 stream, 5 ended, 6 deadlines, 7 the
--       bucket's list d:<b>.
-- ARGV: 1 bucket, 2 n.
-- Returns {expired, left, lag_ms…}: how many this call expired, how many
-- ids the list still has (-1 if the bucket has not ended yet), and each
-- expired hold's lag from its deadline; an error reply for keys or
-- arguments out of shape.
local base = key_base(KEYS[1], 'holds')
if not base or #KEYS ~= 7 or #ARGV ~= 2 or not is_int(ARGV[1], 1) or not is_int(ARGV[2], 1)
  or not keys_are(KEYS, base, 2, { 'avail', 'users', 'stream', 'ended', 'deadlines', 'd:' .. ARGV[1] }) then
  return shape_error('expire_bucket')
end
local now = now_ms()
if tonumber(ARGV[1]) * BUCKET_MS > now then return { 0, -1 } end
local ids = redis.call('LRANGE', KEYS[7], 0, tonumber(ARGV[2]) - 1)
local k = { holds = KEYS[1], avail = KEYS[2], users = KEYS[3], stream = KEYS[4], ended = KEYS[5] }
local out = { 0, 0 }
for _, hold in ipairs(ids) do
  local h = load_hold(redis.call('HGET', KEYS[1], hold))
  if h and h.status == 'held' and tonumber(h.exp) <= now then
    end_hold(k, base, hold, h, 'expired', now)
    out[1] = out[1] + 1
    out[#out + 1] = now - tonumber(h.exp)
  end
end
if #ids > 0 then redis.call('LTRIM', KEYS[7], #ids, -1) end
out[2] = redis.call('LLEN', KEYS[7])
if out[2] == 0 then redis.call('ZREM', KEYS[6], ARGV[1]) end
return out
