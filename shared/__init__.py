"""The Durable Streams protocol as pure functions over frozen values (no I/O, no clock)."""
