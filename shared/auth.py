"""Access control rules: bearer tokens with rights on path prefixes, public prefixes, signed URLs.

Pure functions over a frozen AccessPolicy, so that the origin and the edge check requests the
same way (an edge verifies signed URLs statelessly, without calling the origin).

Rights: `read` (GET, HEAD), `write` (PUT, POST), `admin` (DELETE, and implies the others), each
on scopes. A signed URL grants `read` on one scope until it expires: its parameters (`ds_scope`,
`ds_exp`, `ds_sig`) are an HMAC-SHA256 of "scope\\nexpiry" under the policy's signing key.

Scopes end on a path-segment boundary (`covers`): `rooms/42` covers the stream `rooms/42` and
every stream below `rooms/42/`, never `rooms/420` or `rooms/42-private`; a scope ending in "/"
(`rooms/`) covers only the streams below it; "" covers every stream.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from plugin_streams.shared import headers as h
from plugin_streams.shared.errors import BadRequest, Forbidden, Unauthorized

SCOPE_PARAM: Final = "ds_scope"
EXPIRES_PARAM: Final = "ds_exp"
SIGNATURE_PARAM: Final = "ds_sig"
SIGNED_PARAMS: Final = frozenset({SCOPE_PARAM, EXPIRES_PARAM, SIGNATURE_PARAM})
#: Unix seconds in at most 12 digits (year 33658): a longer ds_exp is nonsense, and int() of a
#: huge one costs CPU (and raises past Python's digit limit).
MAX_EXPIRES_DIGITS: Final = 12


class Right(enum.IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


@dataclass(frozen=True, slots=True)
class TokenGrant:
    name: str
    token_sha256: bytes
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    def allows(self, right: Right, path: str) -> bool:
        prefixes = {Right.READ: self.read + self.write + self.admin, Right.WRITE: self.write + self.admin}
        return _matches(prefixes.get(right, self.admin), path)


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """`enabled=False` is the development default: everything is allowed, everything public."""

    enabled: bool = False
    public_read: tuple[str, ...] = ()
    tokens: tuple[TokenGrant, ...] = ()
    signing_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class Access:
    """How a request was allowed: decides Cache-Control `public` vs `private` and its lifetime."""

    public: bool
    principal: str | None = None
    signed_until: int | None = None  # unix seconds: cached copies must not outlive the signature


OPEN: Final = Access(public=True)


def covers(scope: str, path: str) -> bool:
    """Whether `scope` covers stream `path`: that path itself or a path below `scope/`.

    A raw prefix test would let `rooms/42` read `rooms/420`; stream paths never end in "/" nor
    hold an empty segment (shared.paths), so a scope ending in "/" already ends on a boundary.
    """
    if not scope or scope.endswith("/"):
        return path.startswith(scope)
    return path == scope or path.startswith(scope + "/")


def describe_scope(scope: str) -> str:
    """What `scope` covers, in words (`plugin-streams sign` prints it)."""
    if not scope:
        return "every stream"
    if scope.endswith("/"):
        return f"every stream below {scope!r}"
    return f"the stream {scope!r} and every stream below {scope + '/'!r}"


def parse_expiry(text: str) -> int | None:
    """`ds_exp` as unix seconds, or None when it is not 1-12 ASCII digits.

    (`str.isdigit` alone accepts "²" and other digits `int` refuses.)
    """
    if not 0 < len(text) <= MAX_EXPIRES_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def _matches(scopes: tuple[str, ...], path: str) -> bool:
    return any(covers(scope, path) for scope in scopes)


def _sha256(text: str) -> bytes:
    # aiohttp decodes header bytes that are not UTF-8 as lone surrogates: hash the bytes sent.
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


def policy_from_mapping(data: Mapping[str, Any]) -> AccessPolicy:
    """Build a policy from a parsed config file (TOML); raises ValueError on a malformed one."""
    tokens = []
    for i, entry in enumerate(data.get("token", [])):
        if "token" in entry:
            digest = _sha256(str(entry["token"]))
        elif "token_sha256" in entry:
            digest = bytes.fromhex(str(entry["token_sha256"]))
        else:
            raise ValueError(f"token #{i + 1} needs `token` or `token_sha256`")
        tokens.append(
            TokenGrant(
                name=str(entry.get("name", f"token-{i + 1}")),
                token_sha256=digest,
                read=tuple(map(str, entry.get("read", ()))),
                write=tuple(map(str, entry.get("write", ()))),
                admin=tuple(map(str, entry.get("admin", ()))),
            )
        )
    key = data.get("signing_key")
    return AccessPolicy(
        enabled=True,
        public_read=tuple(map(str, data.get("public_read", ()))),
        tokens=tuple(tokens),
        signing_key=str(key).encode() if key else None,
    )


def sign(key: bytes, scope: str, expires: int) -> str:
    mac = hmac.new(key, f"{scope}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signed_query(key: bytes, scope: str, expires: int) -> dict[str, str]:
    return {SCOPE_PARAM: scope, EXPIRES_PARAM: str(expires), SIGNATURE_PARAM: sign(key, scope, expires)}


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise Unauthorized("Authorization must be 'Bearer <token>'", {h.WWW_AUTHENTICATE: "Bearer"})
    return credentials.strip()


def _check_signature(policy: AccessPolicy, path: str, query: Mapping[str, str], now_s: int) -> int:
    scope, expires, signature = (query.get(p) for p in (SCOPE_PARAM, EXPIRES_PARAM, SIGNATURE_PARAM))
    if scope is None or expires is None or signature is None:
        raise BadRequest(f"a signed URL needs {SCOPE_PARAM}, {EXPIRES_PARAM} and {SIGNATURE_PARAM}")
    if policy.signing_key is None:
        raise Unauthorized("signed URLs are not enabled on this server")
    until = parse_expiry(expires)
    if until is None:
        raise BadRequest(f"{EXPIRES_PARAM} must be unix seconds (1-{MAX_EXPIRES_DIGITS} ASCII digits)")
    expected = sign(policy.signing_key, scope, until)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Forbidden("invalid URL signature")
    if until <= now_s:
        raise Forbidden("signed URL has expired")
    if not covers(scope, path):
        raise Forbidden("signed URL does not cover this stream")
    return until


def authorize(
    policy: AccessPolicy,
    right: Right,
    path: str,
    *,
    authorization: str | None,
    query: Mapping[str, str],
    now_s: int,
) -> Access:
    """Allow the request or raise Unauthorized (401) / Forbidden (403)."""
    if not policy.enabled:
        return OPEN
    is_public = _matches(policy.public_read, path)
    token = _bearer(authorization)
    if token is not None:
        digest = _sha256(token)
        grant = next((g for g in policy.tokens if hmac.compare_digest(g.token_sha256, digest)), None)
        if grant is None:
            raise Unauthorized("unknown token", {h.WWW_AUTHENTICATE: 'Bearer error="invalid_token"'})
        if grant.allows(right, path) or (right is Right.READ and is_public):
            return Access(public=is_public, principal=grant.name)
        raise Forbidden(f"token {grant.name!r} has no {right.name.lower()} right on this stream")
    if right is Right.READ:
        if is_public:
            return Access(public=True)
        if SIGNATURE_PARAM in query:
            return Access(public=True, signed_until=_check_signature(policy, path, query, now_s))
    raise Unauthorized(f"{right.name.lower()} access needs a bearer token", {h.WWW_AUTHENTICATE: "Bearer"})
