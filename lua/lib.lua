-- Shared helpers: the head of the `stampede` Redis Functions library,
-- compiled once when the library is loaded (FUNCTION LOAD), not on every call.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- A user's record: "<sold>;<hold>,<qty>,<exp>;...". Returns sold, the qty
-- of live holds, and the live entries (lapsed ones are dropped).
local function load_user(rec, now)
  local sold, live, kept = 0, 0, {}
  if rec then
    local first = true
    for part in string.gmatch(rec, '[^;]+') do
      if first then
        sold = tonumber(part) or 0
        first = false
      else
        local q, e = string.match(part, '^[^,]+,(%d+),(%d+)$')
        if q and tonumber(e) > now then
          live = live + tonumber(q)
          kept[#kept + 1] = part
        end
      end
    end
  end
  return sold, live, kept
end

local function save_user(key, user, sold, kept)
  if sold == 0 and #kept == 0 then
    redis.call('HDEL', key, user)
  else
    redis.call('HSET', key, user, string.format('%d', sold) .. (#kept > 0 and ';' .. table.concat(kept, ';') or ''))
  end
end

-- Drops `hold` from a user's entries.
local function without(kept, hold)
  local out = {}
  local prefix = hold .. ','
  for _, part in ipairs(kept) do
    if string.sub(part, 1, #prefix) ~= prefix then out[#out + 1] = part end
  end
  return out
end

-- Parsed once and kept: a section's layout text is the same on every hold
-- of it, and its pattern match and four number conversions cost a hold
-- more than a redis.call. At most CACHE_MAX texts are kept; past that the
-- cache starts anew (its only cost is the parsing it saves).
local CACHE_MAX = 4096
local layouts, layout_count = {}, 0

-- A section's layout from meta: kind, rows, seats per row, capacity, price.
local function layout(s)
  if not s then return nil end
  local l = layouts[s]
  if not l then
    local kind, rows, spr, cap, price = string.match(s, '^(%a),(%d+),(%d+),(%d+),(%d+)$')
    if not kind then return nil end
    if layout_count >= CACHE_MAX then layouts, layout_count = {}, 0 end
    l = { kind, tonumber(rows), tonumber(spr), tonumber(cap), tonumber(price) }
    layouts[s], layout_count = l, layout_count + 1
  end
  return l[1], l[2], l[3], l[4], l[5]
end

-- An event's keys by name, built once per event and kept (as layouts
-- are). The hold functions are called with the event's meta key alone:
-- it routes the call (every key of an event shares its hash tag, so its
-- cluster slot), and the others are found here, not passed, formatted
-- and compared on every call. `section(sid)` gives a section's keys.
local events, event_count = {}, 0

local function event_keys(base)
  local k = events[base]
  if k then return k end
  if event_count >= CACHE_MAX then events, event_count = {}, 0 end
  local sections, kept = {}, 0
  k = { base = base, meta = base .. 'meta', avail = base .. 'avail', users = base .. 'users',
    deadlines = base .. 'deadlines', stream = base .. 'stream', holds = base .. 'holds', idem = base .. 'idem',
    ended = base .. 'ended' }
  k.section = function(sid)
    local s = sections[sid]
    if not s then
      s = { seats = base .. 'seats:' .. sid, occ = base .. 'occ:' .. sid, runs = base .. 'runs:' .. sid,
        ga = base .. 'ga:' .. sid }
      -- A section id is at most 18 digits and an event has few sections;
      -- ids that name none (a caller's typo) are not kept.
      if kept < 256 then sections[sid], kept = s, kept + 1 end
    end
    return s
  end
  events[base], event_count = k, event_count + 1
  return k
end

local function fmt(n)
  return string.format('%d', n)
end

-- Shape checks. The services always pass the event's own keys, in the
-- documented order, and well-formed arguments; anything else is a bug or an
-- attack, and is refused with an error reply before anything is written
-- (Redis does not roll a script back: an error halfway would leave half a
-- change, and a wrong key would put inventory where no counter sees it).
local function is_id(s)
  return type(s) == 'string' and #s >= 1 and #s <= 128 and string.find(s, '^[%w_-]+$') ~= nil
end

local function is_int(s, min)
  return type(s) == 'string' and #s <= 18 and string.find(s, '^-?%d+$') ~= nil and tonumber(s) >= min
end

local function is_flag(s)
  return s == '0' or s == '1'
end

-- What precedes `suffix` at the end of `key` (the event's base, up to and
-- including its last ':'), or nil.
local function key_base(key, suffix)
  if type(key) ~= 'string' or #key <= #suffix or string.sub(key, -#suffix) ~= suffix then return nil end
  return string.sub(key, 1, #key - #suffix)
end

-- KEYS[first], KEYS[first + 1], ... are base .. each suffix.
local function keys_are(KEYS, base, first, suffixes)
  for i, s in ipairs(suffixes) do
    if KEYS[first + i - 1] ~= base .. s then return false end
  end
  return true
end

-- The seat keys KEYS[first..] of a hold's comma list of seats, or its
-- general-admission section's set: exactly these, nothing more.
local function seat_keys_are(KEYS, base, first, seats, section)
  if section ~= '' then
    return #KEYS == first and KEYS[first] == base .. 'ga:' .. section
  end
  local i = 0
  for id in string.gmatch(seats, '[^,]+') do
    if KEYS[first + i] ~= base .. 'seats:' .. (string.match(id, '^(%d+):') or '?') then return false end
    i = i + 1
  end
  return #KEYS == first + i - 1
end

local function shape_error(script)
  return redis.error_reply('ERR ' .. script .. ': keys or arguments out of shape')
end

-- A hold's record: one field of the event's `holds` hash, keyed by the hold
-- id, "status|user|exp|qty|amount|section|seats|order|payment|idem", and
-- for a hold on a resale listing (hold_listing.lua) "|<listing>" after
-- that: its seats or section are the listed ticket's, which it does not
-- take from inventory (the ticket is sold already), so ending it frees
-- the listing, not seats.
local function load_hold(r)
  if not r then return nil end
  local status, user, exp, qty, amount, section, seats, order, payment, idem, listing =
    string.match(r, '^(%a+)|([^|]*)|(%d+)|(%d+)|(%d+)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|?([%w_]*)$')
  if not status then return nil end
  return { status = status, user = user, exp = exp, qty = qty, amount = amount, section = section,
    seats = seats, order = order, payment = payment, idem = idem, listing = listing ~= '' and listing or nil }
end

local function save_hold(h)
  local r = table.concat({ h.status, h.user, h.exp, h.qty, h.amount, h.section, h.seats, h.order, h.payment, h.idem }, '|')
  if h.listing then r = r .. '|' .. h.listing end
  return r
end

-- A new hold's record, as save_hold writes it (status held, no order and
-- no payment yet), made in one concatenation.
local function new_hold(user, exp, qty, amount, section, seats, idem)
  return 'held|' .. user .. '|' .. exp .. '|' .. qty .. '|' .. amount .. '|' .. section .. '|' .. seats .. '|||' .. idem
end

-- Deadlines, by bucket of BUCKET_MS: the holds due in bucket b (a deadline
-- in ((b - 1) * BUCKET_MS, b * BUCKET_MS]) are listed in `d:<b>`, in the
-- order they were made; `deadlines` is the zset of buckets that still have
-- a list (member b, score b * BUCKET_MS); and `t:<b>` is the bucket's timer,
-- expiring at b * BUCKET_MS, whose keyspace `expired` notification prompts
-- the expiry worker to release the bucket's holds. A hold costs one list
-- entry; the meta field `tb` remembers the last bucket armed, so only the
-- first hold of a bucket writes the zset, the timer and `tb` (`armed` is
-- its value, read with the rest of meta). A finished hold stays in its list
-- until the bucket is expired (the release is then a no-op).
local BUCKET_MS = 250

local function schedule(k, armed, hold, exp, now)
  local b = math.ceil(exp / BUCKET_MS)
  local bs = string.format('%d', b)
  redis.call('RPUSH', k.base .. 'd:' .. bs, hold)
  if bs == armed then return end
  local ends = b * BUCKET_MS
  redis.call('ZADD', k.deadlines, string.format('%d', ends), bs)
  redis.call('SET', k.base .. 't:' .. bs, '1', 'PX', string.format('%d', ends - now), 'NX')
  redis.call('HSET', k.meta, 'tb', bs)
end

-- What every new hold does once its record and seats or places are written
-- (hold.lua, hold_ga.lua, hold_best.lua; `k` is the event's keys): its
-- deadline entry, its place among the user's live holds (`kept`, the
-- user's other live entries), its idempotency entry, and `hold.created`.
-- `qty`, `amount` and `exp` are the record's own text; `deadline` is `exp`
-- as a number.
local function announce_hold(k, armed, hold, user, sold, kept, idem_field, seats, section, qty, amount, exp, deadline,
                             now)
  schedule(k, armed, hold, deadline, now)
  kept[#kept + 1] = hold .. ',' .. qty .. ',' .. exp
  save_user(k.users, user, sold, kept)
  if idem_field then redis.call('HSET', k.idem, idem_field, hold) end
  redis.call('XADD', k.stream, '*', 'type', 'hold.created', 'hold', hold, 'user', user, 'seats', seats,
    'section', section, 'qty', qty, 'amount', amount, 'exp', exp, 'at', fmt(now))
end

-- An idempotency key as a field of the event's `idem` hash: "<user>:<key>".
local function is_idem(s)
  return type(s) == 'string' and #s <= 128 and string.find(s, '^[%w_.:-]*$') ~= nil
end

-- The seat index of a seated section, for best-available holds
-- (hold_best.lua): `occ:<sid>`, a string of one byte per seat, row after
-- row (seat <row>:<n> at byte (row - 1) * seats_per_row + n - 1), 1 where
-- the seat hash has the seat's field (held, lapsed but not yet ended, or
-- sold) and 0 where it has none; and `runs:<sid>`, one byte per row, 0 when
-- unknown, else 1 + the longest run of free seats the row had when
-- hold_best.lua last read it (at most 254). A hold only shrinks runs, so
-- that byte stays an upper bound; ending a hold frees seats, so it resets
-- the byte of their row to unknown. A missing key or byte is 0: publishing
-- writes nothing. Every script that adds or drops a seat field keeps
-- `occ` in step, in the same call. A seated section has at most MAX_SEATS
-- seats (publish.lua), so its `occ` stays under Redis's 512 MB string.
local MAX_SEATS = 500000000

local function seat_index(base, sid, spr, field, taken)
  local row, n = string.match(field, '^(%d+):(%d+)$')
  row, n = tonumber(row), tonumber(n)
  if not row or spr < 1 then
    -- The layout is unknown here, so the index cannot be kept exact: a
    -- seat given back drops it (a missing index reads free, and best
    -- available repairs whatever row it then finds taken).
    if not taken then redis.call('DEL', base .. 'occ:' .. sid, base .. 'runs:' .. sid) end
    return
  end
  redis.call('SETRANGE', base .. 'occ:' .. sid, (row - 1) * spr + n - 1, taken and '\1' or '\0')
  if not taken then redis.call('SETRANGE', base .. 'runs:' .. sid, row - 1, '\0') end
end

-- The longest run of free (zero) bytes in a row of `occ`.
local function longest_run(row)
  local i, longest = 1, 0
  while true do
    local a, b = string.find(row, '%z+', i)
    if not a then return longest end
    if b - a + 1 > longest then longest = b - a + 1 end
    i = b + 1
  end
end

-- The first seat of the block of `q` free seats of `row` nearest its
-- centre (ties: the lower numbers), or nil.
local function best_block(row, q)
  local ideal = #row + 2 - q -- twice the first seat of a centred block
  local i, best, bestd = 1, nil, nil
  while true do
    local a, b = string.find(row, '%z+', i)
    if not a then return best end
    if b - a + 1 >= q then
      local s = math.floor(ideal / 2)
      if s < a then s = a elseif s > b - q + 1 then s = b - q + 1 end
      local d = math.abs(2 * s - ideal)
      if not bestd or d < bestd then best, bestd = s, d end
    end
    i = b + 1
  end
end

-- Up to `want` free seats of `row`, nearest its centre first (ties: the
-- lower number), appended to `out` as numbers.
local function nearest_free(row, want, out)
  local spr = #row
  local lo, hi = math.floor((spr + 1) / 2), math.floor((spr + 1) / 2) + 1
  while want > 0 and (lo >= 1 or hi <= spr) do
    local n
    if lo >= 1 and (hi > spr or math.abs(2 * lo - spr - 1) <= math.abs(2 * hi - spr - 1)) then
      n, lo = lo, lo - 1
    else
      n, hi = hi, hi + 1
    end
    if string.byte(row, n) == 0 then
      out[#out + 1] = n
      want = want - 1
    end
  end
end

-- Row `r` of a section's `occ` string, `spr` bytes (a missing tail is free).
local function occ_row(key, spr, r)
  local row = redis.call('GETRANGE', key, (r - 1) * spr, r * spr - 1)
  if #row < spr then row = row .. string.rep('\0', spr - #row) end
  return row
end

-- Records in `runs` the longest free run of row `r` (its `occ` bytes).
local function note_run(key, r, row)
  redis.call('SETRANGE', key, r - 1, string.char(math.min(longest_run(row), 254) + 1))
end

-- The pattern class of a `runs` byte that may hold a block of `q` seats
-- (1 to 50): unknown (0) or a run of at least q (byte q + 1 or more).
local function fits_class(q)
  local c = string.char(q)
  if c == '%' then return '[^\1-$%%]' end -- '%' would escape the ']'
  return '[^\1-' .. c .. ']'
end

-- A resale listing: one field of the event's `listings` hash, keyed by the
-- listing's token, "status|seller|ticket|price|hold|exp|buyer|at":
-- `status` open, withdrawn or sold; `ticket` the listed ticket's token;
-- `hold`/`exp` the buyer's hold on it, if any (a hold past `exp` no longer
-- counts: the listing is free to hold again, and that hold's late payment
-- finds it gone); `buyer`/`at` once sold. `lopen` is the zset of open
-- listings by price, for the cheapest first.
local function load_listing(r)
  if not r then return nil end
  local status, seller, ticket, price, hold, exp, buyer, at =
    string.match(r, '^(%a+)|([^|]*)|([^|]*)|(%d+)|([^|]*)|(%d*)|([^|]*)|(%d*)$')
  if not status then return nil end
  return { status = status, seller = seller, ticket = ticket, price = price, hold = hold, exp = exp, buyer = buyer,
    at = at }
end

local function save_listing(l)
  return table.concat({ l.status, l.seller, l.ticket, l.price, l.hold, l.exp, l.buyer, l.at }, '|')
end

-- Whether a listing is held by a live hold at `now`.
local function listing_held(l, now)
  return l.hold ~= '' and tonumber(l.exp) > now
end

-- Ends a live hold on a listing: the listing is free again (unless another
-- hold took it after this one lapsed), the record is ended and
-- hold.<reason> appended, naming the listing. Listing holds take nothing
-- from inventory and are not among the user's holds (resale has no
-- per-user limit: a listed ticket is sold already).
local function end_listing_hold(base, hold, h, reason, now)
  local listings = base .. 'listings'
  local l = load_listing(redis.call('HGET', listings, h.listing))
  if l and l.hold == hold and l.status == 'open' then
    l.hold, l.exp = '', ''
    redis.call('HSET', listings, h.listing, save_listing(l))
  end
  h.status = reason
  redis.call('HSET', base .. 'holds', hold, save_hold(h))
  redis.call('XADD', base .. 'stream', '*', 'type', 'hold.' .. reason, 'hold', hold, 'user', h.user, 'seats', h.seats,
    'section', h.section, 'qty', h.qty, 'amount', h.amount, 'exp', h.exp, 'listing', h.listing, 'at', fmt(now))
end

-- Ends a live hold `h` (its record, parsed) as `reason` ('released' or
-- 'expired') at `now`: frees what it still owns (a lapsed seat may be
-- someone else's now), drops it from its user's record, marks the record
-- ended and appends hold.<reason>. `k` names the event's holds, avail,
-- users, stream and ended keys; the seat hashes and GA sets are the
-- event's own (`base`), as the hold's seats name them.
local function end_hold(k, base, hold, h, reason, now)
  if h.listing then
    end_listing_hold(base, hold, h, reason, now)
    redis.call('ZADD', k.ended, now, hold)
    return
  end
  if h.section ~= '' then
    if redis.call('ZREM', base .. 'ga:' .. h.section, h.qty .. ':' .. hold) == 1 then
      redis.call('HINCRBY', k.avail, h.section, h.qty)
    end
  else
    local mine = 'h' .. h.exp .. ':' .. hold
    local spr = {}
    for id in string.gmatch(h.seats, '[^,]+') do
      local sid, field = string.match(id, '^(%d+):(.+)$')
      local seats = base .. 'seats:' .. sid
      if redis.call('HGET', seats, field) == mine then
        redis.call('HDEL', seats, field)
        redis.call('HINCRBY', k.avail, sid, 1)
        if not spr[sid] then
          local _, _, per_row = layout(redis.call('HGET', base .. 'meta', 's:' .. sid))
          spr[sid] = per_row or 0
        end
        seat_index(base, sid, spr[sid], field, false)
      end
    end
  end
  local sold, _, kept = load_user(redis.call('HGET', k.users, h.user), now)
  save_user(k.users, h.user, sold, without(kept, hold))
  h.status = reason
  redis.call('HSET', k.holds, hold, save_hold(h))
  redis.call('ZADD', k.ended, now, hold)
  redis.call('XADD', k.stream, '*', 'type', 'hold.' .. reason, 'hold', hold, 'user', h.user, 'seats', h.seats,
    'section', h.section, 'qty', h.qty, 'amount', h.amount, 'exp', h.exp, 'at', fmt(now))
end

-- A ticket's record: one field of the event's `tickets` hash, keyed by the
-- ticket's token `<order>-<i>`, "status|owner|ver|section|seat|used|gate",
-- then "|<via>" once it has changed hands: `status` valid, listed (for
-- resale) or used; `ver` bumped by every change of owner, so a code
-- carrying an older one is void; `seat` empty for a general-admission
-- place; `used`/`gate` once checked in; `via` how it last changed hands,
-- `t` transfer or `r` resale (its earlier owners see it transferred or
-- resold).
local function load_ticket(r)
  if not r then return nil end
  local status, owner, ver, section, seat, used, gate, via =
    string.match(r, '^(%a+)|([^|]*)|(%d+)|(%d*)|([^|]*)|(%d*)|([^|]*)|?(%a*)$')
  if not status then return nil end
  return { status = status, owner = owner, ver = ver, section = section, seat = seat, used = used, gate = gate,
    via = via }
end

local function save_ticket(t)
  local r = table.concat({ t.status, t.owner, t.ver, t.section, t.seat, t.used, t.gate }, '|')
  if t.via ~= '' then r = r .. '|' .. t.via end
  return r
end

local function new_ticket(owner, section, seat)
  return { status = 'valid', owner = owner, ver = '1', section = section, seat = seat, used = '', gate = '', via = '' }
end
