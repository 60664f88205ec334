-- wrk script: JSON batch appends: each POST carries a JSON array of N 100-byte objects, which
-- the server stores as N messages. append.lua's request(), response() and done() are reused as
-- they are (status counts; no producer headers); only the body differs.
--
-- Arguments (after `--`): <run-id> <messages per POST>

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "append.lua")

local append_init = init

function init(args)
  append_init({ "application/json", "0", args[1] })
  local n = tonumber(args[2]) or 100
  local parts = {}
  for i = 1, n do
    local head = string.format('{"worker":%d,"n":%d,"kind":"bench","payload":"', tid, i % 10)
    parts[i] = head .. string.rep("x", 100 - #head - 2) .. '"}'
  end
  body = "[" .. table.concat(parts, ",") .. "]"
  static_req = wrk.format("POST", nil, hdrs, body)
end
