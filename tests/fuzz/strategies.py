"""Hypothesis strategies for whole HTTP requests against the origin's and the edge's surface.

Requests are raw bytes (see wire.py), built from parts drawn here: a method (odd ones too), a
target (known streams and routes, or random segments, %-encoding, dot segments, unicode, very
long, absolute-form), headers (the protocol's own with odd values, credentials good and bad,
huge values), query parameters and a body. Draws lean on the streams the fixture created
(`Surface`) so that many requests reach real handlers instead of stopping at a 404.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from hypothesis import strategies as st

from shared.auth import signed_query


@dataclass(frozen=True)
class Surface:
    """What a target serves: its address, the streams it holds, and the credentials it knows."""

    host: str
    port: int
    streams: dict[str, str]  # name -> generation prefix of its offsets ("0000000000000001")
    tokens: tuple[str, ...] = ()
    signing_key: bytes | None = None
    scopes: tuple[str, ...] = field(default=("app", "public", "other"))


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # as sent on the request line (already encoded, or deliberately not)
    headers: tuple[tuple[str, bytes], ...]
    body: bytes
    chunked: bool = False
    version: str = "HTTP/1.1"

    def to_bytes(self) -> bytes:
        lines = [f"{self.method} {self.target} {self.version}".encode()]
        lines += [name.encode() + b": " + value for name, value in self.headers]
        if self.chunked:
            lines.append(b"Transfer-Encoding: chunked")
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in _pieces(self.body)) + b"0\r\n\r\n"
        else:
            if self.body or self.method in ("POST", "PUT", "PATCH"):
                lines.append(b"Content-Length: %d" % len(self.body))
            body = self.body
        return b"\r\n".join(lines) + b"\r\n\r\n" + body

    def describe(self, limit: int = 600) -> str:
        """A readable reproducer: the request's bytes, with long runs elided."""
        raw = self.to_bytes()
        text = repr(raw) if len(raw) <= limit else f"{raw[: limit // 2]!r} ...[{len(raw)} bytes]... {raw[-100:]!r}"
        return text


def _pieces(body: bytes) -> list[bytes]:
    return [body[i : i + 7000] for i in range(0, len(body), 7000)] if body else []


ROUTES = (
    "/v1/stream/",
    "/streams/api/v1/streams",
    "/streams/api/v1/streams/",
    "/v1/replication/changes",
    "/v1/replication/streams",
    "/v1/replication/streams/",
    "/v1/replication/log/",
    "/v1/replication/touch",
    "/ui/",
    "/",
    "/healthz",
    "/readyz",
    "/metrics",
)
NAMED_ROUTES = ("/v1/stream/", "/streams/api/v1/streams/", "/v1/replication/streams/", "/v1/replication/log/")
REST_ACTIONS = ("", "/append", "/read", "/tail", "/", "/read/", "/%61ppend")
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS")
ODD_METHODS = ("PATCH", "TRACE", "CONNECT", "PROPFIND", "get", "BREW", "G\x00T", "GET\x7f")
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ODD_NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "0", "-0", "+1", "1e9", "0x10", "1_000", " 1", "1.5", "NaN", "inf", "²", "٣", "१२"]),
    st.sampled_from(["5" * 5000, "5" * 100_000]),
    st.integers(1, 40).map(lambda n: "9" * n),
)


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["app", "public", "other", "json", "text", "bin", "append", "read", "tail", "x"]),
        st.sampled_from(["", ".", "..", "%2e", "%2e%2e", "%2F", "%2f..", "%00", "%ff", "%", "%zz", "~", ";x", "a:b"]),
        TEXT.map(lambda s: quote(s, safe="")),  # unicode, %-encoded
        TEXT.filter(lambda s: not any(c in s for c in " \t\r\n?#")),  # unicode sent raw
        st.integers(200, 20_000).map(lambda n: "a" * n),  # very long
    )


def _offset(surface: Surface) -> st.SearchStrategy[str]:
    generations = sorted(set(surface.streams.values())) or ["0000000000000001"]
    return st.one_of(
        st.sampled_from(["-1", "now", "0000000000000000_0000000000000000", "", "-2", "now2"]),
        st.builds(lambda g, p: f"{g}_{p:016d}", st.sampled_from(generations), st.integers(0, 300)),
        st.builds(lambda g, p: f"{g:016d}_{p:016d}", st.integers(0, 10**16 - 1), st.integers(0, 10**16 - 1)),
        ODD_NUMBERS,
        TEXT,
    )


def _param_value(surface: Surface) -> st.SearchStrategy[str]:
    return st.one_of(
        ODD_NUMBERS,
        _offset(surface),
        st.sampled_from(["long-poll", "sse", "true", "false", "raw", "json", "long-poll\x00"]),
        st.sampled_from(surface.scopes + tuple(surface.streams)),
        TEXT,
    )


PARAM_NAMES = (
    "offset",
    "live",
    "cursor",
    "limit",
    "after",
    "ds_scope",
    "ds_exp",
    "ds_sig",
    "prefix",
    "format",
    "mode",
    "epoch",
    "generation",
    "from",
    "encoding",
)


@st.composite
def _query(draw: st.DrawFn, surface: Surface) -> str:
    pairs: list[tuple[str, str]] = []
    if surface.signing_key is not None and draw(st.integers(0, 4)) == 0:
        scope = draw(st.sampled_from(surface.scopes + tuple(surface.streams)))
        expires = int(time.time()) + draw(st.sampled_from([-10, 60, 3600]))
        pairs += list(signed_query(surface.signing_key, scope, expires).items())
    names = st.one_of(st.sampled_from(PARAM_NAMES), TEXT)
    pairs += draw(st.lists(st.tuples(names, _param_value(surface)), max_size=5))
    if not pairs:
        return ""
    raw = draw(st.booleans())
    if raw:  # unencoded, as a careless client would send it (no spaces: they end the request line)
        return "?" + "&".join(f"{k}={v}".replace(" ", "+").replace("#", "%23") for k, v in pairs)
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


@st.composite
def _path(draw: st.DrawFn, surface: Surface) -> str:
    kind = draw(st.integers(0, 9))
    if kind <= 4 and surface.streams:
        route = draw(st.sampled_from(NAMED_ROUTES))
        name = draw(st.sampled_from(sorted(surface.streams)))
        if route.startswith("/streams/") and draw(st.booleans()):
            name = name.replace("/", "%2F")
        action = draw(st.sampled_from(REST_ACTIONS)) if route.startswith("/streams/") else ""
        return route + name + action
    if kind <= 6:
        return draw(st.sampled_from(ROUTES))
    route = draw(st.sampled_from((*NAMED_ROUTES, "/", "/v1/", "/streams/api/v1/", "/ui/")))
    return route + "/".join(draw(st.lists(_segment(), max_size=6)))


@st.composite
def _target(draw: st.DrawFn, surface: Surface) -> str:
    path = draw(_path(surface)) + draw(_query(surface))
    form = draw(st.integers(0, 19))
    if form == 0:  # absolute-form, to this server or to another
        host = draw(st.sampled_from([f"{surface.host}:{surface.port}", "x", "evil.example:1", "127.0.0.1:1", "[::1]"]))
        return f"http://{host}{path}"
    if form == 1:
        return draw(st.sampled_from(["*", f"{surface.host}:{surface.port}", "//x" + path, path.lstrip("/")]))
    return path


def _header_value() -> st.SearchStrategy[bytes]:
    # Any bytes but CR, LF (which would frame a different request: smuggling is tested elsewhere).
    odd = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
    huge = st.integers(1, 64).map(lambda n: b"x" * (n * 1024))  # up to 64 KiB: past the header limits
    return st.integers(0, 15).flatmap(
        lambda n: huge if n == 0 else (ODD_NUMBERS.map(str.encode), TEXT.map(str.encode), odd)[n % 3]
    )


CONTENT_TYPES = (
    b"application/json",
    b"application/json; charset=utf-8",
    b"text/plain",
    b"text/plain; charset=latin-1",
    b"application/octet-stream",
    b"application/ndjson",
    b"text/event-stream",
    b"",
    b"json",
    b"application/json;;;",
    b"multipart/form-data; boundary=x",
)


def _header(surface: Surface) -> st.SearchStrategy[tuple[str, bytes]]:
    tokens = st.sampled_from([*surface.tokens, "nope", ""]).map(lambda t: b"Bearer " + t.encode())
    authorization = st.one_of(tokens, st.sampled_from([b"Bearer", b"Basic dTpw", b"bearer  x  ", b"Bearer \xff"]))
    named = st.sampled_from(
        [
            "Stream-Seq",
            "Stream-TTL",
            "Stream-Expires-At",
            "Stream-Closed",
            "Stream-Forked-From",
            "Stream-Fork-Offset",
            "Stream-Fork-Sub-Offset",
            "Stream-SSE-Data-Encoding",
            "Stream-Retention-Max-Age",
            "Stream-Retention-Max-Bytes",
            "Stream-Max-Size",
            "Producer-Id",
            "Producer-Epoch",
            "Producer-Seq",
            "If-None-Match",
            "If-Match",
            "Accept",
            "Accept-Encoding",
            "Last-Event-ID",
            "Origin",
            "X-Forwarded-For",
            "Range",
            "Cache-Control",
            "Cookie",
            "Expect",
        ]
    )
    stream_values = st.one_of(
        _header_value(),
        st.sampled_from([b"true", b"false", b"2030-01-01T00:00:00Z", b"1970-01-01T00:00:00Z", b"*", b'"e"', b'W/"x"']),
        st.sampled_from(["app/json", "public/json", "other/json", "nope"]).map(str.encode),
    )
    return st.one_of(
        st.tuples(st.just("Content-Type"), st.one_of(st.sampled_from(CONTENT_TYPES), _header_value())),
        st.tuples(st.just("Authorization"), st.one_of(authorization, _header_value())),
        st.tuples(named, stream_values),
        st.tuples(st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,30}\Z").filter(_not_framing), _header_value()),
    )


def _not_framing(name: str) -> bool:
    return name.lower() not in ("content-length", "transfer-encoding")


def _deep_json(depth: int, opener: str) -> bytes:
    if opener == "[":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)
REST_CREATE = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(["app/new", "public/new", "other/new", "app/json", ""]), TEXT),
        "content_type": st.one_of(st.sampled_from([c.decode() for c in CONTENT_TYPES]), TEXT),
        "retention": st.one_of(
            st.fixed_dictionaries({}, optional={"max_age_seconds": JSON_VALUES, "max_bytes": JSON_VALUES}), JSON_VALUES
        ),
        "max_size": JSON_VALUES,
        "ttl_seconds": JSON_VALUES,
        "expires_at": JSON_VALUES,
    },
)


def _body() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(b""),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        REST_CREATE.map(lambda v: json.dumps(v).encode()),
        st.lists(JSON_VALUES, min_size=1, max_size=20).map(lambda v: json.dumps(v).encode()),
        st.builds(_deep_json, st.sampled_from([10, 500, 2000, 100_000]), st.sampled_from(["[", "{"])),
        st.integers(1, 20_000).map(lambda n: b"[" + b",".join([b"1"] * n) + b"]"),  # many tiny messages
        st.binary(max_size=2000),
        st.integers(1, 2048).map(lambda n: bytes(range(256)) * n),  # up to 512 KiB
        TEXT.map(str.encode),
        st.sampled_from([b"{", b"[1,", b"nul", b'"\\ud800"', b"\xef\xbb\xbf{}", b"1e999999", b"[]", b"{}"]),
    )


@st.composite
def requests(draw: st.DrawFn, surface: Surface) -> Request:
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.one_of(st.sampled_from(ODD_METHODS), st.from_regex(r"\A[A-Z]{1,12}\Z")))
    else:
        method = draw(st.sampled_from(METHODS))
    target = draw(_target(surface))
    headers: list[tuple[str, bytes]] = []
    if draw(st.integers(0, 9)):  # usually a Host; sometimes none, sometimes an odd one among the headers
        headers.append(("Host", f"{surface.host}:{surface.port}".encode()))
    headers += draw(st.lists(_header(surface), max_size=6))
    if method in ("POST", "PUT", "PATCH") and draw(st.booleans()):
        headers.insert(0, ("Content-Type", draw(st.sampled_from(CONTENT_TYPES[:5]))))
    body = draw(_body()) if method not in ("GET", "HEAD") or draw(st.integers(0, 9)) == 0 else b""
    chunked = bool(body) and draw(st.integers(0, 7)) == 0
    version = "HTTP/1.0" if draw(st.integers(0, 19)) == 0 and not chunked else "HTTP/1.1"
    return Request(method, target, tuple(headers), body, chunked, version)
