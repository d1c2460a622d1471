-- Admits a ticket at the gate, once: the ticket becomes `used` and
-- ticket.checked_in is appended, atomically. The caller has verified the
-- code's signature and that it names this event; this decides the rest.
-- KEYS: 1 tickets, 2 stream.
-- ARGV: 1 ticket token (`<order>-<i>`), 2 the code's version, 3 the code's
--       owner (`sub`), 4 the user id of who checks it in, 5 that user's role
--       (`gate`, `organiser` or `admin`; the entry carries it as `by`, so the
--       persister audits a check-in by an organiser or an admin).
-- Returns {'ok', at_ms, section, seat} | {'used', used_ms} |
-- {'superseded', ver} (the code is older than the ticket's version, or names
-- another owner) | {'not_valid', status} (listed, transferred, resold) |
-- {'not_found'}; an error reply for keys or arguments out of shape.
local token, ver, owner, gate, by = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ROLES = { gate = true, organiser = true, admin = true }
local base = key_base(KEYS[1], 'tickets')
if not base or #KEYS ~= 2 or #ARGV ~= 5 or not is_id(token) or not string.find(token, '^[%w_]+%-%d+$')
  or not is_int(ver, 1) or not is_id(owner) or not is_id(gate) or not ROLES[by]
  or not keys_are(KEYS, base, 2, { 'stream' }) then
  return shape_error('check_in')
end
local t = load_ticket(redis.call('HGET', KEYS[1], token))
if not t then return { 'not_found' } end
-- A code older than the ticket (or naming another owner) is void, whatever
-- became of the ticket since; a current one of a used ticket gets the time
-- of its first admission.
if tonumber(ver) < tonumber(t.ver) or owner ~= t.owner then return { 'superseded', t.ver } end
if tonumber(ver) > tonumber(t.ver) then return { 'not_found' } end
if t.status == 'used' then return { 'used', t.used } end
if t.status ~= 'valid' then return { 'not_valid', t.status } end
local now = now_ms()
t.status, t.used, t.gate = 'used', fmt(now), gate
redis.call('HSET', KEYS[1], token, save_ticket(t))
redis.call('XADD', KEYS[2], '*', 'type', 'ticket.checked_in', 'ticket', token, 'user', t.owner, 'ver', t.ver,
  'section', t.section, 'seat', t.seat, 'gate', gate, 'by', by, 'at', fmt(now))
return { 'ok', now, t.section, t.seat }
