-- Holds specific seats, all or nothing.
-- KEYS: 1 meta (the event's other keys are found from it: event_keys).
-- ARGV: 1 user, 2 hold id, 3 idempotency key ('' for none), 4 valid queue
--       pass presented (0/1), 5 the user's e-mail is verified (0/1),
--       6.. seat ids "<sid>:<row>:<n>".
-- Returns {'ok', exp, amount, qty} | {'dup', hold} | {'unknown', seat…} |
-- {'unavailable', seat…} | {'limit', used, limit} | {'not_on_sale'} |
-- {'email_unverified'} | {'queue_pass_required'} | {'not_found'} | {'bad', why}; an error reply
-- for keys or arguments out of shape.
local user, hold, idem = ARGV[1], ARGV[2], ARGV[3]
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 1 or not is_id(user) or not is_id(hold) or not is_flag(ARGV[4])
  or not is_flag(ARGV[5]) or (idem ~= '' and not is_id(idem)) then
  return shape_error('hold')
end
local k = event_keys(base)
local idem_field = idem ~= '' and user .. ':' .. idem
if idem_field then
  local prior = redis.call('HGET', k.idem, idem_field)
  if prior then return { 'dup', prior } end
end
local n = #ARGV - 5
if n < 1 then return { 'bad', 'no seats named' } end

-- Each seat id parsed once: its section, its field in the section's seat
-- hash ("<row>:<n>"), row and number; the section's keys and layout below.
local fields, sids, seen, unknown, seat = { 'status', 'sale_ms', 'hold_ms', 'limit', 'wr', 'tb', 've' }, {}, {}, {}, {}
for i = 1, n do
  local id = ARGV[5 + i]
  if seen[id] then return { 'bad', 'duplicate seat ' .. id } end
  seen[id] = true
  local sid, field, row, num = string.match(id, '^(%d+):((%d+):(%d+))$')
  if not sid then
    unknown[#unknown + 1] = id
  else
    seat[i] = { sid = sid, field = field, row = tonumber(row), num = tonumber(num) }
    if not sids[sid] then
      sids[sid] = #fields + 1
      fields[#fields + 1] = 's:' .. sid
    end
  end
end
local meta = redis.call('HMGET', k.meta, unpack(fields))
if not meta[1] then return { 'not_found' } end
local now = now_ms()
if meta[1] ~= 'published' or now < tonumber(meta[2]) then return { 'not_on_sale' } end
if meta[7] == '1' and ARGV[5] ~= '1' then return { 'email_unverified' } end
if meta[5] == '1' and ARGV[4] ~= '1' then return { 'queue_pass_required' } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local amount = 0
for i = 1, n do
  local s = seat[i]
  if s then
    local kind, rows, spr, _, price = layout(meta[sids[s.sid]])
    if kind ~= 's' or s.row < 1 or s.row > rows or s.num < 1 or s.num > spr then
      unknown[#unknown + 1] = ARGV[5 + i]
    else
      amount = amount + price
      s.offset = (s.row - 1) * spr + s.num - 1 -- its byte in the section's `occ`
      s.keys = k.section(s.sid)
    end
  end
end
if #unknown > 0 then return { 'unknown', unpack(unknown) } end

local sold, live, kept = load_user(redis.call('HGET', k.users, user), now)
if sold + live + n > limit then return { 'limit', sold + live, limit } end

local taken = {}
for i = 1, n do
  local s = seat[i]
  local v = redis.call('HGET', s.keys.seats, s.field)
  if v then
    local exp = string.match(v, '^h(%d+):')
    if exp and tonumber(exp) <= now then
      s.lapsed = true
    else
      taken[#taken + 1] = ARGV[5 + i]
    end
  end
end
if #taken > 0 then return { 'unavailable', unpack(taken) } end

local exp = fmt(now + hold_ms)
local qty, price = fmt(n), fmt(amount)
local seats = n == 1 and ARGV[6] or table.concat(ARGV, ',', 6)
-- The record goes first: a hold id already in use (never, for 64 random
-- bits; but never silently overwritten either) stops before any write.
if redis.call('HSETNX', k.holds, hold, new_hold(user, exp, qty, price, '', seats, idem)) == 0 then
  return { 'bad', 'hold id in use' }
end
local value = 'h' .. exp .. ':' .. hold
for i = 1, n do
  local s = seat[i]
  redis.call('HSET', s.keys.seats, s.field, value)
  -- A seat taken over from a lapsed hold was never given back to the count.
  if not s.lapsed then redis.call('HINCRBY', k.avail, s.sid, -1) end
  redis.call('SETRANGE', s.keys.occ, s.offset, '\1')
end
announce_hold(k, meta[6], hold, user, sold, kept, idem_field, seats, '', qty, price, exp, now + hold_ms, now)
return { 'ok', exp, amount, n }
