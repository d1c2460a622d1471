-- An event's waiting room: joins its line (once per user), or reports where
-- a ticket stands. Admission is computed, never scheduled: from the sale's
-- start, `initial + per_second * elapsed seconds` places are admitted, and
-- the ticket at position p is admitted once p <= that count. No worker.
-- KEYS: 1 meta, 2 queue (zset ticket -> position), 3 queue users (hash
--       user -> ticket), 4 queue sequence (string), 5 admitted (set of
--       tickets), 6 avail, 7 holds, 8 ended.
-- ARGV: 1 'join' or 'status', 2 user, 3 ticket (the new one for a join, the
--       one asked about for a status), 4 initial admit, 5 admit per second.
-- Returns {'ok', ticket, position, admitted (0/1), fresh (0/1), sold out
-- (0/1)} where fresh is 1 when a join made the ticket, or a status first
-- found it admitted, and sold out is 1 while nothing is left to buy: no
-- seat or place is free and no hold is pending (a live hold may lapse, and
-- a lapsed one not yet released frees its seats), so the line learns it at
-- its next poll, and learns it is over when holds lapse and seats return |
-- {'no_waiting_room'} | {'not_found'}; an error reply for keys or arguments
-- out of shape.
local op, user = ARGV[1], ARGV[2]
local base = key_base(KEYS[1], 'meta')
if not base or #KEYS ~= 8 or #ARGV ~= 5 or (op ~= 'join' and op ~= 'status') or not is_id(user)
  or not is_id(ARGV[3]) or not is_int(ARGV[4], 0) or not is_int(ARGV[5], 0)
  or not keys_are(KEYS, base, 2, { 'queue', 'queue:users', 'queue:seq', 'queue:admitted', 'avail', 'holds', 'ended' }) then
  return shape_error('queue')
end
local meta = redis.call('HMGET', KEYS[1], 'status', 'sale_ms', 'wr')
if meta[1] ~= 'published' then return { 'not_found' } end
if meta[3] ~= '1' then
  if op == 'join' then return { 'no_waiting_room' } end
  return { 'not_found' }
end

local ticket, position, fresh = ARGV[3], nil, 0
local mine = redis.call('HGET', KEYS[3], user)
if op == 'join' then
  if mine then
    ticket = mine
    position = redis.call('ZSCORE', KEYS[2], ticket)
  else
    position = redis.call('INCR', KEYS[4])
    redis.call('ZADD', KEYS[2], position, ticket)
    redis.call('HSET', KEYS[3], user, ticket)
    fresh = 1
  end
elseif op == 'status' then
  if mine ~= ticket then return { 'not_found' } end
  position = redis.call('ZSCORE', KEYS[2], ticket)
else
  return { 'not_found' }
end
if not position then return { 'not_found' } end
position = tonumber(position)

local now, sale = now_ms(), tonumber(meta[2])
local through = 0
if now >= sale then
  through = tonumber(ARGV[4]) + math.floor(tonumber(ARGV[5]) * (now - sale) / 1000)
end
local admitted = 0
if position <= through then
  admitted = 1
  if op == 'status' then fresh = redis.call('SADD', KEYS[5], ticket) end
end
local sold_out = 0
-- Pending holds: every record not yet finished (finished ones are in `ended`).
if redis.call('HLEN', KEYS[7]) == redis.call('ZCARD', KEYS[8]) then
  sold_out = 1
  local avail = redis.call('HGETALL', KEYS[6])
  for i = 1, #avail, 2 do
    if string.sub(avail[i], 1, 5) ~= 'sold:' and tonumber(avail[i + 1]) > 0 then
      sold_out = 0
      break
    end
  end
end
return { 'ok', ticket, position, admitted, fresh, sold_out }
