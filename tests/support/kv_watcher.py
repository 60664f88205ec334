"""A KV watcher as its own process, for crash tests: it may be SIGKILLed at any instant and restarted.

    python -m tests.support.kv_watcher <server url> <db> <sqlite file>

It reads the database's change stream (`/v1/stream/__kv/<db>`, a Durable Streams JSON stream) with
the plain protocol: a catch-up read from the saved offset, then long-polls once up to date. Each
event is "processed" by recording it, and the event's own `offset` (the resume point just after
it) is saved in the SAME SQLite transaction: the effect and the offset are one atomic step, which
is what makes processing exactly-once across kills. A restart resumes from the saved offset.

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction survives the death of
this process (SIGKILL), which is the crash tested here; an OS crash is not.

The watcher exits 0 after processing a change to the key `["end"]` (the writer's last commit).
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import sys
import time
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


def run(server_url: str, db: str, store_path: str) -> None:
    store = open_store(store_path)
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
            if any(change["key"] == END_KEY for change in event["changes"]):
                return
        live = up_to_date


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    run(sys.argv[1], sys.argv[2], sys.argv[3])
