"""Whose copy is this? The cache scope of a read, so private data never reaches other credentials.

- No credentials: the stream path; only `public` responses are stored there.
- A signed URL: checked here when the edge has the access policy (stateless, no origin call),
  then stored under "<path>\\0signed" shared by every holder of a valid URL; the signature
  parameters are left out of the key. Without the policy, the exact signature is the key.
- A bearer token: `public` answers are stored under the path (anyone may read them), `private`
  ones under "<path>\\0<sha256 of the Authorization header>".
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from shared.auth import EXPIRES_PARAM, SIGNATURE_PARAM, SIGNED_PARAMS, AccessPolicy, Right, authorize


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
    if SIGNATURE_PARAM in query:
        expires = query.get(EXPIRES_PARAM, "")
        until = int(expires) if expires.isdigit() else 0
        if policy.enabled:
            authorize(policy, Right.READ, path, authorization=None, query=query, now_s=int(time.time()))
            return ReadScope(path, path + "\0signed", signed=True, signed_until=until)
        exact = "&".join(f"{k}={query.get(k, '')}" for k in sorted(SIGNED_PARAMS))
        return ReadScope(path, path + "\0sig:" + _digest(exact), signed=True, signed_until=until)
    authorization = headers.get("Authorization")
    if authorization is not None:
        return ReadScope(path, path + "\0" + _digest(authorization), signed=False)
    return ReadScope(path, None, signed=False)
