-- wrk script: repeated catch-up GETs of one URL; a read counts only if it is a 200 whose body
-- has exactly the expected size (so a 4xx/5xx or a short/long body is never counted as a read).
--
-- Arguments (after `--`): <expected body bytes>
-- done() prints one line `BENCH_RESULT {json}` that compare_origin.py parses.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1])
  good, bad_status, bad_size = 0, 0, 0
end

function response(status, headers, resp_body)
  if status ~= 200 then
    bad_status = bad_status + 1
  elseif #resp_body ~= expected then
    bad_size = bad_size + 1
  else
    good = good + 1
  end
end

function done(summary, latency, requests)
  local g, bs, bz = 0, 0, 0
  for _, t in ipairs(threads) do
    g = g + (t:get("good") or 0)
    bs = bs + (t:get("bad_status") or 0)
    bz = bz + (t:get("bad_size") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"lat_mean_us":%.1f,"lat_p50_us":%d,"lat_p90_us":%d,"lat_p99_us":%d,"lat_p999_us":%d,"lat_max_us":%d,' ..
    '"good":%d,"bad_status":%d,"bad_size":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    g, bs, bz))
end
