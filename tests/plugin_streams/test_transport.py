"""plugin_streams._transport: base URLs of the REST API."""

from __future__ import annotations

import pytest

from plugin_streams._transport import base_urls


def test_base_urls() -> None:
    assert base_urls("http://a:1/, http://b:2/streams/api/v1") == [
        "http://a:1/streams/api/v1",
        "http://b:2/streams/api/v1",
    ]
    assert base_urls(["http://a"]) == ["http://a/streams/api/v1"]
    with pytest.raises(ValueError):
        base_urls(" , ")
