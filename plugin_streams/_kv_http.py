"""HTTP for the KV store and its queue: where the API lives, which requests may be repeated, errors.

The KV API is at the server's root + `/kv/api/v1/{db}`, and a database's change stream at root +
`/v1/stream/__kv/{db}`. A client may have been given the REST base (`http://h:p`, or one ending
in `/streams/api/v1`) or the protocol base (`http://h:p/v1/stream`): the root is that URL without
a trailing `/streams/api/v1` or `/v1/stream`.

Retries. Reads, `set`, `delete` and the fenced queue operations (ack, nack, extend, term: a
repeat of one that was applied is refused as FENCED and changes nothing) are retried like every
other request of the client. A commit (`atomic`, `enqueue`), a redrive or a reset is not
idempotent: repeating one that the server applied but whose answer was lost would apply it twice
(or report a check failure for a commit that succeeded). Those are retried only when the server
surely did not act: every server refused the connection, or it answered 429/503. Any other
failure raises `Unavailable` saying that the outcome is unknown.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from plugin_streams._api import PROTOCOL_ROOT
from plugin_streams._backoff import Backoff
from plugin_streams._protocol import ProtocolApi
from plugin_streams._transport import API_PREFIX, Response, Transport, is_unreachable
from plugin_streams.errors import Conflict, StreamsError, Unavailable, error_from

KV_PREFIX: Final = "/kv/api/v1"
#: The change stream of database `db` is the protocol stream `__kv/{db}`.
CHANGE_STREAM_PREFIX: Final = "__kv/"
#: Answers that say the server did not act on the request (so repeating it is safe).
_NOT_ACTED: Final = frozenset({429, 503})


class Fenced(Conflict):
    """A queue operation with a stale lease token (the lease expired and the message went to
    another worker, it was already answered, or the group was reset): nothing changed."""


def server_root(base: str) -> str:
    """The server's root for a client base URL (see the module docstring)."""
    base = base.rstrip("/")
    for suffix in (API_PREFIX, PROTOCOL_ROOT):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def kv_error(status: int, body: bytes) -> StreamsError:
    """The client's exception for a KV answer `{"error": "<reason>", "code"?: ...}`."""
    error = error_from(status, body)
    try:
        parsed = json.loads(body)
    except ValueError:
        return error
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        error.message = parsed["error"]
        error.args = (error.message,)
        if isinstance(parsed.get("code"), str):
            error.code = parsed["code"]
    if status == 409 and error.code == "FENCED":
        return Fenced(error.message, status=status, code=error.code)
    return error


class KvConnection:
    """The HTTP side of every database of one client: the KV API and the change streams."""

    def __init__(self, transport: Transport) -> None:
        roots = [server_root(base) for base in transport.bases]
        options: dict[str, Any] = {
            "retry_for": transport.retry_for,
            "connect_timeout": transport.connect_timeout,
            "read_timeout": transport.read_timeout,
            "unreachable_retry_for": transport.unreachable_retry_for,
        }
        self.api = Transport([root + KV_PREFIX for root in roots], transport.token, root="", **options)
        self.changes = ProtocolApi(
            Transport([root + PROTOCOL_ROOT for root in roots], transport.token, root="", **options)
        )

    async def close(self) -> None:
        await self.api.close()
        await self.changes.transport.close()

    async def call(
        self,
        method: str,
        db: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        idempotent: bool = True,
        read_timeout: float | None = None,
        check_may_fail: bool = False,
    ) -> tuple[int, Any]:
        """(status, parsed JSON body) of one KV API call on database `db`.

        Success (2xx) is answered, and with `check_may_fail` a commit's failed check (409
        `{"ok": false}`); any other status raises (a stale lease token as `Fenced`).
        """
        url_path = f"/{quote(db, safe='')}{path}"
        data = None if body is None else json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        request: dict[str, Any] = {"params": params, "headers": headers, "data": data, "read_timeout": read_timeout}
        if idempotent:
            response = await self.api.request(method, url_path, **request)
        else:
            response = await self._once(method, url_path, request)
        parsed = _json_body(response)
        if response.status < 300 or (check_may_fail and _check_failed(response.status, parsed)):
            return response.status, parsed
        error = kv_error(response.status, response.body)
        if response.attempts > 1:
            error.details["retried"] = True  # an earlier attempt may have been applied (fenced ops)
        raise error

    async def _once(self, method: str, path: str, request: dict[str, Any]) -> Response:
        """A request that must not be applied twice: repeated only when the server surely did not act."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.api.retry_for
        backoff = Backoff()
        while True:
            try:
                response = await self.api.request(method, path, retry_for=0, **request)
            except Unavailable as exc:
                cause = exc.__cause__
                not_acted = exc.status in _NOT_ACTED or (cause is not None and is_unreachable(cause))
                if not not_acted:
                    raise Unavailable(
                        f"{exc.message} (the outcome is unknown: the server may have applied it)",
                        status=exc.status,
                        details=exc.details,
                    ) from cause
                if exc.status is None and self.api.unreachable_retry_for is not None:
                    deadline = min(deadline, started + self.api.unreachable_retry_for)
                delay = backoff.next()
                if loop.time() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                continue
            return response


def _check_failed(status: int, parsed: Any) -> bool:
    """A commit's answer that one of its checks failed (not a fenced token, not an error)."""
    return status == 409 and isinstance(parsed, dict) and parsed.get("ok") is False and parsed.get("code") != "FENCED"


def _json_body(response: Response) -> Any:
    if not response.body.strip():
        return None
    try:
        return response.json()
    except ValueError:
        if response.status >= 400:
            return None  # an error page (a proxy's): kv_error reports its status
        raise StreamsError(f"the KV API answered HTTP {response.status} with a body that is not JSON") from None
