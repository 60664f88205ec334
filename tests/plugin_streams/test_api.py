"""Which API a URL speaks, and where its streams are addressed (plugin_streams._api.choose_api)."""

from __future__ import annotations

import pytest

from plugin_streams._api import choose_api


def test_a_url_without_v1_stream_speaks_the_rest_api_as_before() -> None:
    assert choose_api("http://h:4437", None) == ("rest", ["http://h:4437"])
    assert choose_api("http://h:4437/streams/api/v1/", None) == ("rest", ["http://h:4437/streams/api/v1"])
    assert choose_api("http://a:1, http://b:2", None) == ("rest", ["http://a:1", "http://b:2"])


def test_a_path_ending_in_v1_stream_speaks_the_protocol_under_it() -> None:
    assert choose_api("http://h:4437/v1/stream/", None) == ("protocol", ["http://h:4437/v1/stream"])
    assert choose_api(["http://a/v1/stream", "http://b/x/v1/stream"], None) == (
        "protocol",
        ["http://a/v1/stream", "http://b/x/v1/stream"],
    )


def test_api_protocol_uses_the_path_given_or_v1_stream() -> None:
    assert choose_api("http://h:4437", "protocol") == ("protocol", ["http://h:4437/v1/stream"])
    assert choose_api("http://h/custom/root", "protocol") == ("protocol", ["http://h/custom/root"])
    assert choose_api("http://h/v1/stream", "rest") == ("rest", ["http://h/v1/stream"])


def test_mixed_or_unknown_choices_are_refused() -> None:
    with pytest.raises(ValueError, match="different APIs"):
        choose_api("http://a/v1/stream,http://b", None)
    with pytest.raises(ValueError, match="api must be one of"):
        choose_api("http://a", "graphql")
