-- wrk script: whole-stream catch-up reads. Each connection reads a stream from offset -1 to its
-- tail by GETting, in order, the chain of offsets a reader following Stream-Next-Offset gets
-- (the caller follows the chain once and checks every body before the run), then starts over.
-- One whole read = one pass over the chain. As in read.lua there is no response() callback
-- (copying every 64 KiB body into Lua would make wrk the bottleneck); read.lua's setup() and
-- done() are reused as they are: the run counts only if the bytes received per response fit
-- the average body size of the chain plus headers.
--
-- Arguments (after `--`): <average body bytes> <path?offset=...> [<path?offset=...> ...]

local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "read.lua")

local read_init = init

function init(args)
  read_init(args)
  chain = {}
  for i = 2, #args do
    chain[#chain + 1] = wrk.format("GET", args[i])
  end
  position = 0
end

function request()
  position = position % #chain + 1
  return chain[position]
end
