-- Withdraws a resale listing, by its seller: the ticket is `valid` again
-- (its codes made before listing still hold: its version is unchanged),
-- the listing is withdrawn and leaves the open ones, and listing.withdrawn
-- is appended, atomically. A listing a buyer holds right now stays until
-- that hold ends (paid: sold; released or lapsed: withdrawable).
-- KEYS: 1 listings (the event's other keys are found from its base).
-- ARGV: 1 listing token, 2 the caller (must be its seller).
-- Returns {'ok', at_ms} | {'not_found'} (no such open listing of the
-- caller's) | {'sold'} | {'held', exp}; an error reply for keys or
-- arguments out of shape.
local listing, seller = ARGV[1], ARGV[2]
local base = key_base(KEYS[1], 'listings')
if not base or #KEYS ~= 1 or #ARGV ~= 2 or not is_id(listing) or not is_id(seller) then
  return shape_error('unlist')
end
local l = load_listing(redis.call('HGET', KEYS[1], listing))
if not l or l.seller ~= seller or l.status == 'withdrawn' then return { 'not_found' } end
if l.status == 'sold' then return { 'sold' } end
local now = now_ms()
if listing_held(l, now) then return { 'held', l.exp } end
l.status, l.hold, l.exp, l.at = 'withdrawn', '', '', fmt(now)
redis.call('HSET', KEYS[1], listing, save_listing(l))
redis.call('ZREM', base .. 'lopen', listing)
local tickets = base .. 'tickets'
local t = load_ticket(redis.call('HGET', tickets, l.ticket))
if t and t.status == 'listed' and t.owner == seller then
  t.status = 'valid'
  redis.call('HSET', tickets, l.ticket, save_ticket(t))
end
redis.call('XADD', base .. 'stream', '*', 'type', 'listing.withdrawn', 'listing', listing, 'ticket', l.ticket,
  'user', seller, 'price', l.price, 'section', t and t.section or '', 'seat', t and t.seat or '', 'at', fmt(now))
return { 'ok', now }
