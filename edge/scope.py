"""Whose copy is this? The cache scope of a read, so private data never reaches other credentials.

The scope follows the credential the origin authorises by (shared.auth.authorize): a bearer
token whenever one is sent (any signature parameters beside it are ignored, there as here),
otherwise a signed URL, otherwise none. Keying a token-authorised answer by signature parameters
the client chose would hand it to anyone who sends the same parameters without the token.

- A bearer token: `public` answers are stored under the path (anyone may read them), `private`
  ones under "<path>\\0<sha256 of the Authorization header>".
- A signed URL: checked here when the edge has the access policy (stateless, no origin call),
  then stored under "<path>\\0signed" shared by every holder of a valid URL; the signature
  parameters are left out of the key. Without the policy, the exact signature is the key.
- No credentials: the stream path; only `public` responses are stored there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from plugin_streams.shared import headers as h
from plugin_streams.shared.auth import (
    EXPIRES_PARAM,
    SIGNATURE_PARAM,
    SIGNED_PARAMS,
    AccessPolicy,
    Right,
    authorize,
    parse_expiry,
)


@dataclass(frozen=True, slots=True)
class ReadScope:
    path: str
    credential: str | None  # scope for private answers; None: no credentials at all
    signed: bool
    signed_until: int | None = None  # unix seconds: the request's signature expires then

    @property
    def public(self) -> str:
        return self.path

    def for_response(self, cache_control: str) -> str | None:
        """The scope to store an answer under, or None when it must not be shared at all."""
        if cache_control.startswith("public") and not self.signed:
            return self.path
        return self.credential


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_scope(path: str, headers: Mapping[str, str], query: Mapping[str, str], policy: AccessPolicy) -> ReadScope:
    authorization = headers.get(h.AUTHORIZATION)
    if authorization is not None:
        return ReadScope(path, path + "\0" + _digest(authorization), signed=False)
    if SIGNATURE_PARAM in query:
        if policy.enabled:
            access = authorize(policy, Right.READ, path, authorization=None, query=query, now_s=int(time.time()))
            return ReadScope(path, path + "\0signed", signed=True, signed_until=access.signed_until)
        # Unchecked here (the origin checks it): a malformed expiry caps cached copies at nothing.
        until = parse_expiry(query.get(EXPIRES_PARAM, "")) or 0
        exact = "&".join(f"{k}={query.get(k, '')}" for k in sorted(SIGNED_PARAMS))
        return ReadScope(path, path + "\0sig:" + _digest(exact), signed=True, signed_until=until)
    return ReadScope(path, None, signed=False)
