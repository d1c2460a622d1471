-- Turns a live hold into an order: its seats (or places) become sold, the
-- hold becomes confirmed, the order record is written, each seat or place
-- becomes a ticket owned by the buyer (version 1, `valid`), and
-- order.confirmed + payment.captured are appended, atomically. Runs after
-- the payment provider captured the charge; any answer but 'ok' means the
-- caller must refund that charge.
-- KEYS: 1 holds, 2 avail, 3 users, 4 stream, 5 ended, 6 order,
--       7.. the seat hash of each of the hold's seats (in the order of its
--       `seats` field), or the section's ga zset for general admission.
--       The event's `tickets` hash is derived from the base (same hash tag):
--       ticket `<order>-<i>` for the i-th seat (or place), i from 1; the
--       persister derives the same ids from order.confirmed.
-- ARGV: 1 hold id, 2 user, 3 order id, 4 payment id, 5 provider charge id,
--       6 payment method, 7 retention ms of the order record (Postgres
--       keeps it for good).
-- Returns {'ok', created_ms} | {'confirmed', order} (already paid) |
-- {'gone', status} (released or expired) | {'not_found'}; an error reply
-- for keys or arguments out of shape.
local hold, user, order, payment, charge = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = key_base(KEYS[1], 'holds')
if not base or #ARGV ~= 7 or not is_id(hold) or not is_id(user) or not is_id(order) or not is_id(payment)
  or not is_id(charge) or not is_id(ARGV[6]) or not is_int(ARGV[7], 1)
  or not keys_are(KEYS, base, 2, { 'avail', 'users', 'stream', 'ended', 'o:' .. order }) then
  return shape_error('confirm')
end
local h = load_hold(redis.call('HGET', KEYS[1], hold))
if not h or h.user ~= user then return { 'not_found' } end
if h.status == 'confirmed' then return { 'confirmed', h.order } end
if h.status ~= 'held' then return { 'gone', h.status } end
local now = now_ms()
if tonumber(h.exp) <= now then return { 'gone', 'expired' } end
-- A hold on a resale listing is paid by buy_listing.lua.
if h.listing or not seat_keys_are(KEYS, base, 7, h.seats, h.section) then return shape_error('confirm') end
local seats, section, qty, amount = h.seats, h.section, tonumber(h.qty), h.amount

if section ~= '' then
  -- A live hold's member is always there: only lapsed members are reclaimed.
  if redis.call('ZREM', KEYS[7], qty .. ':' .. hold) ~= 1 then return { 'gone', 'expired' } end
  redis.call('HINCRBY', KEYS[2], 'sold:' .. section, qty)
else
  local i = 0
  local mine = 'h' .. h.exp .. ':' .. hold
  -- Never sell a seat this hold does not own (a live hold owns every seat it lists).
  for id in string.gmatch(seats, '[^,]+') do
    i = i + 1
    if redis.call('HGET', KEYS[6 + i], string.match(id, '^%d+:(.+)$')) ~= mine then
      return { 'gone', 'expired' }
    end
  end
  i = 0
  for id in string.gmatch(seats, '[^,]+') do
    i = i + 1
    local sid, field = string.match(id, '^(%d+):(.+)$')
    -- A sold seat is just 's' (about 54 bytes a seat sold out): its order is
    -- in the order record and, durably, in Postgres's order_seats.
    redis.call('HSET', KEYS[6 + i], field, 's')
    redis.call('HINCRBY', KEYS[2], 'sold:' .. sid, 1)
  end
end

local sold, _, kept = load_user(redis.call('HGET', KEYS[3], user), now)
save_user(KEYS[3], user, sold + qty, without(kept, hold))
h.status, h.order, h.payment = 'confirmed', order, payment
redis.call('HSET', KEYS[1], hold, save_hold(h))
redis.call('ZADD', KEYS[5], now, hold)
redis.call('HSET', KEYS[6], 'user', user, 'hold', hold, 'seats', seats, 'section', section, 'qty', qty,
  'amount', amount, 'status', 'confirmed', 'payment', payment, 'charge', charge, 'method', ARGV[6],
  'created', fmt(now))
redis.call('PEXPIRE', KEYS[6], ARGV[7])
local tickets = base .. 'tickets'
if section ~= '' then
  for i = 1, qty do
    redis.call('HSET', tickets, order .. '-' .. i, save_ticket(new_ticket(user, section, '')))
  end
else
  local i = 0
  for id in string.gmatch(seats, '[^,]+') do
    i = i + 1
    redis.call('HSET', tickets, order .. '-' .. i, save_ticket(new_ticket(user, string.match(id, '^(%d+):'), id)))
  end
end
redis.call('XADD', KEYS[4], '*', 'type', 'order.confirmed', 'order', order, 'hold', hold, 'user', user,
  'seats', seats, 'section', section, 'qty', qty, 'amount', amount, 'payment', payment, 'at', fmt(now))
redis.call('XADD', KEYS[4], '*', 'type', 'payment.captured', 'payment', payment, 'order', order, 'hold', hold,
  'user', user, 'amount', amount, 'charge', charge, 'at', fmt(now))
return { 'ok', now }
