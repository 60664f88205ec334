"""Where the KV API lives, for the origin that serves it and the edges that pass it on.

/kv/api/v1/{db}/...      the KV and queue API (origin/kv/routes.py, queue_routes.py)
/v1/stream/__kv/{db}     the database's change stream: an ordinary stream, written only by the KV API
"""

from __future__ import annotations

from typing import Final

KV_PREFIX: Final = "/kv/api/v1"
#: The protocol path prefix of the databases' change streams.
KV_STREAM_ROOT: Final = "__kv/"
WATCH: Final = "watch"
QUERY_PREFIX: Final = "prefix"
#: The longest a queue lease may wait for a message (`waitMs`).
MAX_LEASE_WAIT_MS: Final = 30_000


def change_stream_path(db: str) -> str:
    return KV_STREAM_ROOT + db


#: The bounded route labels of the KV API (request metrics): its resources, never a db or group name.
KV_RESOURCES: Final = frozenset({"keys", "get-many", "list", "atomic", "watch", "queue"})


def kv_resource(path: str) -> str | None:
    """`keys`, `get-many`, `list`, `atomic`, `watch` or `queue` for a KV API path (`other` for an
    unknown one under the prefix); None for any other path."""
    if not path.startswith(KV_PREFIX + "/"):
        return None
    _db, _, rest = path[len(KV_PREFIX) + 1 :].partition("/")
    resource = rest.partition("/")[0]
    return resource if resource in KV_RESOURCES else "other"
