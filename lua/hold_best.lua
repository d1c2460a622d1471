-- Holds the best `quantity` free seats of a section, chosen here in one
-- atomic step: with `adjacent`, the block of adjacent seats of one row in
-- the lowest row that has one, nearest that row's centre; without, the
-- seats nearest the centre of the lowest rows, row after row. The search
-- reads the section's seat index (`occ` and `runs`, see `seat_index` in
-- lib.lua), skipping the rows `runs` knows cannot fit, and checks the
-- chosen seats' fields before writing: a stale index never double-books (a
-- row found wrong is rebuilt from the seat hash and the search runs
-- again). When nothing fits, holds that have lapsed in deadline buckets
-- already ended are expired first (as expire_bucket.lua, oldest bucket
-- first, up to 8 buckets of 100, stopping once as many holds as seats
-- wanted were ended), then the search runs once more. A hold lapsed in the
-- bucket not yet ended (the last 250 ms) keeps its seats until then. A general-admission section is
-- held as hold_ga.lua holds it, so the services need not know a section's
-- kind. The hold, its record, deadline, user entry, idempotency entry and
-- `hold.created` are exactly hold.lua's.
-- KEYS: 1 meta (the event's other keys are found from it: event_keys).
-- ARGV: 1 user, 2 hold id, 3 idempotency key ('' for none), 4 valid queue
--       pass presented (0/1), 5 the user's e-mail is verified (0/1),
--       6 section id, 7 quantity (1 to 50), 8 adjacent (0/1).
-- Returns {'ok', exp, amount, qty, seat…} | {'dup', hold} | {'unknown', sid}
-- | {'no_block', available} | {'limit', used, limit} | {'not_on_sale'} |
-- {'email_unverified'} | {'queue_pass_required'} | {'not_found'} | {'bad', why}, or hold_ga.lua's
-- answer for a general-admission section; an error reply for keys or
-- arguments out of shape.
local user, hold, idem, sid = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 1 or #ARGV ~= 8 or not is_id(user) or not is_id(hold) or not is_flag(ARGV[4])
  or not is_flag(ARGV[5]) or (idem ~= '' and not is_id(idem)) or not is_int(sid, 0) or not is_flag(ARGV[8]) then
  return shape_error('hold_best')
end
local k = event_keys(base)
local idem_field = idem ~= '' and user .. ':' .. idem
if idem_field then
  local prior = redis.call('HGET', k.idem, idem_field)
  if prior then return { 'dup', prior } end
end
if not is_int(ARGV[7], 1) or tonumber(ARGV[7]) > 50 then return { 'bad', 'quantity must be 1 to 50' } end
local q, adjacent = tonumber(ARGV[7]), ARGV[8] == '1'

local meta = redis.call('HMGET', k.meta, 'status', 'sale_ms', 'hold_ms', 'limit', 'wr', 's:' .. sid, 'tb', 've')
if not meta[1] then return { 'not_found' } end
if meta[6] and string.sub(meta[6], 1, 2) == 'g,' then
  return hold_ga(KEYS, { ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7] })
end
local now = now_ms()
if meta[1] ~= 'published' or now < tonumber(meta[2]) then return { 'not_on_sale' } end
if meta[8] == '1' and ARGV[5] ~= '1' then return { 'email_unverified' } end
if meta[5] == '1' and ARGV[4] ~= '1' then return { 'queue_pass_required' } end
local kind, rows, spr, _, price = layout(meta[6])
if kind ~= 's' then return { 'unknown', sid } end
local hold_ms, limit = tonumber(meta[3]), tonumber(meta[4])

local sold, live, kept = load_user(redis.call('HGET', k.users, user), now)
if sold + live + q > limit then return { 'limit', sold + live, limit } end

local section = k.section(sid)
local seats_key, occ, runs_key = section.seats, section.occ, section.runs

-- The best seats by the index, as {row, n} pairs, or nil. Each row read and
-- found wanting has its longest run recorded, so later calls skip it.
local function search()
  if adjacent and q > spr then return nil end
  local idx = redis.call('GET', runs_key) or ''
  local class = adjacent and fits_class(q) or '[^\1]'
  local picks, r = {}, 1
  while r <= rows do
    if r <= #idx then
      r = string.find(idx, class, r) or #idx + 1
      if r > rows then break end
    end
    local row = occ_row(occ, spr, r)
    if adjacent then
      local s = best_block(row, q)
      if s then
        for n = s, s + q - 1 do picks[#picks + 1] = { r, n } end
        return picks
      end
    else
      local got = {}
      nearest_free(row, q - #picks, got)
      for _, n in ipairs(got) do picks[#picks + 1] = { r, n } end
      if #picks == q then return picks end
    end
    note_run(runs_key, r, row)
    r = r + 1
  end
  return nil
end

-- Sets row r of the index from the seat hash itself.
local function repair(r)
  local bytes = {}
  for first = 1, spr, 1000 do
    local fields = {}
    for n = first, math.min(spr, first + 999) do fields[#fields + 1] = r .. ':' .. n end
    for _, v in ipairs(redis.call('HMGET', seats_key, unpack(fields))) do bytes[#bytes + 1] = v and '\1' or '\0' end
  end
  redis.call('SETRANGE', occ, (r - 1) * spr, table.concat(bytes))
  redis.call('SETRANGE', runs_key, r - 1, '\0')
end

local avail = tonumber(redis.call('HGET', k.avail, sid) or '0')
local picks, fields, lapsed, reclaimed, repairs = nil, {}, {}, false, 0
while true do
  picks = avail >= q and search() or nil
  if not picks and not reclaimed then
    -- Holds that lapsed before the expiry worker ended them still take
    -- their seats in the index and the count: end those now, then retry.
    reclaimed = true
    local n = 0
    -- Oldest ended bucket first, until as many holds as seats wanted
    -- were ended or 8 buckets were looked at (a bounded step: the expiry
    -- worker does the rest).
    for _, b in ipairs(redis.call('ZRANGEBYSCORE', k.deadlines, '-inf', now, 'LIMIT', 0, 8)) do
      local out = expire_bucket({ k.holds, k.avail, k.users, k.stream, k.ended, k.deadlines, base .. 'd:' .. b }, { b, '100' })
      if type(out[1]) == 'number' then n = n + out[1] end
      if n >= q then break end
    end
    if n > 0 then
      avail = tonumber(redis.call('HGET', k.avail, sid) or '0')
      picks = avail >= q and search() or nil
    end
  end
  if not picks then return { 'no_block', avail } end
  -- The index chose; the seat hash decides. A free seat has no field; a
  -- lapsed hold's seat is taken over as hold.lua takes it over.
  fields, lapsed = {}, {}
  for i, p in ipairs(picks) do fields[i] = p[1] .. ':' .. p[2] end
  local wrong
  for i, v in ipairs(redis.call('HMGET', seats_key, unpack(fields))) do
    if v then
      local e = string.match(v, '^h(%d+):')
      if e and tonumber(e) <= now then lapsed[i] = true else wrong = picks[i][1] end
    end
  end
  if not wrong then break end
  repairs = repairs + 1
  if repairs > 16 then return { 'no_block', avail } end
  repair(wrong)
end

local n = #picks
local exp = fmt(now + hold_ms)
local ids = {}
for i = 1, n do ids[i] = sid .. ':' .. fields[i] end
local seats = table.concat(ids, ',')
local qty, amount = fmt(n), fmt(price * n)
if redis.call('HSETNX', k.holds, hold, new_hold(user, exp, qty, amount, '', seats, idem)) == 0 then
  return { 'bad', 'hold id in use' }
end
local value = 'h' .. exp .. ':' .. hold
local writes, fresh, rows_taken = {}, 0, {}
for i, p in ipairs(picks) do
  writes[#writes + 1] = fields[i]
  writes[#writes + 1] = value
  if not lapsed[i] then fresh = fresh + 1 end
  redis.call('SETRANGE', occ, (p[1] - 1) * spr + p[2] - 1, '\1')
  rows_taken[p[1]] = true
end
redis.call('HSET', seats_key, unpack(writes))
if fresh > 0 then redis.call('HINCRBY', k.avail, sid, -fresh) end
for r in pairs(rows_taken) do note_run(runs_key, r, occ_row(occ, spr, r)) end
announce_hold(k, meta[7], hold, user, sold, kept, idem_field, seats, '', qty, amount, exp, now + hold_ms, now)
return { 'ok', exp, price * n, n, unpack(ids) }
