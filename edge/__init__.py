"""The edge: a caching, coalescing, fan-out proxy in front of an origin (same protocol and REST API)."""
