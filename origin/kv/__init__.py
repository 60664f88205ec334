"""The key-value store: keys, values and atomic commits over a change stream, and durable queues."""
