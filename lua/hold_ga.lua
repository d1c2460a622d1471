-- Holds a quantity of a general-admission section.
-- KEYS: 1 meta, 2 avail, 3 users, 4 deadlines, 5 stream, 6 holds, 7 idem,
--       8 the section's ga zset.
-- ARGV: 1 user, 2 hold id, 3 idempotency key ('' for none), 4 valid queue
--       pass presented (0/1), 5 section id, 6 quantity.
-- Returns {'ok', exp, amount, qty} | {'dup', hold} | {'unknown', sid} |
-- {'unavailable', available} | {'limit', used, limit} | {'not_on_sale'} |
-- {'queue_pass_required'} | {'not_found'} | {'bad', why}; an error reply
-- for keys or arguments out of shape.
local user, hold, idem, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 8 or #ARGV ~= 6 or not is_id(user) or not is_id(hold) or not is_flag(ARGV[4])
  or (idem ~= '' and not is_id(idem)) or not is_int(sid, 0)
  or not keys_are(KEYS, base, 2, { 'avail', 'users', 'deadlines', 'stream', 'holds', 'idem', 'ga:' .. sid }) then
  return shape_error('hold_ga')
end
local idem_field = idem ~= '' and user .. ':' .. idem
if idem_field then
  local prior = redis.call('HGET', KEYS[7], idem_field)
  if prior then return { 'dup', prior } end
end
local qty = tonumber(ARGV[6])
if not qty or qty < 1 or qty ~= math.floor(qty) then return { 'bad', 'quantity must be a positive integer' } end

local meta = redis.call('HMGET', KEYS[1], 'status', 'sale_ms', 'hold_ms', 'limit', 'wr', 's:' .. sid, 'tb')
if not meta[1] then return { 'not_found' } end
local now = now_ms()
if meta[1] ~= 'published' or now < tonumber(meta[2]) then return { 'not_on_sale' } end
if meta[5] == '1' and ARGV[4] ~= '1' then return { 'queue_pass_required' } end
local kind, _, _, _, price = layout(meta[6])
if kind ~= 'g' then return { 'unknown', sid } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local sold, live, kept = load_user(redis.call('HGET', KEYS[3], user), now)
if sold + live + qty > limit then return { 'limit', sold + live, limit } end

local avail = tonumber(redis.call('HGET', KEYS[2], sid) or '0')
if avail < qty then
  -- Reclaim holds that lapsed before the expiry worker saw them.
  local lapsed = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now)
  for _, member in ipairs(lapsed) do
    local q = tonumber(string.match(member, '^(%d+):'))
    redis.call('ZREM', KEYS[8], member)
    avail = redis.call('HINCRBY', KEYS[2], sid, q)
  end
  if avail < qty then return { 'unavailable', avail } end
end

local exp = fmt(now + hold_ms)
local amount, qty_s = fmt(price * qty), fmt(qty)
local rec = save_hold({ status = 'held', user = user, exp = exp, qty = qty_s, amount = amount, section = sid,
  seats = '', order = '', payment = '', idem = idem })
if redis.call('HSETNX', KEYS[6], hold, rec) == 0 then return { 'bad', 'hold id in use' } end
redis.call('HINCRBY', KEYS[2], sid, -qty)
redis.call('ZADD', KEYS[8], exp, qty_s .. ':' .. hold)
announce_hold(KEYS, base, meta[7], hold, user, sold, kept, idem_field, '', sid, qty_s, amount, exp, now + hold_ms, now)
return { 'ok', exp, amount, qty }
