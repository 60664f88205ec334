"""The protocol's reserved subscription APIs (PROTOCOL.md sections 6-7), persisted in the data directory.

Routes live under `/v1/stream/__ds/`: webhook and pull-wake subscriptions over stream globs or
explicit streams, Ed25519-signed webhook deliveries, callback and pull-wake claim/ack/release with
generation fencing and leases.
"""
