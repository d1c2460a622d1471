-- The check-in burst for wrk: doors open. Every line of CODES_FILE is one
-- scan, posted to the event's check-in as a gate; scripts/bench lists each
-- ticket's code once and a share of them a second time (shuffled), so every
-- code must be admitted exactly once and every second scan answer 409
-- already_used.
--
--   wrk -t2 -c64 -d120s --latency -s loadtest/wrk/check_in.lua URL -- \
--       GATE_TOKEN EVENT CODES_FILE THREADS DONE_PREFIX
--
-- Line i goes to thread i mod THREADS. A thread counts its answers and,
-- once all are in, writes the file DONE_PREFIX<thread> and stops; the bench
-- stops wrk (SIGINT: it then reports) when every thread is done. A
-- connection that finds its thread's share all sent asks for the event's
-- ticket key meanwhile (answered 200 with the key: not counted as a scan).
-- done() prints `check-in admitted=A again=G other=O filler=F`.
local thread_count = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local function finish()
  finished = true
  local f = io.open(done_file, "w")
  if f then
    f:write(answered, "\n")
    f:close()
  end
  if wrk.thread then wrk.thread:stop() end
end

function init(args)
  local headers = { ["Authorization"] = "Bearer " .. args[1], ["Content-Type"] = "application/json" }
  local path = "/api/events/" .. args[2] .. "/check-in"
  local nthreads = tonumber(args[4])
  done_file = args[5] .. tid
  mine = {}
  local n = 0
  for line in io.lines(args[3]) do
    if n % nthreads == tid then
      mine[#mine + 1] = wrk.format("POST", path, headers, '{"code":"' .. line .. '"}')
    end
    n = n + 1
  end
  filler = wrk.format("GET", "/api/events/" .. args[2] .. "/ticket-key")
  sent, answered, admitted, again, other, fillers = 0, 0, 0, 0, 0, 0
  finished = false
  -- wrk calls the first thread's request() once before the run, to check
  -- the request's shape, and sends nothing of it: that call gets the filler,
  -- or the thread's first code would never be scanned.
  checked = tid ~= 0
end

function request()
  if not checked then
    checked = true
    return filler
  end
  if not finished and answered >= #mine then finish() end
  if sent < #mine then
    sent = sent + 1
    return mine[sent]
  end
  return filler
end

function response(status, headers, body)
  if finished then return end
  if status == 200 and string.find(body, '"public_key"', 1, true) then
    fillers = fillers + 1
  else
    answered = answered + 1
    if status == 200 then
      admitted = admitted + 1
    elseif status == 409 and string.find(body, "already_used", 1, true) then
      again = again + 1
    else
      other = other + 1
    end
  end
  if answered >= #mine then finish() end
end

function done(summary, latency, requests)
  local t = { admitted = 0, again = 0, other = 0, fillers = 0 }
  for _, thread in ipairs(threads) do
    for k, _ in pairs(t) do
      t[k] = t[k] + (thread:get(k) or 0)
    end
  end
  io.write(string.format("check-in admitted=%d again=%d other=%d filler=%d\n", t.admitted, t.again, t.other, t.fillers))
end
