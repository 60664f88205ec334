"""The REST API at the edge (`/streams/api/v1/streams`), on the machinery the protocol uses.

- Reads of complete pages are cached (memory and disk tiers, edge.cache) under their offset and
  representation, and concurrent identical misses are one upstream request (edge.rest.reads).
- Tails share the edge's upstream subscriptions: SSE clients of a stream are fed by one hub
  (edge.rest.hub on edge.sse_hub's delivery, as protocol SSE clients are), long-polls at one
  offset share one upstream long-poll (edge.rest.tails).
- Writes, descriptions and listings pass through; writes tell the edge what changed
  (edge.rest.api).
"""
