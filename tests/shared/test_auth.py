"""shared.auth rules: scopes end on a path-segment boundary; ds_exp is 1-12 ASCII digits."""

from __future__ import annotations

import time

import pytest

from plugin_streams.shared.auth import Right, authorize, covers, parse_expiry, policy_from_mapping, signed_query
from plugin_streams.shared.errors import BadRequest, Forbidden, Unauthorized

POLICY = policy_from_mapping(
    {
        "public_read": ["pub"],
        "signing_key": "k",
        "token": [{"name": "ingest", "token": "t", "read": ["events"], "write": ["in/"]}],
    }
)


@pytest.mark.parametrize(
    ("scope", "path", "covered"),
    [
        ("rooms/42", "rooms/42", True),
        ("rooms/42", "rooms/42/a/b", True),
        ("rooms/42", "rooms/420", False),
        ("rooms/42", "rooms/42-private", False),
        ("rooms/42", "rooms/4", False),
        ("rooms/42", "rooms", False),
        ("rooms/", "rooms/42", True),
        ("rooms/", "rooms", False),
        ("rooms/", "roomsx/1", False),
        ("", "anything/at/all", True),
    ],
)
def test_covers_ends_on_a_segment(scope: str, path: str, covered: bool) -> None:
    assert covers(scope, path) is covered


@pytest.mark.parametrize("text", ["", "\u00b2", "\u0661\u0662", "1" * 13, "1" * 5000, "-1", "+1", " 1", "1.0"])
def test_parse_expiry_refuses_what_is_not_ascii_digits(text: str) -> None:
    assert parse_expiry(text) is None


def test_parse_expiry() -> None:
    assert parse_expiry("1700000000") == 1_700_000_000
    assert parse_expiry("9" * 12) == 999_999_999_999


def read(path: str, *, token: str | None = None, query: dict[str, str] | None = None) -> object:
    auth = f"Bearer {token}" if token else None
    return authorize(POLICY, Right.READ, path, authorization=auth, query=query or {}, now_s=int(time.time()))


def test_rights_public_prefixes_and_signatures_use_the_boundary() -> None:
    read("events/a", token="t")
    read("events", token="t")
    read("in/x", token="t")
    with pytest.raises(Forbidden):
        read("events-secret/a", token="t")
    read("pub/a")
    with pytest.raises(Unauthorized):
        read("pubx/a")
    query = signed_query(b"k", "rooms/42", int(time.time()) + 60)
    read("rooms/42/x", query=query)
    with pytest.raises(Forbidden, match="does not cover"):
        read("rooms/420", query=query)


def test_a_malformed_expiry_is_a_bad_request() -> None:
    query = signed_query(b"k", "rooms/", int(time.time()) + 60)
    for expires in ("\u00b2", "1" * 5000):
        with pytest.raises(BadRequest, match="ds_exp"):
            read("rooms/1", query={**query, "ds_exp": expires})
