-- Holds a quantity of a general-admission section.
-- KEYS: 1 meta (the event's other keys are found from it: event_keys).
-- ARGV: 1 user, 2 hold id, 3 idempotency key ('' for none), 4 valid queue
--       pass presented (0/1), 5 the user's e-mail is verified (0/1),
--       6 section id, 7 quantity.
-- Returns {'ok', exp, amount, qty} | {'dup', hold} | {'unknown', sid} |
-- {'unavailable', available} | {'limit', used, limit} | {'not_on_sale'} |
-- {'email_unverified'} | {'queue_pass_required'} | {'not_found'} | {'bad', why}; an error reply
-- for keys or arguments out of shape.
local user, hold, idem, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 1 or #ARGV ~= 7 or not is_id(user) or not is_id(hold) or not is_flag(ARGV[4])
  or not is_flag(ARGV[5]) or (idem ~= '' and not is_id(idem)) or not is_int(sid, 0) then
  return shape_error('hold_ga')
end
local k = event_keys(base)
local ga = k.section(sid).ga
local idem_field = idem ~= '' and user .. ':' .. idem
if idem_field then
  local prior = redis.call('HGET', k.idem, idem_field)
  if prior then return { 'dup', prior } end
end
local qty = tonumber(ARGV[7])
if not qty or qty < 1 or qty ~= math.floor(qty) then return { 'bad', 'quantity must be a positive integer' } end

local meta = redis.call('HMGET', k.meta, 'status', 'sale_ms', 'hold_ms', 'limit', 'wr', 's:' .. sid, 'tb', 've')
if not meta[1] then return { 'not_found' } end
local now = now_ms()
if meta[1] ~= 'published' or now < tonumber(meta[2]) then return { 'not_on_sale' } end
if meta[8] == '1' and ARGV[5] ~= '1' then return { 'email_unverified' } end
if meta[5] == '1' and ARGV[4] ~= '1' then return { 'queue_pass_required' } end
local kind, _, _, _, price = layout(meta[6])
if kind ~= 'g' then return { 'unknown', sid } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local sold, live, kept = load_user(redis.call('HGET', k.users, user), now)
if sold + live + qty > limit then return { 'limit', sold + live, limit } end

local avail = tonumber(redis.call('HGET', k.avail, sid) or '0')
if avail < qty then
  -- Reclaim holds that lapsed before the expiry worker saw them.
  local lapsed = redis.call('ZRANGEBYSCORE', ga, '-inf', now)
  for _, member in ipairs(lapsed) do
    local q = tonumber(string.match(member, '^(%d+):'))
    redis.call('ZREM', ga, member)
    avail = redis.call('HINCRBY', k.avail, sid, q)
  end
  if avail < qty then return { 'unavailable', avail } end
end

local exp = fmt(now + hold_ms)
local amount, qty_s = fmt(price * qty), fmt(qty)
if redis.call('HSETNX', k.holds, hold, new_hold(user, exp, qty_s, amount, sid, '', idem)) == 0 then
  return { 'bad', 'hold id in use' }
end
redis.call('HINCRBY', k.avail, sid, -qty)
redis.call('ZADD', ga, exp, qty_s .. ':' .. hold)
announce_hold(k, meta[7], hold, user, sold, kept, idem_field, '', sid, qty_s, amount, exp, now + hold_ms, now)
return { 'ok', exp, amount, qty }
