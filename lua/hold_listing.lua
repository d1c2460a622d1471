-- Holds a resale listing for a buyer, as a seat is held: a hold record of
-- the buyer's (quantity 1, the listing's price, the ticket's seat or
-- section, and the listing's token), with the event's hold lifetime, in
-- the same deadline buckets (so the expiry worker ends it like any hold),
-- its idempotency entry, and hold.created, atomically. Of any number of
-- concurrent buyers one holds it; the rest find it unavailable. Paid with
-- the same payment route (buy_listing.lua).
-- KEYS: 1 listings (the event's other keys are found from its base).
-- ARGV: 1 listing token, 2 buyer, 3 new hold id, 4 idempotency key ('' for
--       none), 5 when the event starts (unix ms), 6 the buyer's e-mail is
--       verified (0/1: an event that requires it refuses an unverified one).
-- Returns {'ok', exp, amount, section, seat} | {'dup', hold} |
-- {'not_found'} | {'unavailable'} (held, sold or withdrawn) | {'own'} (the
-- seller) | {'closed'} | {'email_unverified'}; an error reply for keys or arguments out of shape.
local listing, buyer, hold, idem, starts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = key_base(KEYS[1], 'listings')
if not base or #KEYS ~= 1 or #ARGV ~= 6 or not is_id(listing) or not is_id(buyer) or not is_id(hold)
  or (idem ~= '' and not is_id(idem)) or not is_int(starts, 0) or not is_flag(ARGV[6]) then
  return shape_error('hold_listing')
end
local k = event_keys(base)
local idem_field = idem ~= '' and buyer .. ':' .. idem
if idem_field then
  local prior = redis.call('HGET', k.idem, idem_field)
  if prior then return { 'dup', prior } end
end
local l = load_listing(redis.call('HGET', KEYS[1], listing))
if not l then return { 'not_found' } end
if l.seller == buyer then return { 'own' } end
local now = now_ms()
if now >= tonumber(starts) then return { 'closed' } end
if l.status ~= 'open' or listing_held(l, now) then return { 'unavailable' } end
local t = load_ticket(redis.call('HGET', base .. 'tickets', l.ticket))
if not t or t.status ~= 'listed' or t.owner ~= l.seller then return { 'unavailable' } end
local meta = redis.call('HMGET', k.meta, 'hold_ms', 'tb', 've')
if not meta[1] then return { 'not_found' } end
if meta[3] == '1' and ARGV[6] ~= '1' then return { 'email_unverified' } end
local deadline = now + tonumber(meta[1])
local exp = fmt(deadline)
-- A general-admission ticket names its section; a seated one its seat.
local section = t.seat == '' and t.section or ''
if redis.call('HSETNX', k.holds, hold, new_hold(buyer, exp, '1', l.price, section, t.seat, idem) .. '|' .. listing) == 0 then
  return shape_error('hold_listing')
end
l.hold, l.exp = hold, exp
redis.call('HSET', KEYS[1], listing, save_listing(l))
schedule(k, meta[2], hold, deadline, now)
if idem_field then redis.call('HSET', k.idem, idem_field, hold) end
redis.call('XADD', k.stream, '*', 'type', 'hold.created', 'hold', hold, 'user', buyer, 'seats', t.seat,
  'section', section, 'qty', '1', 'amount', l.price, 'exp', exp, 'listing', listing, 'at', fmt(now))
return { 'ok', exp, l.price, section, t.seat }
