-- Lists a ticket for resale at `price` (at most its face value, the
-- section's price): the ticket becomes `listed` (it cannot be transferred,
-- checked in or shown as a code until the listing is withdrawn or sold),
-- the listing is written and put among the open ones by price, and
-- listing.created is appended, atomically.
-- KEYS: 1 tickets (the event's other keys are found from its base).
-- ARGV: 1 ticket token (`<order>-<i>`), 2 the caller (must own it), 3 the
--       new listing's token, 4 price in cents, 5 when the event starts
--       (unix ms; listing at or after it is refused).
-- Returns {'ok', at_ms, section, seat, face} | {'not_found'} (no such
-- ticket, or not the caller's) | {'closed'} | {'not_valid', status} (used,
-- listed) | {'over', face} (above face value); an error reply for keys or
-- arguments out of shape.
local token, seller, listing, price, starts = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local base = key_base(KEYS[1], 'tickets')
if not base or #KEYS ~= 1 or #ARGV ~= 5 or not is_id(token) or not string.find(token, '^[%w_]+%-%d+$')
  or not is_id(seller) or not is_id(listing) or string.find(listing, '-', 1, true) or not is_int(price, 1)
  or not is_int(starts, 0) then
  return shape_error('list')
end
local t = load_ticket(redis.call('HGET', KEYS[1], token))
if not t or t.owner ~= seller then return { 'not_found' } end
local now = now_ms()
if now >= tonumber(starts) then return { 'closed' } end
if t.status ~= 'valid' then return { 'not_valid', t.status } end
local _, _, _, _, face = layout(redis.call('HGET', base .. 'meta', 's:' .. t.section))
if not face then return { 'not_found' } end
if tonumber(price) > face then return { 'over', face } end
local listings = base .. 'listings'
if redis.call('HEXISTS', listings, listing) == 1 then return shape_error('list') end
t.status = 'listed'
redis.call('HSET', KEYS[1], token, save_ticket(t))
redis.call('HSET', listings, listing,
  save_listing({ status = 'open', seller = seller, ticket = token, price = price, hold = '', exp = '', buyer = '',
    at = fmt(now) }))
redis.call('ZADD', base .. 'lopen', price, listing)
redis.call('XADD', base .. 'stream', '*', 'type', 'listing.created', 'listing', listing, 'ticket', token,
  'user', seller, 'price', price, 'section', t.section, 'seat', t.seat, 'at', fmt(now))
return { 'ok', now, t.section, t.seat, face }
