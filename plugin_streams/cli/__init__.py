"""`plugin-streams create|ls|append|read|tail|rm|kv|queue`: the client at a terminal.

Each subcommand is a module registered in the `plugin_streams.commands` entry-point group
(`help`, `configure(parser)`, `run(args) -> int`), like the server's `origin` and `edge`.
Output is JSON lines on stdout; errors, reconnects and progress go to stderr, one line each.
Exit status: 0 done, 1 the operation failed, 2 usage (bad flags, an invalid URL), 130 Ctrl-C
(see common.py).
"""
