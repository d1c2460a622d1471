-- Pays a live hold on a resale listing: the ticket moves to the buyer
-- (`valid`, version bumped, so the seller's codes are void at the gate),
-- the listing is sold, the hold confirmed, the order record written, and
-- listing.sold + payment.captured appended, atomically. The seller's
-- payout is the listing's price (the persister records it). Runs after
-- the payment provider captured the charge; any answer but 'ok' means the
-- caller must refund that charge.
-- KEYS: 1 holds, 2 the order's record `o:<order>` (the event's other keys
--       are found from its base).
-- ARGV: 1 hold id, 2 user, 3 order id, 4 payment id, 5 provider charge id,
--       6 payment method, 7 retention ms of the order record.
-- Returns {'ok', created_ms, ticket, ver} | {'confirmed', order} (already
-- paid) | {'gone', status} (released, expired, or the listing is no
-- longer this hold's) | {'not_found'}; an error reply for keys or
-- arguments out of shape.
local hold, user, order, payment, charge = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = key_base(KEYS[1], 'holds')
if not base or #KEYS ~= 2 or #ARGV ~= 7 or not is_id(hold) or not is_id(user) or not is_id(order)
  or not is_id(payment) or not is_id(charge) or not is_id(ARGV[6]) or not is_int(ARGV[7], 1)
  or KEYS[2] ~= base .. 'o:' .. order then
  return shape_error('buy_listing')
end
local h = load_hold(redis.call('HGET', KEYS[1], hold))
if not h or h.user ~= user then return { 'not_found' } end
if not h.listing then return shape_error('buy_listing') end
if h.status == 'confirmed' then return { 'confirmed', h.order } end
if h.status ~= 'held' then return { 'gone', h.status } end
local now = now_ms()
if tonumber(h.exp) <= now then return { 'gone', 'expired' } end
local listings, tickets = base .. 'listings', base .. 'tickets'
local l = load_listing(redis.call('HGET', listings, h.listing))
if not l or l.status ~= 'open' or l.hold ~= hold then return { 'gone', 'expired' } end
local t = load_ticket(redis.call('HGET', tickets, l.ticket))
if not t or t.status ~= 'listed' or t.owner ~= l.seller then return { 'gone', 'expired' } end

t.status, t.owner, t.ver, t.via = 'valid', user, fmt(tonumber(t.ver) + 1), 'r'
redis.call('HSET', tickets, l.ticket, save_ticket(t))
l.status, l.buyer, l.at = 'sold', user, fmt(now)
redis.call('HSET', listings, h.listing, save_listing(l))
redis.call('ZREM', base .. 'lopen', h.listing)
h.status, h.order, h.payment = 'confirmed', order, payment
redis.call('HSET', KEYS[1], hold, save_hold(h))
redis.call('ZADD', base .. 'ended', now, hold)
redis.call('HSET', KEYS[2], 'user', user, 'hold', hold, 'seats', h.seats, 'section', h.section, 'qty', '1',
  'amount', h.amount, 'status', 'confirmed', 'payment', payment, 'charge', charge, 'method', ARGV[6],
  'created', fmt(now), 'listing', h.listing, 'ticket', l.ticket)
redis.call('PEXPIRE', KEYS[2], ARGV[7])
local stream = base .. 'stream'
redis.call('XADD', stream, '*', 'type', 'listing.sold', 'listing', h.listing, 'ticket', l.ticket, 'from', l.seller,
  'user', user, 'ver', t.ver, 'section', t.section, 'seat', t.seat, 'price', l.price, 'order', order, 'hold', hold,
  'payment', payment, 'at', fmt(now))
redis.call('XADD', stream, '*', 'type', 'payment.captured', 'payment', payment, 'order', order, 'hold', hold,
  'user', user, 'amount', h.amount, 'charge', charge, 'at', fmt(now))
return { 'ok', now, l.ticket, t.ver }
