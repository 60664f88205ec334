// Runs the Durable Streams conformance suite (@durable-streams/server-conformance-tests)
// against an already running server.
//
// The package's own CLI (`server-conformance-tests --run URL`) does not work when installed
// from npm, so the suite is invoked from this local test file instead:
//
//   CONFORMANCE_TEST_URL=http://127.0.0.1:4437 npx vitest run conformance.test.mjs
//
// CONFORMANCE_LONG_POLL_MS only sets the vitest timeout of the suite's long-poll tests
// (value + 1000 ms); the server's own long-poll timeout must be configured on the server
// (500 ms to 1 s under this suite).
import { runConformanceTests } from "@durable-streams/server-conformance-tests"

const baseUrl = process.env.CONFORMANCE_TEST_URL
if (!baseUrl) {
  throw new Error(
    "CONFORMANCE_TEST_URL must be set to the base URL of a running server, e.g. http://127.0.0.1:4437",
  )
}

const rawLongPoll = process.env.CONFORMANCE_LONG_POLL_MS
const longPollTimeoutMs =
  rawLongPoll === undefined || rawLongPoll === "" ? 500 : Number(rawLongPoll)
if (!Number.isFinite(longPollTimeoutMs) || longPollTimeoutMs <= 0) {
  throw new Error(`CONFORMANCE_LONG_POLL_MS must be a positive number, got ${JSON.stringify(rawLongPoll)}`)
}

// CONFORMANCE_SUBSCRIPTIONS=1 enables the 6 "Reserved subscription APIs" tests (PROTOCOL.md
// sections 6-7): only servers that implement /v1/stream/__ds (the origin) turn it on.
const subscriptions = process.env.CONFORMANCE_SUBSCRIPTIONS === "1"

runConformanceTests({
  baseUrl,
  longPollTimeoutMs,
  subscriptions,
})
