"""Hypothesis strategies for whole HTTP requests against the origin's and the edge's surface.

Requests are raw bytes (see wire.py), built from parts drawn here: a method (odd ones too), a
target (known streams and routes, or random segments, %-encoding, dot segments, unicode, very
long, absolute-form), headers (the protocol's own with odd values, credentials good and bad,
huge values), query parameters and a body. Draws lean on the streams the fixture created
(`Surface`) so that many requests reach real handlers instead of stopping at a 404.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import quote

from hypothesis import strategies as st

from plugin_streams.shared.auth import signed_query


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
PRINTABLE = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
LONG = ("5" * 5000, "5" * 100_000)
RAW_TEXT = TEXT.filter(lambda s: not any(c in s for c in " \t\r\n?#"))
TRICKY_NUMBERS = st.sampled_from(
    ["", "0", "-0", "-1", "+1", "1e9", "0x10", "1_000", " 1", "1.5", "NaN", "inf", "²", "٣", "१२", *LONG]
)
ODD_NUMBERS = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    TRICKY_NUMBERS,
    TRICKY_NUMBERS,
    st.integers(1, 40).map(lambda n: "9" * n),
)


def _segment() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["app", "public", "other", "json", "text", "bin", "append", "read", "tail", "x"]),
        st.sampled_from(["", ".", "..", "%2e", "%2e%2e", "%2F", "%2f..", "%00", "%ff", "%", "%zz", "~", ";x", "a:b"]),
        TEXT.map(lambda s: quote(s, safe="")),  # unicode, %-encoded
        TEXT.map(lambda s: quote(s, safe="")),
        TEXT.map(lambda s: quote(s, safe="")),
        st.integers(200, 20_000).map(lambda n: "a" * n),  # very long
        st.integers(0, 9).flatmap(lambda n: RAW_TEXT if n == 0 else st.just("x")),  # unicode sent raw, now and then
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


EXPIRED, FAR_FUTURE = 1_000_000_000, 4_102_444_800  # 2001 and 2100
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
    if draw(st.integers(0, 3)) == 0:  # a signature (valid where the server has this key), maybe with one part odd
        scope = draw(st.sampled_from(surface.scopes + tuple(surface.streams)))
        expires = draw(st.sampled_from([EXPIRED, FAR_FUTURE]))  # fixed, so that a seed replays the same bytes
        signed = signed_query(surface.signing_key or b"not-the-key", scope, expires)
        if draw(st.booleans()):
            signed[draw(st.sampled_from(sorted(signed)))] = draw(st.one_of(TRICKY_NUMBERS, ODD_NUMBERS, TEXT))
        pairs += list(signed.items())
    names = st.one_of(st.sampled_from(PARAM_NAMES), TEXT)
    pairs += draw(st.lists(st.tuples(names, _param_value(surface)), max_size=5))
    if not pairs:
        return ""
    if draw(st.integers(0, 7)) == 0:  # unencoded, as a careless client sends it (no spaces: they end the request line)
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
        lambda n: huge if n == 0 else odd if n == 1 else (ODD_NUMBERS.map(str.encode), PRINTABLE.map(str.encode))[n % 2]
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
        st.sampled_from([10, 1000, 50_000, 250_000]).map(lambda n: b"[" + b",".join([b"1"] * n) + b"]"),  # tiny ones
        st.binary(max_size=2000),
        st.integers(1, 2048).map(lambda n: bytes(range(256)) * n),  # up to 512 KiB
        TEXT.map(str.encode),
        st.sampled_from([b"{", b"[1,", b"nul", b'"\\ud800"', b"\xef\xbb\xbf{}", b"1e999999", b"[]", b"{}"]),
    )


@st.composite
def requests(draw: st.DrawFn, surface: Surface) -> Request:
    """Half plausible requests (a real client's, with an odd value or two), half anything."""
    return draw(_plausible(surface) if draw(st.booleans()) else _anything(surface))


@st.composite
def _plausible(draw: st.DrawFn, surface: Surface) -> Request:
    name = draw(st.sampled_from(sorted(surface.streams) or ["app/json"]))
    content_type = {"app/text": b"text/plain", "app/bin": b"application/octet-stream"}.get(name, b"application/json")
    headers = [("Host", f"{surface.host}:{surface.port}".encode())]
    if surface.tokens and draw(st.integers(0, 4)):
        headers.append(("Authorization", b"Bearer " + draw(st.sampled_from(surface.tokens)).encode()))
    offset = quote(draw(_offset(surface)), safe="")
    kind = draw(st.integers(0, 9))
    body = b""
    method = "GET"
    if kind == 0:  # catch-up or live read
        live = draw(st.sampled_from(["", "&live=long-poll", "&live=sse", "&live=sse&encoding=base64"]))
        target = f"/v1/stream/{name}?offset={offset}{live}"
    elif kind == 1:  # append, maybe as an idempotent producer
        method, body = "POST", draw(_body())
        headers.append(("Content-Type", content_type))
        if draw(st.booleans()):
            headers += [("Producer-Id", b"p"), ("Producer-Epoch", draw(ODD_NUMBERS).encode())]
            headers.append(("Producer-Seq", draw(ODD_NUMBERS).encode()))
        target = f"/v1/stream/{name}"
    elif kind == 2:  # create, with the protocol's settings
        method, target = "PUT", f"/v1/stream/{name}{draw(st.sampled_from(['', '-x', '/y']))}"
        headers.append(("Content-Type", content_type))
        headers += draw(st.lists(_header(surface), max_size=3))
    elif kind == 3:  # REST read or tail
        action = draw(st.sampled_from(["read", "tail", "tail?mode=long-poll&", "read?format=raw&"]))
        sep = "&" if "?" in action else "?"
        limit = quote(draw(st.one_of(TRICKY_NUMBERS, TRICKY_NUMBERS, ODD_NUMBERS)))
        target = f"/streams/api/v1/streams/{name}/{action}{sep}after={offset}&limit={limit}"
    elif kind == 4:  # REST append
        method, body, target = "POST", draw(_body()), f"/streams/api/v1/streams/{name}/append"
        headers.append(("Content-Type", content_type))
    elif kind == 5:  # REST list or create
        if draw(st.booleans()):
            prefix = quote(draw(st.one_of(st.sampled_from(["", "app", "app/", "pub", "other/"]), TEXT)), safe="")
            limit = quote(draw(st.one_of(TRICKY_NUMBERS, ODD_NUMBERS)))
            target = f"/streams/api/v1/streams?prefix={prefix}&limit={limit}"
        else:
            method, target = "POST", "/streams/api/v1/streams"
            body = json.dumps(draw(REST_CREATE)).encode()
            headers.append(("Content-Type", b"application/json"))
    elif kind == 6:  # replication feeds
        method, target = draw(
            st.sampled_from(
                [
                    ("GET", "/v1/replication/changes?after=" + offset),
                    ("GET", "/v1/replication/streams"),
                    ("GET", f"/v1/replication/streams/{name}"),
                    ("GET", f"/v1/replication/log/{name}?generation={offset}&from={offset}"),
                ]
            )
        )
    elif kind == 7:  # a signed read, or a conditional one
        target = f"/v1/stream/{name}?offset={offset}" + draw(_query(surface)).replace("?", "&")
        if draw(st.booleans()):
            headers.append(("If-None-Match", draw(st.sampled_from([b'"x"', b"*", b'W/"1"', b""]))))
    elif kind == 8:
        method = draw(st.sampled_from(["HEAD", "DELETE", "OPTIONS"]))
        target = draw(st.sampled_from([f"/v1/stream/{name}", f"/streams/api/v1/streams/{name}"]))
    else:  # a replica reporting reads
        method, target = "POST", "/v1/replication/touch"
        deep = st.builds(_deep_json, st.sampled_from([10, 100_000]), st.sampled_from(["[", "{"]))
        paths = st.builds(lambda p: json.dumps({"paths": p}).encode(), JSON_VALUES)
        body = draw(st.one_of(_body(), deep, paths))
        headers.append(("Content-Type", b"application/json"))
    return Request(method, target, tuple(headers), body)


@st.composite
def _anything(draw: st.DrawFn, surface: Surface) -> Request:
    if draw(st.integers(0, 9)) == 0:
        method = draw(st.one_of(st.sampled_from(ODD_METHODS), st.from_regex(r"\A[A-Z]{1,12}\Z")))
    else:
        method = draw(st.sampled_from(METHODS))
    target = draw(_target(surface))
    headers: list[tuple[str, bytes]] = []
    if draw(st.integers(0, 19)):  # usually a Host; sometimes none, sometimes an odd one among the headers
        headers.append(("Host", f"{surface.host}:{surface.port}".encode()))
    if surface.tokens and draw(st.booleans()):
        headers.append(("Authorization", b"Bearer " + draw(st.sampled_from(surface.tokens)).encode()))
    headers += draw(st.lists(_header(surface), max_size=6))
    if method in ("POST", "PUT", "PATCH") and draw(st.booleans()):
        headers.insert(0, ("Content-Type", draw(st.sampled_from(CONTENT_TYPES[:5]))))
    body = draw(_body()) if method not in ("GET", "HEAD") or draw(st.integers(0, 9)) == 0 else b""
    chunked = bool(body) and draw(st.integers(0, 7)) == 0
    version = "HTTP/1.0" if draw(st.integers(0, 19)) == 0 and not chunked else "HTTP/1.1"
    return Request(method, target, tuple(headers), body, chunked, version)
