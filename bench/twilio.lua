-- wrk script: POST pre-signed Twilio webhooks, each line of the pool file once.
-- Usage: wrk -s bench/twilio.lua URL -- POOL_FILE THREADS
-- Thread t sends lines t, t+THREADS, ... in order; done() prints one JSON line starting "BENCH ".
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local pool = {}
local size = 0
issued = 0

function init(args)
  local nthreads = tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      size = size + 1
      pool[size] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = line:sub(1, tab - 1),
        ["User-Agent"] = "TwilioProxy/1.1",
      }, line:sub(tab + 1))
    end
    i = i + 1
  end
end

function request()
  issued = issued + 1
  return pool[(issued - 1) % size + 1]
end

function done(summary, latency, requests)
  local issued_list = {}
  for _, thread in ipairs(threads) do
    table.insert(issued_list, tostring(thread:get("issued")))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"issued": [%s]}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(issued_list, ", ")))
end
