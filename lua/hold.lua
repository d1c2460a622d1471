-- Holds specific seats, all or nothing.
-- KEYS: 1 meta, 2 avail, 3 users, 4 deadlines, 5 stream, 6 hold, 7 timer,
--       8 idem, 9.. the seat hash of each seat (aligned with ARGV[6..]).
-- ARGV: 1 user, 2 hold id, 3 use idem (0/1), 4 idem ttl ms, 5 valid queue
--       pass presented (0/1), 6.. seat ids "<sid>:<row>:<n>".
-- Returns {'ok', exp, amount, qty} | {'dup', hold} | {'unknown', seat…} |
-- {'unavailable', seat…} | {'limit', used, limit} | {'not_on_sale'} |
-- {'queue_pass_required'} | {'not_found'} | {'bad', why}; an error reply
-- for keys or arguments out of shape.
local user, hold = ARGV[1], ARGV[2]
local base = key_base(KEYS[1], 'meta')
if not base or not is_id(user) or not is_id(hold) or not is_flag(ARGV[3]) or not is_flag(ARGV[5])
  or (ARGV[3] == '1' and not is_int(ARGV[4], 1))
  or not keys_are(base, 2, { 'avail', 'users', 'deadlines', 'stream', 'h:' .. hold, 't:' .. hold })
  -- the idempotency key is only touched (and so only checked) when used
  or (ARGV[3] == '1' and string.sub(KEYS[8] or '', 1, #base + #user + 6) ~= base .. 'idem:' .. user .. ':') then
  return shape_error('hold')
end
if ARGV[3] == '1' then
  local prior = redis.call('GET', KEYS[8])
  if prior then return { 'dup', prior } end
end
local n = #KEYS - 8
if n < 1 or n ~= #ARGV - 5 then return { 'bad', 'seat keys and ids differ' } end

local sids, fields, seen, unknown = {}, { 'status', 'sale_ms', 'hold_ms', 'limit', 'wr' }, {}, {}
local sid_of, field_of = {}, {}
for i = 1, n do
  local id = ARGV[5 + i]
  local sid, row, num = string.match(id, '^(%d+):(%d+):(%d+)$')
  if seen[id] then return { 'bad', 'duplicate seat ' .. id } end
  seen[id] = true
  if not sid then
    unknown[#unknown + 1] = id
  elseif KEYS[8 + i] ~= base .. 'seats:' .. sid then
    return shape_error('hold')
  else
    sid_of[i], field_of[i] = sid, row .. ':' .. num
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
if meta[5] == '1' and ARGV[5] ~= '1' then return { 'queue_pass_required' } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local amount = 0
for i = 1, n do
  if sid_of[i] then
    local kind, rows, spr, _, price = layout(meta[sids[sid_of[i]]])
    local row, num = string.match(field_of[i], '^(%d+):(%d+)$')
    row, num = tonumber(row), tonumber(num)
    if kind ~= 's' or row < 1 or row > rows or num < 1 or num > spr then
      unknown[#unknown + 1] = ARGV[5 + i]
    else
      amount = amount + price
    end
  end
end
if #unknown > 0 then return { 'unknown', unpack(unknown) } end

local sold, live, kept = load_user(redis.call('HGET', KEYS[3], user), now)
if sold + live + n > limit then return { 'limit', sold + live, limit } end

local taken, lapsed = {}, {}
for i = 1, n do
  local v = redis.call('HGET', KEYS[8 + i], field_of[i])
  if v then
    local exp = string.match(v, '^h(%d+):')
    if exp and tonumber(exp) <= now then
      lapsed[i] = true
    else
      taken[#taken + 1] = ARGV[5 + i]
    end
  end
end
if #taken > 0 then return { 'unavailable', unpack(taken) } end

local exp = now + hold_ms
local value = 'h' .. fmt(exp) .. ':' .. hold
local ids = {}
for i = 1, n do
  redis.call('HSET', KEYS[8 + i], field_of[i], value)
  -- A seat taken over from a lapsed hold was never given back to the count.
  if not lapsed[i] then redis.call('HINCRBY', KEYS[2], sid_of[i], -1) end
  ids[i] = ARGV[5 + i]
end
local seats = table.concat(ids, ',')
redis.call('HSET', KEYS[6], 'user', user, 'status', 'held', 'seats', seats, 'section', '',
  'qty', n, 'amount', amount, 'exp', fmt(exp), 'created', fmt(now))
redis.call('SET', KEYS[7], '1', 'PX', hold_ms)
redis.call('ZADD', KEYS[4], exp, hold)
kept[#kept + 1] = hold .. ',' .. n .. ',' .. fmt(exp)
save_user(KEYS[3], user, sold, kept)
if ARGV[3] == '1' then redis.call('SET', KEYS[8], hold, 'PX', ARGV[4]) end
redis.call('XADD', KEYS[5], '*', 'type', 'hold.created', 'hold', hold, 'user', user, 'seats', seats,
  'section', '', 'qty', n, 'amount', amount, 'exp', fmt(exp), 'at', fmt(now))
return { 'ok', exp, amount, n }
