"""`plugin-streams sign`: mint a signed, expiring read URL for a stream or a prefix."""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import urlencode

from shared.aio.access import load_policy
from shared.auth import signed_query
from shared.paths import STREAM_PREFIX

help = "print a signed, expiring read URL for a stream or a path prefix"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--auth-config", required=True, help="the origin's TOML access policy (its signing_key)")
    parser.add_argument("--scope", required=True, help="stream path or prefix the URL may read, e.g. 'rooms/42'")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until the URL expires (default: 3600)")
    parser.add_argument("--base-url", default="", help="e.g. https://streams.example.com (default: query only)")


def run(args: argparse.Namespace) -> int:
    policy = load_policy(args.auth_config)
    if policy.signing_key is None:
        print("the access policy has no signing_key", file=sys.stderr)
        return 2
    query = urlencode(signed_query(policy.signing_key, args.scope, int(time.time()) + args.ttl))
    if args.base_url:
        print(f"{args.base_url.rstrip('/')}{STREAM_PREFIX}{args.scope}?{query}")
    else:
        print(query)
    return 0
