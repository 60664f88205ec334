"""`plugin-streams create|ls|append|read|tail|rm`, run as the real console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import CLI, OriginProcess


def cli(url: str, *args: str, stdin: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_")} | {"DS_URL": url}
    return subprocess.run(
        [CLI, *args], input=stdin, capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def lines(result: subprocess.CompletedProcess[str]) -> list[Any]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_create_ls_append_read_rm(shared_origin: OriginProcess, name: str) -> None:
    url = shared_origin.url
    [made] = lines(cli(url, "create", name, "--retention-max-age", "60", "--max-size", "4096"))
    assert made["name"] == name and made["retention"]["max_age_seconds"] == 60 and made["max_size"] == 4096
    assert cli(url, "create", name, "--content-type", "text/plain").returncode == 1  # conflict
    appended = lines(cli(url, "append", name, '{"a": 1}', "[1, 2]", '"three"'))
    assert len(appended) == 3
    from_stdin = lines(cli(url, "append", name, "--batch", "2", stdin='{"b": 1}\n\n{"b": 2}\n{"b": 3}\n'))
    assert len(from_stdin) == 3
    read = lines(cli(url, "read", name))
    assert [m["data"] for m in read] == [{"a": 1}, [1, 2], "three", {"b": 1}, {"b": 2}, {"b": 3}]
    assert [m["offset"] for m in read] == [a["offset"] for a in appended + from_stdin]
    assert [m["data"] for m in lines(cli(url, "read", name, "--after", read[3]["offset"], "--limit", "1"))] == [
        {"b": 2},
        {"b": 3},
    ]
    assert len(lines(cli(url, "read", name, "--max", "2"))) == 2
    assert [s["name"] for s in lines(cli(url, "ls", "--prefix", name))] == [name]
    bad = cli(url, "append", name, "not json")
    assert bad.returncode == 1 and "JSON" in bad.stderr
    assert lines(cli(url, "rm", name)) == [{"name": name, "deleted": True}]
    missing = cli(url, "read", name)
    assert missing.returncode == 1 and "not found" in missing.stderr
    assert lines(cli(url, "rm", "--missing-ok", name)) == [{"name": name, "deleted": False}]


def test_text_and_binary_streams(shared_origin: OriginProcess, name: str) -> None:
    url = shared_origin.url
    lines(cli(url, "create", name + "-t", "--content-type", "text/plain"))
    assert len(lines(cli(url, "append", name + "-t", stdin="one\ntwo\n"))) == 2
    assert [m["data"] for m in lines(cli(url, "read", name + "-t"))] == ["one", "two"]
    lines(cli(url, "create", name + "-b", "--content-type", "application/octet-stream"))
    assert len(lines(cli(url, "append", name + "-b", stdin="raw\nbytes"))) == 1
    [blob] = lines(cli(url, "read", name + "-b"))
    assert blob["encoding"] == "base64" and blob["data"] == "cmF3CmJ5dGVz"


@pytest.mark.parametrize("mode", [[], ["--long-poll"]])
def test_tail_follows_until_closed_and_resumes_from_its_offset_file(
    shared_origin: OriginProcess, name: str, tmp_path: Path, mode: list[str]
) -> None:
    url = shared_origin.url
    lines(cli(url, "create", name))
    lines(cli(url, "append", name, "1", "2"))
    offset_file = tmp_path / "offset"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_")} | {"DS_URL": url}
    tail = subprocess.Popen(
        [CLI, "tail", name, "--offset-file", str(offset_file), *mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert tail.stdout is not None
        assert json.loads(tail.stdout.readline())["data"] == 1  # what was there
        assert json.loads(tail.stdout.readline())["data"] == 2
        lines(cli(url, "append", name, "3"))  # and what comes
        third = json.loads(tail.stdout.readline())
        assert third["data"] == 3
        lines(cli(url, "append", name, "4", "--close"))
        out, err = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    assert tail.returncode == 0, err
    [fourth] = [json.loads(line) for line in out.splitlines()]
    assert fourth["data"] == 4
    assert offset_file.read_text().strip() == fourth["offset"]
    # A second run resumes after the saved offset: nothing new, and the stream is closed.
    again = cli(url, "tail", name, "--offset-file", str(offset_file), *mode)
    assert again.returncode == 0 and again.stdout == ""
    assert [m["data"] for m in lines(cli(url, "tail", name, "--after", third["offset"]))] == [4]
