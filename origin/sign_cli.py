"""`plugin-streams sign`: mint a signed, expiring read URL for a stream and the streams below it.

The URL goes to stdout; what it covers (shared.auth.covers) goes to stderr, so that a script can
capture the URL and a person still sees that `rooms/42` does not cover `rooms/420`.
"""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import urlencode

from plugin_streams.shared.aio.access import load_policy
from plugin_streams.shared.auth import describe_scope, signed_query
from plugin_streams.shared.errors import BadRequest
from plugin_streams.shared.paths import STREAM_PREFIX, validate_path

help = "print a signed, expiring read URL for a stream and the streams below it"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auth-config", required=True, help="the origin's TOML access policy (its signing_key)")
    parser.add_argument(
        "--scope",
        required=True,
        help="what the URL may read: 'rooms/42' is that stream and every stream below 'rooms/42/' "
        "(not 'rooms/420'); 'rooms/' only the streams below it; '' every stream",
    )
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until the URL expires (default: 3600)")
    parser.add_argument("--base-url", default="", help="e.g. https://streams.example.com (default: query only)")


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.auth_config)
    if policy.signing_key is None:
        print("the access policy has no signing_key", file=sys.stderr)
        return 2
    if args.scope:
        try:
            validate_path(args.scope.removesuffix("/"))
        except BadRequest as exc:
            print(f"--scope {args.scope!r}: {exc.reason}", file=sys.stderr)
            return 2
    query = urlencode(signed_query(policy.signing_key, args.scope, int(time.time()) + args.ttl))
    print(f"covers {describe_scope(args.scope)}, for {args.ttl} s", file=sys.stderr)
    if args.base_url:
        print(f"{args.base_url.rstrip('/')}{STREAM_PREFIX}{args.scope}?{query}")
    else:
        print(query)
    return 0
