-- wrk script: 100-byte appends (POST) to one stream, optionally with idempotent-producer headers.
--
-- Arguments (after `--`): <content-type> <producer: 0|1> <run-id>
-- Run with as many threads as connections (-t N -c N): wrk has no per-connection hook, so the
-- producer id is per thread, and one connection per thread makes it per connection. A thread
-- sends its next request only after the previous response, so Producer-Seq goes 0,1,2,... in
-- order on every producer. The seq sent is the number of responses this thread has received:
-- wrk calls request() once more than it sends on thread 0 (script_verify_request), so a plain
-- counter would skip seq 0 there and every later request would get 409 (sequence gap); and if a
-- connection breaks before its response, the request is re-sent with the same seq (a retry).
-- done() prints one line `BENCH_RESULT {json}` that compare_origin.py parses.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ctype = args[1]
  producer = args[2] == "1"
  run_id = args[3] or "run"
  if ctype == "application/json" then
    local head = string.format('{"worker":%d,"kind":"bench","payload":"', tid)
    body = head .. string.rep("x", 100 - #head - 2) .. '"}'
  else
    body = string.rep("b", 100)
  end
  hdrs = { ["Content-Type"] = ctype }
  pid = string.format("%s-w%d", run_id, tid)
  seq = 0  -- responses received so far = seq of the next request
  n200, n204, n2xx, n409, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0, 0
  if not producer then
    static_req = wrk.format("POST", nil, hdrs, body)
  else
    hdrs["Producer-Id"] = pid
    hdrs["Producer-Epoch"] = "0"
  end
end

function request()
  if not producer then
    return static_req
  end
  hdrs["Producer-Seq"] = tostring(seq)
  return wrk.format("POST", nil, hdrs, body)
end

function response(status, headers, resp_body)
  seq = seq + 1
  if status == 200 then n200 = n200 + 1
  elseif status == 204 then n204 = n204 + 1
  elseif status >= 200 and status < 300 then n2xx = n2xx + 1
  elseif status == 409 then n409 = n409 + 1
  elseif status >= 400 and status < 500 then n4xx = n4xx + 1
  elseif status >= 500 then n5xx = n5xx + 1
  else nother = nother + 1 end
end

function done(summary, latency, requests)
  local keys = { "n200", "n204", "n2xx", "n409", "n4xx", "n5xx", "nother" }
  local agg = {}
  for _, k in ipairs(keys) do agg[k] = 0 end
  for _, t in ipairs(threads) do
    for _, k in ipairs(keys) do agg[k] = agg[k] + (t:get(k) or 0) end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d,' ..
    '"s200":%d,"s204":%d,"s2xx_other":%d,"s409":%d,"s4xx":%d,"s5xx":%d,"s_other":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    agg.n200, agg.n204, agg.n2xx, agg.n409, agg.n4xx, agg.n5xx, agg.nother))
end
