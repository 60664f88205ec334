"""origin.rest.routes: a stream name and its action, from the URL."""

from __future__ import annotations

import pytest

from plugin_streams.origin.rest.routes import split_name
from plugin_streams.shared.errors import BadRequest


def test_split_name() -> None:
    assert split_name("a") == ("a", None)
    assert split_name("a/b/read") == ("a/b", "read")
    assert split_name("a%2Fread") == ("a/read", None)
    assert split_name("a%2Fread/tail") == ("a/read", "tail")
    assert split_name("read") == ("read", None)
    with pytest.raises(BadRequest):
        split_name("a//b")
