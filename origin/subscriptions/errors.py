"""The subscription APIs' errors: a stable code, its status, and extra fields for the JSON body."""

from __future__ import annotations

from typing import Any

STATUS = {
    "INVALID_REQUEST": 400,
    "WEBHOOK_URL_REJECTED": 400,
    "TOKEN_INVALID": 401,
    "SUBSCRIPTION_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "SUBSCRIPTION_ALREADY_EXISTS": 409,
    "FENCED": 409,
    "ALREADY_CLAIMED": 409,
    "NO_PENDING_WORK": 409,
    "INVALID_OFFSET": 409,
}


class SubscriptionError(Exception):
    """Answered as `{"error": {"code", "message", ...extra}}` with the code's status."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def invalid(message: str) -> SubscriptionError:
    return SubscriptionError("INVALID_REQUEST", message)


def not_found() -> SubscriptionError:
    return SubscriptionError("SUBSCRIPTION_NOT_FOUND", "subscription not found")
