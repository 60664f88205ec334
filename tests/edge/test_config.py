"""EdgeConfig: an --origin that is not a URL with its scheme stops the edge at start-up, in one line;
--origin may be given several times (DS_EDGE_ORIGIN: comma-separated)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from plugin_streams.edge import cli as edge_cli
from plugin_streams.edge.config import origin_url, origin_urls

CLI = str(Path(sys.executable).with_name("plugin-streams"))


@pytest.mark.parametrize("good", ["http://127.0.0.1:4437", "https://origin.example.com/", "http://[::1]:80/base"])
def test_origin_urls_with_a_scheme_are_taken(good: str) -> None:
    assert origin_url(good) == good.rstrip("/")


@pytest.mark.parametrize(
    "bad", ["127.0.0.1:4437", "localhost:4437", "ftp://x", "http://", "http://x:99999", "http://x/?a=1"]
)
def test_others_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        origin_url(bad)


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_the_edge_refuses_to_start_with_one_line_and_status_2(how: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_EDGE_")}
    args = [CLI, "edge", "--port", "0"]
    if how == "flag":
        args += ["--origin", "127.0.0.1:4437"]
    else:
        env["DS_EDGE_ORIGIN"] = "127.0.0.1:4437"
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "plugin-streams: invalid --origin '127.0.0.1:4437': "
        "expected the origin's URL with its scheme, such as http://127.0.0.1:4437"
    ]


def parsed(argv: list[str]) -> tuple[str, ...]:
    parser = argparse.ArgumentParser()
    edge_cli.configure(parser)
    return edge_cli.config_from_args(parser.parse_args(argv)).origin


def test_origin_is_repeatable_in_order_and_each_is_named_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DS_EDGE_ORIGIN", raising=False)
    assert parsed([]) == ("http://127.0.0.1:4437",)
    assert parsed(["--origin", "http://b:1/", "--origin", "http://a:1", "--origin", "http://b:1"]) == (
        "http://b:1",
        "http://a:1",
    )


def test_the_environment_lists_origins_comma_separated_and_a_flag_replaces_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DS_EDGE_ORIGIN", "http://a:1, http://b:2")
    assert parsed([]) == ("http://a:1", "http://b:2")
    assert parsed(["--origin", "http://c:3"]) == ("http://c:3",)


def test_a_bad_origin_among_several_is_named() -> None:
    with pytest.raises(ValueError, match="'b:2': expected the origin's URL with its scheme"):
        origin_urls(("http://a:1", "b:2"))
    with pytest.raises(ValueError, match="at least one origin"):
        origin_urls(())
