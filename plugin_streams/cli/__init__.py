"""`plugin-streams create|ls|append|read|tail|rm`: the client at a terminal.

Each subcommand is a module registered in the `plugin_streams.commands` entry-point group
(`help`, `configure(parser)`, `run(args) -> int`), like the server's `origin` and `edge`.
Output is JSON lines on stdout; errors go to stderr with exit status 1.
"""
