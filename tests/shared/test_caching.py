"""Cache-Control and ETag rules (PROTOCOL.md §10, notes §2.4-2.5)."""

from __future__ import annotations

import pytest

from plugin_streams.shared.caching import (
    LONG_POLL_MAX_AGE,
    MAX_SURROGATE_KEY,
    NO_STORE,
    PUBLIC,
    SSE,
    TAIL_MAX_AGE,
    YEAR,
    Scope,
    catch_up,
    etag,
    if_none_match,
    long_poll,
    surrogate_key,
)

A = "0000000000000001_0000000000000000"
B = "0000000000000001_0000000000000010"
C = "0000000000000001_0000000000000020"


def test_etag_is_a_strong_quoted_tag_naming_the_range() -> None:
    tag = etag(A, B, closed=False)
    assert tag.startswith('"') and tag.endswith('"') and not tag.startswith("W/")
    assert tag == etag(A, B, closed=False)
    assert A in tag and B in tag


def test_etag_changes_with_closure() -> None:
    assert etag(A, B, closed=True) != etag(A, B, closed=False)
    assert etag(A, B, closed=True) == etag(A, B, closed=True)


def test_etag_changes_with_the_range() -> None:
    tags = {etag(s, e, closed=c) for s, e in [(A, B), (A, C), (B, C), (B, B)] for c in (False, True)}
    assert len(tags) == 8


def test_if_none_match_exact() -> None:
    tag = etag(A, B, closed=False)
    assert if_none_match(tag, tag)
    assert not if_none_match(etag(A, C, closed=False), tag)
    assert not if_none_match(etag(A, B, closed=True), tag)  # closure must not be hidden by a 304


@pytest.mark.parametrize("header", [None, "", "   "])
def test_if_none_match_absent(header: str | None) -> None:
    assert not if_none_match(header, etag(A, B, closed=False))


def test_if_none_match_weak_and_lists() -> None:
    tag = etag(A, B, closed=False)
    other = etag(A, C, closed=False)
    assert if_none_match("W/" + tag, tag)
    assert if_none_match(f"{other}, {tag}", tag)
    assert if_none_match(f"{other},{tag}", tag)
    assert if_none_match(f'"x", W/{tag}, "y"', tag)
    assert if_none_match(f"  {tag}  ", tag)
    assert not if_none_match(f'{other}, "x"', tag)
    assert not if_none_match(tag.strip('"'), tag)  # unquoted is a different tag
    assert not if_none_match("w/" + tag, tag)  # the weak prefix is case-sensitive


def test_if_none_match_star() -> None:
    assert if_none_match("*", etag(A, B, closed=False))
    assert if_none_match(" * ", etag(A, B, closed=True))


IMMUTABLE = f"max-age={YEAR}, immutable"
TAIL = f"max-age={TAIL_MAX_AGE}, stale-while-revalidate={TAIL_MAX_AGE}"
PRIVATE = Scope(public=False)


def test_catch_up_cache_control() -> None:
    assert YEAR == 31_536_000
    assert catch_up(PUBLIC, complete=True, explicit_offset=True) == f"public, {IMMUTABLE}"
    for complete, explicit in [(False, True), (True, False), (False, False)]:
        value = catch_up(PUBLIC, complete=complete, explicit_offset=explicit)
        assert value == f"public, {TAIL}"
        assert "immutable" not in value
    assert catch_up(PRIVATE, complete=True, explicit_offset=True) == f"private, {IMMUTABLE}"
    assert catch_up(PRIVATE, complete=False, explicit_offset=True) == f"private, {TAIL}"


def test_long_poll_cache_control() -> None:
    assert LONG_POLL_MAX_AGE == 20  # one cursor interval
    assert long_poll(PUBLIC) == "public, max-age=20"
    assert long_poll(PRIVATE) == "private, max-age=20"


@pytest.mark.parametrize(("cap", "age"), [(0, 0), (-5, 0), (7, 7), (20, 20), (10**9, 20)])
def test_signed_url_caps_max_age(cap: int, age: int) -> None:
    assert long_poll(Scope(max_age_cap=cap)) == f"public, max-age={age}"


def test_signed_url_cap_on_immutable_chunks() -> None:
    assert catch_up(Scope(max_age_cap=300), complete=True, explicit_offset=True) == "public, max-age=300, immutable"
    assert catch_up(Scope(max_age_cap=0), complete=False, explicit_offset=True).startswith("public, max-age=0,")


def test_no_store_and_sse() -> None:
    assert NO_STORE == "no-store"
    assert "no-cache" in SSE


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("a", "ds/a"),
        ("a/b-c_d.e~f", "ds/a/b-c_d.e~f"),
        ("with space", "ds/with%20space"),
        ("a,b", "ds/a%2Cb"),
        ("#x", "ds/%23x"),
        ("caf\u00e9", "ds/caf%C3%A9"),
    ],
)
def test_surrogate_key(path: str, key: str) -> None:
    assert surrogate_key(path) == key


def test_surrogate_key_is_one_token() -> None:
    # Surrogate-Key and Cache-Tag are space- and comma-separated lists.
    for path in ("a b", "a,b", "a\tb", "x" * 500, "\U0001f680/\u4e2d"):
        key = surrogate_key(path)
        assert not set(key) & {" ", ",", "\t", "\n"}
        assert key.isascii() and len(key) <= len("ds/") + MAX_SURROGATE_KEY


def test_long_surrogate_keys_are_hashed_and_distinct() -> None:
    assert len(surrogate_key("x" * MAX_SURROGATE_KEY)) == len("ds/") + MAX_SURROGATE_KEY
    long_a, long_b = surrogate_key("x" * 300), surrogate_key("x" * 299 + "y")
    assert long_a.startswith("ds/#") and long_b.startswith("ds/#")
    assert long_a != long_b
    assert surrogate_key("\u00e9" * 100).startswith("ds/#")  # 600 characters once quoted
