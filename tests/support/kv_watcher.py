"""A KV watcher as its own process, for crash tests: it may be SIGKILLed at any instant and restarted.

    python -m tests.support.kv_watcher <server url> <db> <sqlite file> long-poll|sse

It reads the database's change stream (`/v1/stream/__kv/<db>`, a Durable Streams JSON stream) with
the plain protocol: with `long-poll`, a catch-up read from the saved offset, then long-polls once
up to date; with `sse`, one SSE read from the saved offset (reconnecting from it if cut). Each
event is "processed" by recording it, and the event's own `offset` (the resume point just after
it) is saved in the SAME SQLite transaction: the effect and the offset are one atomic step, which
is what makes processing exactly-once across kills. A restart resumes from the saved offset.

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction survives the death of
this process (SIGKILL), which is the crash tested here; an OS crash is not.

The watcher exits 0 after processing a change to the key `["end"]` (the writer's last commit), and
at once when restarted after that.
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from typing import Any, Final
from urllib.parse import quote, urlsplit

#: The key whose change ends the run.
END_KEY: Final = ["end"]
SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS processed (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- processing order
    versionstamp TEXT NOT NULL,             -- deliberately not UNIQUE: a duplicate must be visible
    event_offset TEXT NOT NULL,
    changes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resume (id INTEGER PRIMARY KEY CHECK (id = 1), event_offset TEXT NOT NULL);
"""


def open_store(path: str) -> sqlite3.Connection:
    store = sqlite3.connect(path, isolation_level=None)
    store.execute("PRAGMA journal_mode=WAL")
    store.execute("PRAGMA synchronous=NORMAL")
    store.executescript(SCHEMA)
    return store


def saved_offset(store: sqlite3.Connection) -> str:
    row = store.execute("SELECT event_offset FROM resume WHERE id = 1").fetchone()
    return "-1" if row is None else str(row[0])


def finished(store: sqlite3.Connection) -> bool:
    """Whether the end marker was processed already (a kill may land after that, before the exit)."""
    row = store.execute("SELECT changes FROM processed ORDER BY seq DESC LIMIT 1").fetchone()
    return row is not None and ends(json.loads(row[0]))


def ends(changes: list[dict[str, Any]]) -> bool:
    return any(change["key"] == END_KEY for change in changes)


def process(store: sqlite3.Connection, event: dict[str, Any]) -> None:
    """Record the event and its resume point in one transaction (effect + offset, atomically)."""
    store.execute("BEGIN IMMEDIATE")
    store.execute(
        "INSERT INTO processed (versionstamp, event_offset, changes) VALUES (?, ?, ?)",
        (event["versionstamp"], event["offset"], json.dumps(event["changes"], sort_keys=True)),
    )
    store.execute("INSERT OR REPLACE INTO resume (id, event_offset) VALUES (1, ?)", (event["offset"],))
    store.execute("COMMIT")


class ChangeStream:
    """GETs of `/v1/stream/__kv/<db>` on one keep-alive connection."""

    def __init__(self, server_url: str, db: str) -> None:
        parts = urlsplit(server_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = "/v1/stream/" + quote(f"__kv/{db}", safe="/")
        self.connection: http.client.HTTPConnection | None = None
        self.cursor: str | None = None

    def read(self, offset: str, live: bool) -> tuple[int, list[dict[str, Any]], bool]:
        """One read from `offset`: status, the events, and whether the stream is up to date."""
        query = f"?offset={quote(offset)}"
        if live:
            query += "&live=long-poll" + (f"&cursor={quote(self.cursor)}" if self.cursor else "")
        if self.connection is None:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            self.connection.request("GET", self.path + query)
            response = self.connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = None
            raise
        self.cursor = response.getheader("Stream-Cursor") or self.cursor
        up_to_date = response.getheader("Stream-Up-To-Date") == "true" or response.status == 204
        events = json.loads(body) if response.status == 200 and body else []
        return response.status, events, up_to_date

    def sse(self, offset: str) -> Iterator[list[dict[str, Any]]]:
        """The events of each `data` event of one SSE read from `offset`, until the server ends it."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request("GET", f"{self.path}?offset={quote(offset)}&live=sse")
            response = connection.getresponse()
            if response.status != 200:
                response.read()
                raise SseRefused(response.status)
            kind, data = "", []
            while line := response.readline():
                text = line.decode().rstrip("\r\n")
                if text.startswith("event:"):
                    kind = text[len("event:") :].strip()
                elif text.startswith("data:"):
                    data.append(text[len("data:") :])
                elif not text:
                    if kind == "data" and data:
                        yield json.loads("\n".join(data))
                    kind, data = "", []
        finally:
            connection.close()


class SseRefused(Exception):
    """An SSE read answered with a status other than 200 (404 before the database's first write)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"SSE read answered {status}")
        self.status = status


def run_sse(server_url: str, db: str, store: sqlite3.Connection) -> None:
    stream = ChangeStream(server_url, db)
    while True:
        offset = saved_offset(store)
        try:
            for events in stream.sse(offset):
                for event in events:
                    process(store, event)
                    if ends(event["changes"]):
                        return
        except SseRefused as refused:
            if refused.status != 404:
                raise SystemExit(f"SSE read of {stream.path} from {offset}: {refused}") from None
        except (OSError, http.client.HTTPException):
            pass  # cut off: resume from the saved offset
        time.sleep(0.1)


def run_long_poll(server_url: str, db: str, store: sqlite3.Connection) -> None:
    stream = ChangeStream(server_url, db)
    live = False
    while True:
        offset = saved_offset(store)
        try:
            status, events, up_to_date = stream.read(offset, live)
        except (OSError, http.client.HTTPException):
            time.sleep(0.1)  # the server is restarting or the connection dropped: retry from the saved offset
            continue
        if status == 404:  # the database has no change stream before its first write
            time.sleep(0.1)
            continue
        if status not in (200, 204):
            raise SystemExit(f"GET {stream.path} offset={offset}: unexpected status {status}")
        for event in events:
            process(store, event)
            if ends(event["changes"]):
                return
        live = up_to_date


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[4] not in ("long-poll", "sse"):
        raise SystemExit(__doc__)
    store = open_store(sys.argv[3])
    if not finished(store):
        read = run_sse if sys.argv[4] == "sse" else run_long_poll
        read(sys.argv[1], sys.argv[2], store)
