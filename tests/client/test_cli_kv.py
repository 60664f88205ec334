"""`plugin-streams kv get|set|delete|ls|watch` and `plugin-streams queue stats|dlq|redrive`, run as the
real console script against a real origin."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path
from typing import IO, Any

from plugin_streams import QueueMessage, SyncStreams
from tests.client.test_cli import cli, lines
from tests.client.test_kv import db_name
from tests.support.processes import CLI, OriginProcess


def test_set_get_ls_delete_with_both_key_syntaxes(shared_origin: OriginProcess) -> None:
    url, db = shared_origin.url, db_name()
    [written] = lines(cli(url, "kv", "set", db, "users/alice", '{"name": "Alice"}'))
    assert written["ok"] is True and written["versionstamp"] and written["offset"]
    lines(cli(url, "kv", "set", db, '["users", {"$bigint": "7"}]', "seven", "--string"))
    lines(cli(url, "kv", "set", db, "posts/p1", "[1, 2]"))
    [alice, seven] = lines(cli(url, "kv", "get", db, '["users", "alice"]', "users/x"))
    assert alice["value"] == {"name": "Alice"} and alice["versionstamp"] == written["versionstamp"]
    assert seven == {"key": ["users", "x"], "value": None, "versionstamp": None, "offset": alice["offset"]}
    listed = lines(cli(url, "kv", "ls", db, "users"))
    assert [(e["key"], e["value"]) for e in listed] == [
        (["users", "alice"], {"name": "Alice"}),
        (["users", {"$bigint": "7"}], "seven"),
    ]
    assert [e["key"] for e in lines(cli(url, "kv", "ls", db, "--reverse", "--limit", "2"))] == [
        ["users", {"$bigint": "7"}],
        ["users", "alice"],
    ]
    assert len(lines(cli(url, "kv", "ls", db))) == 3  # no prefix: every key
    [deleted] = lines(cli(url, "kv", "delete", db, "users/alice"))
    assert deleted["ok"] is True
    assert [e["key"] for e in lines(cli(url, "kv", "ls", db, "users"))] == [["users", {"$bigint": "7"}]]


def test_usage_errors_and_server_refusals(shared_origin: OriginProcess) -> None:
    url, db = shared_origin.url, db_name()
    bad_key = cli(url, "kv", "get", db, '["users", {"$nope": 1}]')
    assert bad_key.returncode == 2 and "not a key" in bad_key.stderr
    bad_value = cli(url, "kv", "set", db, "a", "not json")
    assert bad_value.returncode == 2 and "--string" in bad_value.stderr
    too_long = cli(url, "kv", "set", db, "a/" + "x" * 3000, "1")
    assert too_long.returncode == 1 and "2048" in too_long.stderr
    help_text = cli(url, "kv", "ls", "--help")
    assert help_text.returncode == 0 and "slash path" in help_text.stdout


def _read_lines(stream: IO[str], into: list[dict[str, Any]], wanted: int, ready: threading.Event) -> None:
    for line in stream:
        into.append(json.loads(line))
        if len(into) >= wanted:
            ready.set()
            return


def _watch(url: str, *args: str, wanted: int) -> list[dict[str, Any]]:
    """Run `kv watch` until it printed `wanted` changes (or 20 s), then stop it like Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_")} | {"DS_URL": url}
    process = subprocess.Popen(
        [CLI, "kv", "watch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    got: list[dict[str, Any]] = []
    ready = threading.Event()
    assert process.stdout is not None
    reader = threading.Thread(target=_read_lines, args=(process.stdout, got, wanted, ready), daemon=True)
    reader.start()
    ready.wait(20)
    process.send_signal(2)
    process.communicate(timeout=20)
    return got


def test_watch_resumes_from_its_offset_file(shared_origin: OriginProcess, tmp_path: Path) -> None:
    url, db = shared_origin.url, db_name()
    offsets = tmp_path / "offset"
    with SyncStreams(url) as streams:
        kv = streams.kv(db)
        kv.set(("users", "a"), 1)
        kv.atomic().set(("users", "b"), 2).set(("posts", "p"), 3).set(("users", "c"), 3).commit()
        first = _watch(url, db, "users", "--from-start", "--offset-file", str(offsets), wanted=3)
        assert [(c["key"], c["value"], c["last"]) for c in first] == [
            (["users", "a"], 1, True),
            (["users", "b"], 2, False),
            (["users", "c"], 3, True),
        ]
        assert offsets.read_text().strip() == first[-1]["offset"]
        kv.delete(("users", "a"))
        kv.set(("users", "d"), 4)
        second = _watch(url, db, "users", "--offset-file", str(offsets), "--long-poll", wanted=2)
        assert [(c["key"], c["op"]) for c in second] == [(["users", "a"], "delete"), (["users", "d"], "set")]


def test_queue_stats_dlq_and_redrive(shared_origin: OriginProcess) -> None:
    url, db = shared_origin.url, db_name()
    with SyncStreams(url) as streams:
        kv = streams.kv(db)
        poison = kv.enqueue({"p": 1}, backoff_schedule=[])
        queue = kv.queue("mail")
        [message] = queue.lease("w")
        queue.nack(message.token, "boom")  # its only attempt: dead-lettered
        [stats] = lines(cli(url, "queue", "stats", db))
        assert stats["group"] == "mail" and stats["dlq"] == 1 and stats["depth"] == 0
        [letter] = lines(cli(url, "queue", "dlq", db, "--group", "mail"))
        assert letter["id"] == poison.enqueued[0] and letter["offset"] == poison.offset
        assert (letter["reason"], letter["last_error"], letter["value"]) == ("attempts_exhausted", "boom", {"p": 1})
        assert lines(cli(url, "queue", "redrive", db, "--group", "mail", "--id", letter["id"])) == [
            {"group": "mail", "redriven": 1}
        ]
        again: list[QueueMessage] = queue.lease("w", wait_ms=2000)
        assert [m.id for m in again] == [letter["id"]]
        missing = cli(url, "queue", "dlq", db, "--group", "nobody")
        assert missing.returncode == 1 and "nobody" in missing.stderr
