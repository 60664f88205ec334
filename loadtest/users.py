"""Locust users for Durable Streams fan-out: one writer class and two reader classes.

All three are FastHttpUser (geventhttpclient), so they cooperate with locust's gevent loop.

- WriterUser appends `{"seq": n, "ts": time.time(), "writer": id}` to its streams every
  DS_LOAD_WRITE_INTERVAL seconds, as an idempotent producer (Producer-Id/Epoch/Seq, one message
  per request, Producer-Seq = message seq). A failed append (network error, timeout, 5xx, 429)
  is retried with the *same* seq and body, so the server de-duplicates it (204).
- LongPollReader and SSEReader follow one stream from its tail (`offset=now`), then from the
  returned offsets, echoing the cursor. Each received message is checked against the last seq
  of its writer (missed / duplicated) and its delivery latency (receive time - ts) is reported
  as a locust request event of type DELIVERY, named after the read mode, so locust's own stats
  table shows its percentiles. Gaps and duplicates are reported as failures (types GAP, DUPLICATE).

SSE is read with a streaming response and the project's incremental parser (shared.sse.Parser).
Data events are only accounted for once the control event that follows them arrives (that is
when their offset is known); a connection that dies between the two reconnects from the previous
offset, as a protocol client would, and the redelivered data is not counted twice.
"""

from __future__ import annotations

import itertools
import json
import time
from urllib.parse import urlencode

import gevent
from gevent.lock import Semaphore
from locust import constant, constant_pacing, task
from locust.contrib.fasthttp import FastHttpUser
from locust.runners import STATE_RUNNING, STATE_SPAWNING

from loadtest.config import CONFIG
from loadtest.tracking import TRACKER, ReaderStats
from plugin_streams.shared.sse import Parser

JSON = "application/json"
_stream_lock = Semaphore()
_streams_ready = False
_writer_index = itertools.count()
_reader_index = itertools.count()


class DeliveryProblem(Exception):
    """Reported as a locust failure when a reader sees a gap or a duplicate."""


def _write_url(path: str) -> str:
    return f"{CONFIG.write_host}{path}" if CONFIG.write_host else path


def ensure_streams(user: FastHttpUser) -> None:
    """Create the run's streams once per process (PUT is idempotent: 201 the first time, then 200)."""
    global _streams_ready
    with _stream_lock:
        if _streams_ready:
            return
        headers = {"Content-Type": JSON}
        if CONFIG.stream_ttl:
            headers["Stream-TTL"] = str(CONFIG.stream_ttl)
        for index in range(CONFIG.streams):
            with user.client.put(
                _write_url(CONFIG.stream_path(index)),
                data=b"",
                headers=headers,
                name="PUT create stream",
                catch_response=True,
            ) as resp:
                if resp.status_code not in (200, 201):
                    resp.failure(f"create {CONFIG.stream_path(index)}: status {resp.status_code} {resp.text!r:.200}")
                    raise RuntimeError(f"could not create stream {CONFIG.stream_path(index)}: {resp.status_code}")
        _streams_ready = True


class _StreamUser(FastHttpUser):
    abstract = True
    network_timeout = CONFIG.network_timeout
    connection_timeout = 10.0
    default_headers = {"Authorization": CONFIG.authorization} if CONFIG.authorization else None


class WriterUser(_StreamUser):
    """Appends one message per tick to each of its streams (streams are dealt round-robin to writers)."""

    fixed_count = CONFIG.writers
    wait_time = constant_pacing(CONFIG.write_interval)

    def on_start(self) -> None:
        ensure_streams(self)
        self.index = next(_writer_index)
        self.stats = TRACKER.add_writer(self.index, CONFIG.streams_of_writer(self.index))
        # A fresh epoch per writer (ms since the epoch): a re-run with the same DS_LOAD_RUN_ID is not
        # fenced or taken for duplicates by producer state left from an earlier run.
        self.epoch = int(time.time() * 1000)
        self.next_seq = dict.fromkeys(self.stats.streams, 0)
        self.pending: dict[int, bytes] = {}  # stream -> body being retried (same seq, same bytes)
        self.closed: set[int] = set()
        self.pad = "x" * CONFIG.message_bytes if CONFIG.message_bytes else ""

    @task
    def append(self) -> None:
        for stream in self.stats.streams:
            if stream not in self.closed:
                self._append(stream)

    def _body(self, stream: int) -> bytes:
        body = self.pending.get(stream)
        if body is None:
            message: dict[str, object] = {"seq": self.next_seq[stream], "ts": time.time(), "writer": self.stats.id}
            if self.pad:
                message["pad"] = self.pad
            body = json.dumps(message, separators=(",", ":")).encode()
            self.pending[stream] = body
        return body

    def _append(self, stream: int) -> None:
        stats = self.stats
        seq = self.next_seq[stream]
        body = self._body(stream)
        headers = {
            "Content-Type": JSON,
            "Producer-Id": stats.id,
            "Producer-Epoch": str(self.epoch),
            "Producer-Seq": str(seq),
        }
        url = _write_url(CONFIG.stream_path(stream))
        for attempt in range(CONFIG.write_retries + 1):
            if attempt:
                stats.retries += 1
                gevent.sleep(min(2.0, 0.05 * 2**attempt))
            stats.attempts += 1
            with self.client.post(url, data=body, headers=headers, name="POST append", catch_response=True) as resp:
                status = resp.status_code
                if status in (200, 204):
                    resp.success()
                    if status == 200:
                        stats.appended += 1
                    else:
                        stats.duplicate_acks += 1
                    stats.last_acked[str(stream)] = seq
                    self.next_seq[stream] = seq + 1
                    del self.pending[stream]
                    return
                if status in (400, 403, 409):
                    stats.conflicts += 1
                    rh = resp.headers or {}
                    resp.failure(
                        f"producer error {status}: expected-seq={rh.get('Producer-Expected-Seq')} "
                        f"epoch={rh.get('Producer-Epoch')} closed={rh.get('Stream-Closed')}"
                    )
                    if rh.get("Stream-Closed") == "true":
                        self.closed.add(stream)
                    elif status == 409 and rh.get("Producer-Expected-Seq"):
                        # The server expects another seq: resynchronise (readers will report the gap).
                        self.next_seq[stream] = int(rh["Producer-Expected-Seq"])
                        del self.pending[stream]
                    return  # not retryable as is
                stats.failures += 1
                resp.failure(f"append failed: status {status} {getattr(resp, 'error', '') or ''}")
        # Still pending: the next tick retries the same seq and body first.


class _Reader(_StreamUser):
    abstract = True
    mode = ""
    kind = ""

    def on_start(self) -> None:
        ensure_streams(self)
        index = next(_reader_index)
        self.stream = index % CONFIG.streams
        self.path = CONFIG.stream_path(self.stream)
        self.stats: ReaderStats = TRACKER.add_reader(self.kind, index, self.mode, self.stream)
        self.offset = "now"
        self.cursor: str | None = None
        self.backoff = 0.0

    def on_stop(self) -> None:
        # Users stopped while the test still runs were retired by a load shape: they are not
        # "behind" at the end of the test.
        runner = self.environment.runner
        if runner is not None and runner.state in (STATE_RUNNING, STATE_SPAWNING):
            self.stats.retired = True

    def _url(self, live: str) -> str:
        query = {"offset": self.offset, "live": live}
        if self.cursor:
            query["cursor"] = self.cursor
        return f"{self.path}?{urlencode(query)}"

    def _deliver(self, messages: object, received: float, size: int) -> None:
        if not isinstance(messages, list):
            messages = [messages]
        fire = self.environment.events.request.fire
        for message in messages:
            outcome = TRACKER.deliver(self.stats, message, received)
            if outcome.latency_ms is not None:
                fire(
                    request_type="DELIVERY",
                    name=self.mode,
                    response_time=outcome.latency_ms,
                    response_length=size // max(1, len(messages)),
                    exception=None,
                    context={},
                )
            if outcome.missed:
                fire(
                    request_type="GAP",
                    name=self.mode,
                    response_time=0,
                    response_length=0,
                    exception=DeliveryProblem(f"{outcome.missed} message(s) missed"),
                    context={},
                )
            if outcome.duplicate:
                fire(
                    request_type="DUPLICATE",
                    name=self.mode,
                    response_time=0,
                    response_length=0,
                    exception=DeliveryProblem("message delivered twice"),
                    context={},
                )

    def _failed(self) -> None:
        self.stats.errors += 1
        self.backoff = min(5.0, max(0.1, self.backoff * 2))
        gevent.sleep(self.backoff)

    def _idle_if_closed(self) -> bool:
        if self.stats.closed:
            gevent.sleep(1.0)
        return self.stats.closed


class LongPollReader(_Reader):
    """GET ?offset=O&live=long-poll[&cursor=C] in a loop (200 with data, or 204 on timeout)."""

    mode = "long-poll"
    kind = "lp"
    wait_time = constant(0)

    @task
    def poll(self) -> None:
        if self._idle_if_closed():
            return
        self.stats.requests += 1
        with self.client.get(self._url("long-poll"), name="GET long-poll", catch_response=True) as resp:
            received = time.time()
            status = resp.status_code
            rh = resp.headers or {}
            if status not in (200, 204) or not rh.get("Stream-Next-Offset"):
                resp.failure(f"long-poll: status {status} {getattr(resp, 'error', '') or ''}")
                failed = True
            else:
                resp.success()
                failed = False
                if status == 200 and resp.content:
                    try:
                        self._deliver(json.loads(resp.content), received, len(resp.content))
                    except ValueError:
                        self.stats.malformed += 1
                self.offset = rh["Stream-Next-Offset"]
                self.cursor = rh.get("Stream-Cursor") or self.cursor
                self.stats.closed = rh.get("Stream-Closed") == "true"
                self.backoff = 0.0
        if failed:
            self._failed()


class SSEReader(_Reader):
    """GET ?offset=O&live=sse, parsed incrementally; reconnects from the last control event's offset."""

    mode = "sse"
    kind = "sse"
    wait_time = constant(0)

    @task
    def follow(self) -> None:
        if self._idle_if_closed():
            return
        self.stats.requests += 1
        # The request event fires when the headers arrive: "GET sse" times the connection setup.
        resp = self.client.get(self._url("sse"), name="GET sse", stream=True)
        raw = getattr(resp, "_response", None)
        if resp.status_code != 200 or raw is None:
            if raw is not None:
                raw.release()
            self._failed()
            return
        parser = Parser()
        pending: list[tuple[object, float, int]] = []
        error: Exception | None = None
        try:
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break  # the server ended the response (max age): reconnect
                for event in parser.feed(line):
                    received = time.time()
                    if event.event == "data":
                        try:
                            pending.append((json.loads(event.data), received, len(event.data)))
                        except ValueError:
                            self.stats.malformed += 1
                    elif event.event == "control":
                        control = json.loads(event.data)
                        for messages, when, size in pending:
                            self._deliver(messages, when, size)
                        pending.clear()
                        self.offset = control.get("streamNextOffset", self.offset)
                        self.cursor = control.get("streamCursor") or self.cursor
                        self.backoff = 0.0
                        if control.get("streamClosed"):
                            self.stats.closed = True
                            return
        except Exception as exc:  # network error, timeout, truncated chunked body, bad control JSON
            error = exc
        finally:
            raw.release()
        if error is not None:
            self.environment.events.request.fire(
                request_type="GET",
                name="sse stream ended",
                response_time=0,
                response_length=0,
                exception=error,
                context={},
            )
            self._failed()
