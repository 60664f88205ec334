"""The protocol's vocabulary: every header, query parameter and SSE field name.

Every header name the servers read or write by name comes from here (the client keeps its own
few, since it imports no server code). HTTP header names are case-insensitive, and so are
aiohttp's CIMultiDict and our own lookups; responses are written with these spellings and
clients must not care about case.
"""

from typing import Final

CONTENT_TYPE: Final = "Content-Type"
CONTENT_LENGTH: Final = "Content-Length"
STREAM_NEXT_OFFSET: Final = "Stream-Next-Offset"
STREAM_UP_TO_DATE: Final = "Stream-Up-To-Date"
STREAM_CLOSED: Final = "Stream-Closed"
STREAM_CURSOR: Final = "Stream-Cursor"
STREAM_SEQ: Final = "Stream-Seq"
STREAM_TTL: Final = "Stream-TTL"
STREAM_EXPIRES_AT: Final = "Stream-Expires-At"
STREAM_FORKED_FROM: Final = "Stream-Forked-From"
STREAM_FORK_OFFSET: Final = "Stream-Fork-Offset"
STREAM_FORK_SUB_OFFSET: Final = "Stream-Fork-Sub-Offset"
STREAM_SSE_DATA_ENCODING: Final = "Stream-SSE-Data-Encoding"
# Extensions of this server (PROTOCOL.md §11.1): retention and size limits, shown by HEAD.
STREAM_RETENTION_MAX_AGE: Final = "Stream-Retention-Max-Age"
STREAM_RETENTION_MAX_BYTES: Final = "Stream-Retention-Max-Bytes"
STREAM_MAX_SIZE: Final = "Stream-Max-Size"
STREAM_EARLIEST_OFFSET: Final = "Stream-Earliest-Offset"
PRODUCER_ID: Final = "Producer-Id"
PRODUCER_EPOCH: Final = "Producer-Epoch"
PRODUCER_SEQ: Final = "Producer-Seq"
PRODUCER_EXPECTED_SEQ: Final = "Producer-Expected-Seq"
PRODUCER_RECEIVED_SEQ: Final = "Producer-Received-Seq"

ETAG: Final = "ETag"
IF_NONE_MATCH: Final = "If-None-Match"
CACHE_CONTROL: Final = "Cache-Control"
LOCATION: Final = "Location"
RETRY_AFTER: Final = "Retry-After"
SURROGATE_KEY: Final = "Surrogate-Key"
CACHE_TAG: Final = "Cache-Tag"
AGE: Final = "Age"  # seconds a cache has held the answer it serves (RFC 9111 §5.1)
VARY: Final = "Vary"
ACCEPT: Final = "Accept"
ALLOW: Final = "Allow"
AUTHORIZATION: Final = "Authorization"
WWW_AUTHENTICATE: Final = "WWW-Authenticate"
WEBHOOK_SIGNATURE: Final = "Webhook-Signature"  # Ed25519 signature of a subscription webhook
CONNECTION: Final = "Connection"
LINK: Final = "Link"
LAST_EVENT_ID: Final = "Last-Event-ID"  # an EventSource's resume point (REST tails)
X_FORWARDED_FOR: Final = "X-Forwarded-For"
#: Tells nginx not to buffer a live response (SSE, change feeds).
X_ACCEL_BUFFERING: Final = "X-Accel-Buffering"
X_CONTENT_TYPE_OPTIONS: Final = "X-Content-Type-Options"
CROSS_ORIGIN_RESOURCE_POLICY: Final = "Cross-Origin-Resource-Policy"
# The live page's (origin/page.py): what it may load and run, and what it tells other sites.
CONTENT_SECURITY_POLICY: Final = "Content-Security-Policy"
REFERRER_POLICY: Final = "Referrer-Policy"
ACCESS_CONTROL_ALLOW_ORIGIN: Final = "Access-Control-Allow-Origin"
ACCESS_CONTROL_ALLOW_METHODS: Final = "Access-Control-Allow-Methods"
ACCESS_CONTROL_ALLOW_HEADERS: Final = "Access-Control-Allow-Headers"
ACCESS_CONTROL_EXPOSE_HEADERS: Final = "Access-Control-Expose-Headers"
ACCESS_CONTROL_REQUEST_HEADERS: Final = "Access-Control-Request-Headers"
ACCESS_CONTROL_MAX_AGE: Final = "Access-Control-Max-Age"

# The REST API's own: where a raw page or a tail starts, and how a tail's SSE data is encoded.
STREAM_START_OFFSET: Final = "Stream-Start-Offset"
STREAM_MESSAGE_FORMAT: Final = "Stream-Message-Format"

QUERY_OFFSET: Final = "offset"
QUERY_LIVE: Final = "live"
QUERY_CURSOR: Final = "cursor"
LIVE_LONG_POLL: Final = "long-poll"
LIVE_SSE: Final = "sse"

OFFSET_START: Final = "-1"
OFFSET_NOW: Final = "now"

SSE_EVENT_DATA: Final = "data"
SSE_EVENT_CONTROL: Final = "control"
SSE_NEXT_OFFSET: Final = "streamNextOffset"
SSE_CURSOR: Final = "streamCursor"
SSE_UP_TO_DATE: Final = "upToDate"
SSE_CLOSED: Final = "streamClosed"

DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"
JSON_CONTENT_TYPE: Final = "application/json"
SSE_CONTENT_TYPE: Final = "text/event-stream"

#: Request headers a browser client may send (the CORS preflight's allow-list).
ALLOWED_REQUEST_HEADERS: Final = (
    AUTHORIZATION,
    CONTENT_TYPE,
    IF_NONE_MATCH,
    STREAM_TTL,
    STREAM_EXPIRES_AT,
    STREAM_SEQ,
    STREAM_CLOSED,
    STREAM_FORKED_FROM,
    STREAM_FORK_OFFSET,
    STREAM_FORK_SUB_OFFSET,
    PRODUCER_ID,
    PRODUCER_EPOCH,
    PRODUCER_SEQ,
    STREAM_RETENTION_MAX_AGE,
    STREAM_RETENTION_MAX_BYTES,
    STREAM_MAX_SIZE,
)

#: Headers a browser client must be allowed to read (CORS exposes none of them by default).
EXPOSED_HEADERS: Final = (
    STREAM_NEXT_OFFSET,
    STREAM_UP_TO_DATE,
    STREAM_CLOSED,
    STREAM_CURSOR,
    STREAM_TTL,
    STREAM_EXPIRES_AT,
    STREAM_SSE_DATA_ENCODING,
    STREAM_RETENTION_MAX_AGE,
    STREAM_RETENTION_MAX_BYTES,
    STREAM_MAX_SIZE,
    STREAM_EARLIEST_OFFSET,
    PRODUCER_EPOCH,
    PRODUCER_SEQ,
    PRODUCER_EXPECTED_SEQ,
    PRODUCER_RECEIVED_SEQ,
    ETAG,
    LOCATION,
    RETRY_AFTER,
)
