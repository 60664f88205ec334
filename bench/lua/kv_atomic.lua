-- wrk script: KV atomic commits (POST /kv/api/v1/<db>/atomic), every response verified.
--
-- Arguments (after `--`): <run-id>
-- Run with as many threads as connections (-t N -c N), as append.lua: each thread is one
-- connection and owns one key ["bench", "<run-id>-w<tid>"]. Every commit is
--   check   : the thread's key still has the versionstamp of the thread's previous commit
--             (null before its first: the key must not exist),
--   set     : the thread's key to a ~100-byte JSON value,
--   sum     : +1 on the run's shared counter ["bench", "<run-id>-total"] (a KvU64),
-- so every commit reads and writes a key of its own and writes one all commits share.
-- The check always holds (a connection sends its next commit only after the previous
-- answer), so a 409 here is a fault, not contention. Each 200 must say "ok":true and carry a
-- versionstamp greater than the thread's previous one (versionstamps are fixed-width lowercase
-- hex, so string order is numeric order). kv.py reads the counter back afterwards: it must equal
-- the verified commits (plus at most one in flight per connection when wrk stopped).
-- wrk calls request() once more than it sends on thread 0 (script_verify_request); the body
-- depends only on answers received, so that extra call changes nothing.
-- done() prints one line `BENCH_RESULT {json}` with append.lua's fields plus the checks.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  run_id = args[1] or "run"
  local key = string.format('["bench","%s-w%d"]', run_id, tid)
  local total = string.format('["bench","%s-total"]', run_id)
  local head = string.format('{"worker":%d,"kind":"bench","payload":"', tid)
  local value = head .. string.rep("x", 100 - #head - 2) .. '"}'
  check_head = '{"checks":[{"key":' .. key .. ',"versionstamp":'
  mutations = '}],"mutations":[{"type":"set","key":' .. key .. ',"value":' .. value .. '},' ..
    '{"type":"sum","key":' .. total .. ',"value":{"$u64":"1"}}]}'
  hdrs = { ["Content-Type"] = "application/json" }
  last = nil  -- the versionstamp of this thread's last verified commit
  n200, n204, n2xx, n409, n4xx, n5xx, nother = 0, 0, 0, 0, 0, 0, 0
  verified, not_ok, not_rising, bad_body = 0, 0, 0, 0
end

function request()
  local expected = last and ('"' .. last .. '"') or "null"
  return wrk.format("POST", nil, hdrs, check_head .. expected .. mutations)
end

function response(status, headers, body)
  if status == 200 then
    n200 = n200 + 1
    local stamp = body and string.match(body, '"versionstamp"%s*:%s*"(%x+)"')
    if not (body and string.find(body, '"ok"%s*:%s*true')) then
      not_ok = not_ok + 1
    elseif not stamp or #stamp ~= 20 then
      bad_body = bad_body + 1
    elseif last and stamp <= last then
      not_rising = not_rising + 1
    else
      verified = verified + 1
      last = stamp
    end
  elseif status == 204 then n204 = n204 + 1
  elseif status >= 200 and status < 300 then n2xx = n2xx + 1
  elseif status == 409 then n409 = n409 + 1
  elseif status >= 400 and status < 500 then n4xx = n4xx + 1
  elseif status >= 500 then n5xx = n5xx + 1
  else nother = nother + 1 end
end

function done(summary, latency, requests)
  local keys = { "n200", "n204", "n2xx", "n409", "n4xx", "n5xx", "nother",
                 "verified", "not_ok", "not_rising", "bad_body" }
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
    '"s200":%d,"s204":%d,"s2xx_other":%d,"s409":%d,"s4xx":%d,"s5xx":%d,"s_other":%d,' ..
    '"verified":%d,"not_ok":%d,"not_rising":%d,"bad_body":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max,
    agg.n200, agg.n204, agg.n2xx, agg.n409, agg.n4xx, agg.n5xx, agg.nother,
    agg.verified, agg.not_ok, agg.not_rising, agg.bad_body))
end
