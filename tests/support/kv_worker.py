"""A KV queue worker as its own process, for crash tests: it may be SIGKILLed at any instant.

    python -m tests.support.kv_worker <url file> <db> <group> <worker name> <outcome log> [--stale]

It leases messages (`waitMs`, short leases) and processes each by acknowledging it WITH a KV atomic
that records the effect: `set ["done", <message id>]` (the message's `n`, this worker, the attempt)
and `sum ["count"] 1`. Effect and ack are one log record, so a message is processed exactly once
however often workers die. A message whose value has `"poison": true` kills the worker that takes
it (SIGKILL of itself, before any answer, once it has logged that), on every attempt.

The server's URL is read from `<url file>` and read again after a connection error: a test may
restart the origin on another port and rewrite the file. An ack whose answer was lost is sent
again with the same token until the server answers it (200, or 409 if it was already applied or
the lease is gone), so a crash of the origin cannot turn into a lost or a doubled effect.

Every ack's outcome is appended to `<outcome log>` as a JSON line (the test reads them).
With `--stale` the worker leases one message, logs it, stops itself (SIGSTOP) before answering,
and once continued (SIGCONT) acks it with its now stale token, logs the outcome and exits.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

LEASE_MS: Final = 1000
WAIT_MS: Final = 1000
BATCH: Final = 5
JSON_HEADERS: Final = {"Content-Type": "application/json"}


class QueueClient:
    """The queue API of one database, over one keep-alive connection to the URL in the url file."""

    def __init__(self, url_file: Path, db: str, group: str) -> None:
        self.url_file = url_file
        self.base = f"/kv/api/v1/{quote(db)}/queue/groups/{quote(group)}"
        self.connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self.connection is None:
            parts = urlsplit(self.url_file.read_text().strip())
            self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        return self.connection

    def post(self, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST until the server answers (connection errors: reconnect, re-reading the URL); status, JSON."""
        while True:
            connection = self._connect()
            try:
                connection.request(
                    "POST", f"{self.base}/{action}", json.dumps(body), {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                answer = json.loads(response.read())
            except (OSError, http.client.HTTPException):
                connection.close()
                self.connection = None
                time.sleep(0.1)
                continue
            if response.status != 503:  # 503: overloaded or not ready yet; anything else is an answer
                return response.status, answer
            time.sleep(0.1)


def lease(client: QueueClient, worker: str, count: int) -> list[dict[str, Any]]:
    status, answer = client.post("lease", {"worker": worker, "leaseMs": LEASE_MS, "max": count, "waitMs": WAIT_MS})
    if status != 200:
        raise SystemExit(f"lease: {status} {answer}")
    return list(answer["messages"])


def ack_with_effect(client: QueueClient, worker: str, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The processing: the effect, committed in the same log record as the ack."""
    effect = {"n": message["value"]["n"], "worker": worker, "attempt": message["attempt"]}
    mutations = [
        {"type": "set", "key": ["done", message["id"]], "value": effect},
        {"type": "sum", "key": ["count"], "value": 1},
    ]
    return client.post("ack", {"token": message["token"], "atomic": {"checks": [], "mutations": mutations}})


def record(log: Path, **outcome: Any) -> None:
    with log.open("a") as out:
        out.write(json.dumps(outcome) + "\n")
        out.flush()


def work(client: QueueClient, worker: str, log: Path) -> None:
    while True:
        messages = lease(client, worker, BATCH)
        for message in messages:
            if message["value"].get("poison"):  # dies at once, so a test's SIGKILL can hardly hide it
                record(log, worker=worker, id=message["id"], poison=True, attempt=message["attempt"])
                os.kill(os.getpid(), signal.SIGKILL)
        for message in messages:
            status, answer = ack_with_effect(client, worker, message)
            if status != 200 and not (status == 409 and answer.get("error", {}).get("code") == "FENCED"):
                raise SystemExit(f"ack of {message['id']}: {status} {answer}")
            record(log, worker=worker, id=message["id"], status=status, answer=answer)


def work_stale(client: QueueClient, worker: str, log: Path) -> None:
    """Lease one message, stop until continued (the lease lapses meanwhile), then ack it."""
    messages: list[dict[str, Any]] = []
    while not messages:
        messages = lease(client, worker, 1)
    message = messages[0]
    record(log, worker=worker, id=message["id"], leased=True, token=message["token"])
    os.kill(os.getpid(), signal.SIGSTOP)
    status, answer = ack_with_effect(client, worker, message)
    record(log, worker=worker, id=message["id"], status=status, answer=answer)


def main(argv: list[str]) -> None:
    if len(argv) not in (5, 6) or (len(argv) == 6 and argv[5] != "--stale"):
        raise SystemExit(__doc__)
    url_file, db, group, worker, log = Path(argv[0]), argv[1], argv[2], argv[3], Path(argv[4])
    client = QueueClient(url_file, db, group)
    if len(argv) == 6:
        work_stale(client, worker, log)
    else:
        work(client, worker, log)


if __name__ == "__main__":
    main(sys.argv[1:])
