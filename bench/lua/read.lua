-- wrk script: repeated catch-up GETs of one URL; a read counts only if it is a 2xx, and the run
-- counts at all only if the bytes received per response fit a body of the expected size plus
-- headers (so a 4xx/5xx or short bodies are never counted as reads).
--
-- There is deliberately no response() callback: with one, wrk copies every body into a Lua
-- string, and at 64 KiB per read that made wrk, not the server, the bottleneck. The callers
-- check one response's exact body before the run (warm-up).
--
-- Arguments (after `--`): <expected body bytes>
-- done() prints one line `BENCH_RESULT {json}` that compare_origin.py parses.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  expected = tonumber(args[1])  -- set in each thread's Lua state; done() reads it from one
end

function done(summary, latency, requests)
  local expected = threads[1]:get("expected")
  local e = summary.errors
  local answered = summary.requests - e.status
  local per_response = answered > 0 and summary.bytes / summary.requests or 0
  local g, bs, bz = answered, e.status, 0
  if per_response < expected or per_response > expected + 4096 then
    g, bz = 0, answered  -- bodies of another size: count nothing
  end
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
