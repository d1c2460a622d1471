-- Puts an event on sale: writes its meta and its availability counters.
-- Idempotent: an event already published is left exactly as it is.
-- KEYS: 1 meta, 2 avail.
-- ARGV: 1 sale_ms, 2 hold_ms, 3 per-user limit, 4 waiting room (0/1),
--       5 holds need a verified e-mail (0/1), then per section: sid, layout "<kind>,<rows>,<spr>,<capacity>,<price>".
-- Returns {'ok'} | {'exists'}; an error reply for keys or arguments out of
-- shape (checked whole before anything is written).
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 2 or KEYS[2] ~= base .. 'avail' or not is_int(ARGV[1], -1e17) or not is_int(ARGV[2], 1)
  or not is_int(ARGV[3], 0) or not is_flag(ARGV[4]) or not is_flag(ARGV[5]) or #ARGV < 7 or #ARGV % 2 ~= 1 then
  return shape_error('publish')
end
for i = 6, #ARGV, 2 do
  local kind, rows, spr, cap = string.match(ARGV[i + 1], '^([sg]),(%d+),(%d+),(%d+),%d+$')
  -- A seated section's seat index (lib.lua) is one string of a byte a seat.
  if not is_int(ARGV[i], 0) or not kind
    or (kind == 's' and (tonumber(rows) * tonumber(spr) ~= tonumber(cap) or tonumber(cap) > MAX_SEATS)) then
    return shape_error('publish')
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return { 'exists' } end
local meta = { 'status', 'published', 'sale_ms', ARGV[1], 'hold_ms', ARGV[2], 'limit', ARGV[3], 'wr', ARGV[4], 've', ARGV[5] }
local avail = {}
for i = 6, #ARGV, 2 do
  local sid, lay = ARGV[i], ARGV[i + 1]
  meta[#meta + 1] = 's:' .. sid
  meta[#meta + 1] = lay
  avail[#avail + 1] = sid
  avail[#avail + 1] = string.match(lay, '^%a,%d+,%d+,(%d+),')
  avail[#avail + 1] = 'sold:' .. sid
  avail[#avail + 1] = '0'
end
redis.call('HSET', KEYS[1], unpack(meta))
redis.call('HSET', KEYS[2], unpack(avail))
return { 'ok' }
