// Starts the Node reference server (@durable-streams/server, pinned in package.json) and prints
// `SERVER_URL=<url>` on stdout once it is listening. Stops cleanly on SIGTERM / SIGINT, and,
// with --exit-on-stdin-close, when its stdin reaches EOF (so it never outlives its parent).
//
// Usage: node start_node_reference.mjs [--host 127.0.0.1] [--port 0] [--data-dir DIR]
//          [--long-poll-ms 500] [--no-compression] [--webhooks] [--exit-on-stdin-close]
import { parseArgs } from "node:util"
import { DurableStreamTestServer } from "@durable-streams/server"

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "data-dir": { type: "string" },
    "long-poll-ms": { type: "string", default: "500" },
    "no-compression": { type: "boolean", default: false },
    webhooks: { type: "boolean", default: false },
    "exit-on-stdin-close": { type: "boolean", default: false },
  },
  strict: true,
})

const port = Number(values.port)
const longPollTimeout = Number(values["long-poll-ms"])
if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`bad --port ${values.port}`)
if (!Number.isFinite(longPollTimeout) || longPollTimeout <= 0) {
  throw new Error(`bad --long-poll-ms ${values["long-poll-ms"]}`)
}

const options = {
  host: values.host,
  port,
  longPollTimeout,
  compression: !values["no-compression"],
  webhooks: values.webhooks,
}
if (values["data-dir"]) options.dataDir = values["data-dir"]

const server = new DurableStreamTestServer(options)
const url = await server.start()

let stopping = false
async function shutdown(code) {
  if (stopping) return
  stopping = true
  try {
    await server.stop()
  } catch (err) {
    console.error("error while stopping server:", err)
    code = code || 1
  }
  process.exit(code)
}
process.on("SIGTERM", () => shutdown(0))
process.on("SIGINT", () => shutdown(0))
if (values["exit-on-stdin-close"]) {
  process.stdin.on("end", () => shutdown(0))
  process.stdin.on("error", () => shutdown(0))
  process.stdin.resume()
}

process.stdout.write(`SERVER_URL=${url}\n`)
