"""Request credentials for tests: the Authorization header a token is sent in."""

from __future__ import annotations


def bearer(token: str) -> dict[str, str]:
    """Headers carrying `token` as a bearer credential (merge with `|` into a request's headers)."""
    return {"Authorization": f"Bearer {token}"}
