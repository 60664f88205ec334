"""rest_resource: a bounded name for every REST path, the action being the last segment."""

from __future__ import annotations

import pytest

from plugin_streams.shared.rest_routes import rest_resource


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/streams/api/v1/streams", "streams"),
        ("/streams/api/v1/streams/", "streams"),
        ("/streams/api/v1/streams/orders", "streams"),
        ("/streams/api/v1/streams/a/b/c", "streams"),
        ("/streams/api/v1/streams/orders/append", "append"),
        ("/streams/api/v1/streams/a/b/read", "read"),
        ("/streams/api/v1/streams/orders/tail", "tail"),
        ("/streams/api/v1/streams/read", "streams"),  # a stream named "read": no action without a name
        ("/streams/api/v1/streams/x%2Fread", "streams"),  # an escaped slash is part of the name
        ("/streams/api/v1/other", None),
        ("/v1/stream/orders", None),
        ("/metrics", None),
    ],
)
def test_rest_resource(path: str, resource: str | None) -> None:
    assert rest_resource(path) == resource
