from __future__ import annotations

import base64
import hashlib
import json
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from plugin_streams.origin.subscriptions.signing import SigningKey, b64url_decode, verify_signature


def test_signature_verifies_with_the_published_jwk() -> None:
    key = SigningKey.generate()
    body = b'{"subscription_id":"s"}'
    now = int(time.time())
    header = key.signature_header(body, now)
    t, kid, sig = (part.split("=", 1)[1] for part in header.split(","))
    assert t == str(now) and kid == key.kid
    jwk = key.jwks()["keys"][0]
    assert jwk | {"x": ""} == {"kty": "OKP", "crv": "Ed25519", "kid": key.kid, "alg": "EdDSA", "use": "sig", "x": ""}
    # Independently of our own helper: the raw public key from the JWK checks `<t>.<body>`.
    Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"])).verify(b64url_decode(sig), f"{t}.".encode() + body)
    assert verify_signature(key.jwks(), header, body)


def test_tampering_fails_verification() -> None:
    key = SigningKey.generate()
    header = key.signature_header(b"body", 1_700_000_000)
    assert not verify_signature(key.jwks(), header, b"bodY")
    assert not verify_signature(key.jwks(), header.replace("t=1700000000", "t=1700000001"), b"body")
    assert not verify_signature(SigningKey.generate().jwks(), header, b"body")  # another key, another kid


def test_kid_is_the_rfc7638_thumbprint_and_survives_a_reload() -> None:
    key = SigningKey.generate()
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": key.public_x}, separators=(",", ":"))
    expected = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    assert key.kid == "ds_" + expected
    assert SigningKey.from_seed(key.seed).kid == key.kid
    assert SigningKey.generate().kid != key.kid
