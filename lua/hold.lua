-- Holds specific seats, all or nothing.
-- KEYS: 1 meta, 2 avail, 3 users, 4 deadlines, 5 stream, 6 holds, 7 idem,
--       8.. the seat hash of each seat (aligned with ARGV[5..]).
-- ARGV: 1 user, 2 hold id, 3 idempotency key ('' for none), 4 valid queue
--       pass presented (0/1), 5.. seat ids "<sid>:<row>:<n>".
-- Returns {'ok', exp, amount, qty} | {'dup', hold} | {'unknown', seat…} |
-- {'unavailable', seat…} | {'limit', used, limit} | {'not_on_sale'} |
-- {'queue_pass_required'} | {'not_found'} | {'bad', why}; an error reply
-- for keys or arguments out of shape.
local user, hold, idem = ARGV[1], ARGV[2], ARGV[3]
local base = key_base(KEYS[1], 'meta')
if not base or not is_id(user) or not is_id(hold) or not is_flag(ARGV[4]) or (idem ~= '' and not is_id(idem))
  or not keys_are(KEYS, base, 2, { 'avail', 'users', 'deadlines', 'stream', 'holds', 'idem' }) then
  return shape_error('hold')
end
local idem_field = idem ~= '' and user .. ':' .. idem
if idem_field then
  local prior = redis.call('HGET', KEYS[7], idem_field)
  if prior then return { 'dup', prior } end
end
local n = #KEYS - 7
if n < 1 or n ~= #ARGV - 4 then return { 'bad', 'seat keys and ids differ' } end

local sids, fields, seen, unknown = {}, { 'status', 'sale_ms', 'hold_ms', 'limit', 'wr', 'tb' }, {}, {}
local sid_of, field_of = {}, {}
for i = 1, n do
  local id = ARGV[4 + i]
  local sid, field = string.match(id, '^(%d+):(%d+:%d+)$')
  if seen[id] then return { 'bad', 'duplicate seat ' .. id } end
  seen[id] = true
  if not sid then
    unknown[#unknown + 1] = id
  elseif KEYS[7 + i] ~= base .. 'seats:' .. sid then
    return shape_error('hold')
  else
    sid_of[i], field_of[i] = sid, field
    if not sids[sid] then
      sids[sid] = #fields + 1
      fields[#fields + 1] = 's:' .. sid
    end
  end
end
local meta = redis.call('HMGET', KEYS[1], unpack(fields))
if not meta[1] then return { 'not_found' } end
local now = now_ms()
if meta[1] ~= 'published' or now < tonumber(meta[2]) then return { 'not_on_sale' } end
if meta[5] == '1' and ARGV[4] ~= '1' then return { 'queue_pass_required' } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local amount, spr_of = 0, {}
for i = 1, n do
  if sid_of[i] then
    local kind, rows, spr, _, price = layout(meta[sids[sid_of[i]]])
    local row, num = string.match(field_of[i], '^(%d+):(%d+)$')
    row, num = tonumber(row), tonumber(num)
    if kind ~= 's' or row < 1 or row > rows or num < 1 or num > spr then
      unknown[#unknown + 1] = ARGV[4 + i]
    else
      amount = amount + price
      spr_of[i] = spr
    end
  end
end
if #unknown > 0 then return { 'unknown', unpack(unknown) } end

local sold, live, kept = load_user(redis.call('HGET', KEYS[3], user), now)
if sold + live + n > limit then return { 'limit', sold + live, limit } end

local taken, lapsed = {}, {}
for i = 1, n do
  local v = redis.call('HGET', KEYS[7 + i], field_of[i])
  if v then
    local exp = string.match(v, '^h(%d+):')
    if exp and tonumber(exp) <= now then
      lapsed[i] = true
    else
      taken[#taken + 1] = ARGV[4 + i]
    end
  end
end
if #taken > 0 then return { 'unavailable', unpack(taken) } end

local exp = fmt(now + hold_ms)
local qty, price = fmt(n), fmt(amount)
local seats = n == 1 and ARGV[5] or table.concat(ARGV, ',', 5)
-- The record goes first: a hold id already in use (never, for 64 random
-- bits; but never silently overwritten either) stops before any write.
local rec = save_hold({ status = 'held', user = user, exp = exp, qty = qty, amount = price, section = '',
  seats = seats, order = '', payment = '', idem = idem })
if redis.call('HSETNX', KEYS[6], hold, rec) == 0 then return { 'bad', 'hold id in use' } end
local value = 'h' .. exp .. ':' .. hold
for i = 1, n do
  redis.call('HSET', KEYS[7 + i], field_of[i], value)
  -- A seat taken over from a lapsed hold was never given back to the count.
  if not lapsed[i] then redis.call('HINCRBY', KEYS[2], sid_of[i], -1) end
  seat_index(base, sid_of[i], spr_of[i], field_of[i], true)
end
announce_hold(KEYS, base, meta[6], hold, user, sold, kept, idem_field, seats, '', qty, price, exp, now + hold_ms, now)
return { 'ok', exp, amount, n }
