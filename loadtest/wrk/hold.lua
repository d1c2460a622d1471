-- The lean hold benchmark for wrk: every request holds one seat nobody has
-- asked for yet, as a different signed-in user every 40 holds (under the
-- per-user limit), so every answer is the success path: a 201.
--
--   wrk -t2 -c64 -d3s --latency -s loadtest/wrk/hold.lua URL -- \
--       TOKENS_FILE EVENT SECTION SEATS_PER_ROW THREADS [OFFSET]
local thread_count = 0
local threads = {}

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = "Bearer " .. line
  end
  path = "/api/events/" .. args[2] .. "/holds"
  section = args[3]
  spr = tonumber(args[4])
  nthreads = tonumber(args[5])
  offset = tonumber(args[6] or "0")
  i = 0
end

function request()
  local idx = offset + tid + i * nthreads
  i = i + 1
  local row = math.floor(idx / spr) + 1
  local num = idx % spr + 1
  local user = math.floor(idx / 4) % #tokens + 1
  local body = '{"seats":["' .. section .. ':' .. row .. ':' .. num .. '"]}'
  return wrk.format("POST", path, { ["Authorization"] = tokens[user], ["Content-Type"] = "application/json" }, body)
end
