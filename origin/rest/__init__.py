"""The REST API (`/streams/api/v1/streams`): named streams over the same StreamService.

A stream named N here is the protocol stream `/v1/stream/N`: same service, same path string,
same offsets. This package only translates between JSON bodies and the service; every rule
(producers, limits, closure, expiry) is the protocol's own. `add_rest_routes` mounts it.
"""

from plugin_streams.origin.rest.routes import REST_PREFIX, add_rest_routes

__all__ = ["REST_PREFIX", "add_rest_routes"]
