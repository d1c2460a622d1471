-- Gives a ticket to another user before its event starts: the owner
-- changes, the version is bumped (so every code made before is void at the
-- gate: check_in.lua answers `superseded`) and ticket.transferred is
-- appended, atomically. Of any number of concurrent transfers of one ticket
-- by its owner, one moves it; the rest find it no longer the caller's.
-- KEYS: 1 tickets, 2 stream.
-- ARGV: 1 ticket token (`<order>-<i>`), 2 the caller (must own it), 3 the
--       recipient's user id, 4 when the event starts (unix ms; a transfer at
--       or after it is refused).
-- Returns {'ok', ver, at_ms, section, seat} | {'not_found'} (no such ticket,
-- or not the caller's) | {'closed'} (the event has started) |
-- {'not_valid', status} (used, listed) | {'same_owner'} (to the caller);
-- an error reply for keys or arguments out of shape.
local token, from, to, starts = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local base = key_base(KEYS[1], 'tickets')
if not base or #KEYS ~= 2 or #ARGV ~= 4 or not is_id(token) or not string.find(token, '^[%w_]+%-%d+$')
  or not is_id(from) or not is_id(to) or not is_int(starts, 0)
  or not keys_are(KEYS, base, 2, { 'stream' }) then
  return shape_error('transfer')
end
local t = load_ticket(redis.call('HGET', KEYS[1], token))
if not t or t.owner ~= from then return { 'not_found' } end
if to == from then return { 'same_owner' } end
local now = now_ms()
if now >= tonumber(starts) then return { 'closed' } end
if t.status ~= 'valid' then return { 'not_valid', t.status } end
t.owner, t.ver, t.via = to, fmt(tonumber(t.ver) + 1), 't'
redis.call('HSET', KEYS[1], token, save_ticket(t))
redis.call('XADD', KEYS[2], '*', 'type', 'ticket.transferred', 'ticket', token, 'from', from, 'user', to,
  'ver', t.ver, 'section', t.section, 'seat', t.seat, 'at', fmt(now))
return { 'ok', t.ver, now, t.section, t.seat }
