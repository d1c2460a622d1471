-- Holds a quantity of a general-admission section.
-- KEYS: 1 meta, 2 avail, 3 users, 4 deadlines, 5 stream, 6 hold, 7 timer,
--       8 idem, 9 the section's ga zset.
-- ARGV: 1 user, 2 hold id, 3 use idem (0/1), 4 idem ttl ms, 5 valid queue
--       pass presented (0/1), 6 section id, 7 quantity.
-- Returns {'ok', exp, amount, qty} | {'dup', hold} | {'unknown', sid} |
-- {'unavailable', available} | {'limit', used, limit} | {'not_on_sale'} |
-- {'queue_pass_required'} | {'not_found'} | {'bad', why}; an error reply
-- for keys or arguments out of shape.
local user, hold, sid = ARGV[1], ARGV[2], ARGV[6]
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 9 or #ARGV ~= 7 or not is_id(user) or not is_id(hold) or not is_flag(ARGV[3])
  or not is_flag(ARGV[5]) or (ARGV[3] == '1' and not is_int(ARGV[4], 1)) or not is_int(sid, 0)
  or not keys_are(base, 2, { 'avail', 'users', 'deadlines', 'stream', 'h:' .. hold, 't:' .. hold })
  -- the idempotency key is only touched (and so only checked) when used
  or (ARGV[3] == '1' and string.sub(KEYS[8] or '', 1, #base + #user + 6) ~= base .. 'idem:' .. user .. ':')
  or KEYS[9] ~= base .. 'ga:' .. sid then
  return shape_error('hold_ga')
end
if ARGV[3] == '1' then
  local prior = redis.call('GET', KEYS[8])
  if prior then return { 'dup', prior } end
end
local qty = tonumber(ARGV[7])
if not qty or qty < 1 or qty ~= math.floor(qty) then return { 'bad', 'quantity must be a positive integer' } end

local meta = redis.call('HMGET', KEYS[1], 'status', 'sale_ms', 'hold_ms', 'limit', 'wr', 's:' .. sid)
if not meta[1] then return { 'not_found' } end
local now = now_ms()
if meta[1] ~= 'published' or now < tonumber(meta[2]) then return { 'not_on_sale' } end
if meta[5] == '1' and ARGV[5] ~= '1' then return { 'queue_pass_required' } end
local kind, _, _, _, price = layout(meta[6])
if kind ~= 'g' then return { 'unknown', sid } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local sold, live, kept = load_user(redis.call('HGET', KEYS[3], user), now)
if sold + live + qty > limit then return { 'limit', sold + live, limit } end

local avail = tonumber(redis.call('HGET', KEYS[2], sid) or '0')
if avail < qty then
  -- Reclaim holds that lapsed before the expiry worker saw them.
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[9], '-inf', now)
  for _, member in ipairs(lapsed) do
    local q = tonumber(string.match(member, '^(%d+):'))
    redis.call('ZREM', KEYS[9], member)
    avail = redis.call('HINCRBY', KEYS[2], sid, q)
  end
  if avail < qty then return { 'unavailable', avail } end
end

local exp = now + hold_ms
local amount = price * qty
redis.call('HINCRBY', KEYS[2], sid, -qty)
redis.call('ZADD', KEYS[9], exp, qty .. ':' .. hold)
redis.call('HSET', KEYS[6], 'user', user, 'status', 'held', 'seats', '', 'section', sid,
  'qty', qty, 'amount', amount, 'exp', fmt(exp), 'created', fmt(now))
redis.call('SET', KEYS[7], '1', 'PX', hold_ms)
redis.call('ZADD', KEYS[4], exp, hold)
kept[#kept + 1] = hold .. ',' .. qty .. ',' .. fmt(exp)
save_user(KEYS[3], user, sold, kept)
if ARGV[3] == '1' then redis.call('SET', KEYS[8], hold, 'PX', ARGV[4]) end
redis.call('XADD', KEYS[5], '*', 'type', 'hold.created', 'hold', hold, 'user', user, 'seats', '',
  'section', sid, 'qty', qty, 'amount', amount, 'exp', fmt(exp), 'at', fmt(now))
return { 'ok', exp, amount, qty }
