"""The origin's webhook signing key: Ed25519, published as a JWK set, identified by its thumbprint.

`Webhook-Signature: t=<unix seconds>,kid=<kid>,ed25519=<base64url signature>` signs `<t>.<raw body>`;
receivers verify it with the key from `/v1/stream/__ds/jwks.json` whose `kid` matches. The kid is
`ds_` + the RFC 7638 thumbprint of the public key, so it is stable for as long as the key is.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    @property
    def seed(self) -> bytes:
        return self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_x(self) -> str:
        return b64url(self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    @property
    def kid(self) -> str:
        # RFC 7638: the required members, sorted, no whitespace, SHA-256, base64url.
        canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": self.public_x}, separators=(",", ":"))
        return "ds_" + b64url(hashlib.sha256(canonical.encode()).digest())

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {
            "keys": [
                {"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA", "use": "sig", "x": self.public_x}
            ]
        }

    def signature_header(self, body: bytes, now_s: int) -> str:
        signature = self.private.sign(f"{now_s}.".encode() + body)
        return f"t={now_s},kid={self.kid},ed25519={b64url(signature)}"


def verify_signature(jwks: dict[str, list[dict[str, str]]], header: str, body: bytes) -> bool:
    """Receiver side (used by tests and documentation): check a header against a JWK set."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    key = next((k for k in jwks["keys"] if k.get("kid") == fields.get("kid")), None)
    if key is None or "t" not in fields or "ed25519" not in fields:
        return False
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(key["x"]))
    try:
        public.verify(b64url_decode(fields["ed25519"]), f"{fields['t']}.".encode() + body)
    except Exception:
        return False
    return True
