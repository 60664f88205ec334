"""`plugin-streams create|ls|append|read|tail|rm`, run as the real console script."""

from __future__ import annotations

import json
import os
import pty
import queue
import re
import signal
import subprocess
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.client.conftest import Processes
from tests.support.ports import closed_port
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


# --- at a terminal: clear errors, fast failures, reconnect reports, --version, progress ---


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (and no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("plugin-streams: ")
    return line


def timed(*args: str, url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = cli(url, *args)
    return result, time.monotonic() - started


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:4437", "did you mean http://localhost:4437?"),
        ("127.0.0.1:4437", "no http:// or https://"),
        ("http://127.0.0.1:99999", "port '99999'"),
        ("http://127.0.0.1:port", "port 'port'"),
        ("ftp://127.0.0.1", "must be http or https"),
        ("http://", "no valid host"),
        ("%%garbage%%", "invalid URL"),
    ],
)
@pytest.mark.parametrize("command", [["ls"], ["read", "s"], ["tail", "s"], ["append", "s", "1"]])
def test_an_invalid_url_is_one_line_and_exit_2(url: str, says: str, command: list[str]) -> None:
    result = cli(url, *command, timeout=10)
    assert result.returncode == 2 and says in one_line(result)


@pytest.mark.parametrize(
    "command", [["ls"], ["create", "s"], ["read", "s"], ["append", "s", "1"], ["rm", "s"]], ids=" ".join
)
def test_a_refused_connection_fails_within_a_second_naming_the_address(command: list[str]) -> None:
    port = closed_port()
    _, startup = timed("--version", url="http://127.0.0.1:1")  # the interpreter's own start, on this machine now
    result, elapsed = timed(*command, url=f"http://127.0.0.1:{port}")
    assert result.returncode == 1
    assert one_line(result) == f"plugin-streams: cannot connect to 127.0.0.1:{port} (connection refused)"
    assert elapsed - startup < 1.0, (elapsed, startup)


def test_an_unresolvable_host_fails_fast_too() -> None:
    result, elapsed = timed("ls", url="http://no-such-host.invalid:4437")
    assert result.returncode == 1 and "cannot connect to no-such-host.invalid:4437" in one_line(result)
    assert elapsed < 10  # the resolver's own time, not 30 s of retries


@pytest.mark.parametrize("command", [[], ["tail"], ["read"], ["ls"], ["origin"], ["edge"]], ids=repr)
def test_version_on_every_command(command: list[str]) -> None:
    result = cli("http://127.0.0.1:1", *command, "--version", timeout=10)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"plugin-streams {metadata.version('plugin-streams')}\n"


def tail_process(url: str, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_")} | {"DS_URL": url}
    return subprocess.Popen(
        [CLI, "tail", *args], stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL, text=True, env=env
    )


@pytest.mark.parametrize("flags", [["--give-up-after", "2"], []], ids=["give-up-after-2", "default-60"])
def test_tail_reports_each_reconnect_and_gives_up(flags: list[str]) -> None:
    port = closed_port()
    tail = tail_process(f"http://127.0.0.1:{port}", "s", *flags)
    started = time.monotonic()
    try:
        out, err = tail.communicate(timeout=3.5 if flags else 1.5)
    except subprocess.TimeoutExpired:
        assert not flags, "--give-up-after 2 did not give up within 3.5 s"
        tail.terminate()  # the default waits 60 s; what it said meanwhile is checked below
        out, err = tail.communicate(timeout=10)
    elapsed = time.monotonic() - started
    assert out == "" and "Traceback" not in err
    lines = err.splitlines()
    reconnecting = [line for line in lines if line.startswith("plugin-streams: reconnecting to ")]
    assert len(reconnecting) >= 3, err
    assert all(f"http://127.0.0.1:{port}" in line and line.endswith("s (connection refused)") for line in reconnecting)
    if flags:
        assert tail.returncode == 1 and elapsed < 3.5
        assert lines[-1] == (
            f"plugin-streams: gave up reconnecting after 2s (--give-up-after): "
            f"cannot connect to 127.0.0.1:{port} (connection refused)"
        )
        assert len(lines) == len(reconnecting) + 1
    else:
        assert tail.returncode == -signal.SIGTERM and elapsed >= 1.5


def read_lines(pipe: Any, into: queue.Queue[str]) -> None:
    for line in pipe:
        into.put(line)


def test_tail_reconnects_across_an_origin_kill_and_restart_without_gap_or_duplicate(
    processes: Processes, name: str, tmp_path: Path
) -> None:
    origin = processes.origin("--sse-keepalive", "0.5")
    port = urlsplit(origin.url).port
    lines(cli(origin.url, "create", name))
    before = lines(cli(origin.url, "append", name, *map(str, range(5))))
    err_path = tmp_path / "tail.err"
    with open(err_path, "w") as err_file:
        tail = tail_process(origin.url, name, "--retry-forever", stderr=err_file)
    shown: queue.Queue[str] = queue.Queue()
    assert tail.stdout is not None
    reading = threading.Thread(target=read_lines, args=(tail.stdout, shown), daemon=True)
    reading.start()
    try:
        got = [json.loads(shown.get(timeout=20)) for _ in range(5)]
        origin.kill()  # SIGKILL
        deadline = time.monotonic() + 20
        while "reconnecting" not in err_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)  # a few attempts while nothing listens
        restarted = OriginProcess(origin.data_dir, "--port", str(port), "--sse-keepalive", "0.5")
        processes.started.append(restarted)
        restarted.start()
        after = lines(cli(restarted.url, "append", name, *map(str, range(5, 10)), "--close"))
        got += [json.loads(shown.get(timeout=20)) for _ in range(5)]
        assert tail.wait(timeout=20) == 0  # the stream was closed
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
        reading.join(10)  # it reaches the end of the pipe once the tail exited
        tail.stdout.close()
    assert [m["data"] for m in got] == list(range(10)), processes.logs()
    assert [m["offset"] for m in got] == [a["offset"] for a in before + after[:-1]]
    assert shown.empty()  # nothing more, in particular no duplicate
    err = err_path.read_text()
    reconnecting = [line for line in err.splitlines() if line.startswith("plugin-streams: reconnecting to ")]
    assert len(reconnecting) >= 2 and all(f"127.0.0.1:{port}" in line for line in reconnecting), err
    assert "Traceback" not in err and "\r" not in err  # stderr is a file: no progress line


def append_many(url: str, name: str, count: int) -> None:
    lines(cli(url, "create", name))
    stdin = "".join(f'{{"n": {i}}}\n' for i in range(count))
    assert len(lines(cli(url, "append", name, "--batch", "1000", stdin=stdin))) == count


def test_no_progress_bytes_when_stderr_is_a_pipe(shared_origin: OriginProcess, name: str) -> None:
    append_many(shared_origin.url, name, 3000)
    result = cli(shared_origin.url, "read", name, "--limit", "20")
    assert len(lines(result)) == 3000
    assert result.stderr == ""


def test_progress_on_a_terminal_while_stdout_goes_to_a_file(
    shared_origin: OriginProcess, name: str, tmp_path: Path
) -> None:
    """The other side of the test above: it shows that the progress line exists to be absent."""
    append_many(shared_origin.url, name, 3000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_")} | {"DS_URL": shared_origin.url}
    terminal, child_side = pty.openpty()
    started = time.monotonic()
    with open(tmp_path / "out.jsonl", "w") as out:
        reader = subprocess.Popen([CLI, "read", name, "--limit", "10"], stdout=out, stderr=child_side, env=env)
    os.close(child_side)
    drawn = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(terminal)
    assert reader.wait(timeout=30) == 0
    elapsed = time.monotonic() - started
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3000  # stdout: only the JSON lines
    text = drawn.decode().replace("\r\n", "\n")  # the terminal turns "\n" into "\r\n"
    redraws = re.findall(r"\r[|/\\-] reading .*?: ([\d,]+) messages \(", text)
    assert redraws, text
    assert len(redraws) <= elapsed * 10 + 1  # at most ten a second
    assert re.fullmatch(rf".*\r\x1b\[Kreading {re.escape(name)}: 3,000 messages in \d+\.\ds\n", text, re.DOTALL), text


def test_the_protocol_api_by_url_path_or_flag(shared_origin: OriginProcess, name: str) -> None:
    protocol_url = shared_origin.url + "/v1/stream"
    lines(cli(protocol_url, "create", name))
    appended = lines(cli(protocol_url, "append", name, '{"a": 1}', '"two"'))
    assert len(appended) == 2
    read = lines(cli(shared_origin.url, "read", name, "--api", "protocol"))
    assert [m["data"] for m in read] == [{"a": 1}, "two"]
    assert read[-1]["offset"] == appended[-1]["offset"]
    assert [m["data"] for m in lines(cli(shared_origin.url, "read", name))] == [{"a": 1}, "two"]  # the same stream
    unsupported = cli(protocol_url, "ls")
    assert unsupported.returncode == 1 and "Traceback" not in unsupported.stderr
    one_line(unsupported)
    mixed = cli(f"{shared_origin.url},{protocol_url}", "ls")
    assert mixed.returncode == 2 and "different APIs" in one_line(mixed)
