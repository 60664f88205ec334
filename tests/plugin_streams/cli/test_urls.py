"""plugin_streams.cli.urls: server URLs checked before any request, each mistake in one line."""

from __future__ import annotations

import pytest

from plugin_streams.cli.urls import InvalidURL, server_urls


def test_good_urls_pass_unchanged() -> None:
    assert server_urls(" http://127.0.0.1:4437 ,https://edge.example.com/base,") == [
        "http://127.0.0.1:4437",
        "https://edge.example.com/base",
    ]
    assert server_urls("http://[::1]:4437") == ["http://[::1]:4437"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("localhost:4437", "did you mean http://localhost:4437?"),
        ("127.0.0.1:4437", "did you mean http://127.0.0.1:4437?"),
        ("ftp://host", "must be http or https, not 'ftp'"),
        ("http://host:99999", "port '99999' is not a number from 1 to 65535"),
        ("http://host:abc", "port 'abc' is not a number"),
        ("http://host:0", "port 0"),
        ("http:/host", "no valid host"),
        ("http://bad$host", "no valid host"),
        ("http://a b", "contains a space"),
        ("http://host?x=1", "no ?query"),
        ("http://good:1,bad", "'bad'"),
        (" , ", "no server URL given"),
    ],
)
def test_each_mistake_is_named_in_one_line(url: str, says: str) -> None:
    with pytest.raises(InvalidURL) as raised:
        server_urls(url)
    assert says in str(raised.value) and "\n" not in str(raised.value)
