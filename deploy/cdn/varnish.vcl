#
# Varnish in front of a plugin-streams origin (or edge): caching and request collapsing for the
# Durable Streams protocol (PROTOCOL.md §5.5-5.8 and §10) and for the REST API's reads
# (`/streams/api/v1/streams/<name>/read` and the long-poll `tail`).
#
# Written for Varnish 7.1 (Debian 12's `varnish` package); nothing in it needs a newer one.
# The policy, in one paragraph: the origin decides what is cacheable and for how long, through
# Cache-Control; this file only (1) normalises the cache key, (2) keeps requests whose answer must
# never come from a cache away from it (writes, HEAD, `offset=now`, SSE), (3) refuses to store what
# the origin marks no-store/no-cache/private and every 204, (4) never lends an answer to a client
# holding other credentials, and (5) makes Varnish wait long enough for long-polls and stream SSE
# byte by byte. Request collapsing needs no code: concurrent misses on one key wait on Varnish's
# waiting list behind a single backend fetch, and all of them get its (cacheable) answer.
#
# See README.md beside this file for deployment, tuning and the tests that check these rules.

vcl 4.1;

import std;

# The origin (or an edge). Deployments edit .host/.port; tests/cdn/varnish.py rewrites exactly
# these two lines of this block, so keep each on its own line.
backend origin {
    .host = "127.0.0.1";
    .port = "4437";
    .connect_timeout = 3.5s;
    # A long-poll sends nothing until data arrives or the origin's long-poll timeout ends it
    # (`--long-poll-timeout`, default 30 s). Varnish must wait longer than that, or it turns every
    # quiet long-poll into a 503 and the waiting list collapses onto an error.
    .first_byte_timeout = 90s;
    # SSE is silent between events; the origin sends a keep-alive every `--sse-keepalive` (15 s)
    # and ends the response after `--sse-max-age` (60 s). This must exceed the keep-alive interval.
    .between_bytes_timeout = 90s;
}

# Who may send `BAN /v1/stream/<name>` to drop every cached response of one stream, e.g. after
# deleting it directly at the origin. Loopback only by default.
acl invalidators {
    "127.0.0.1";
    "::1";
}

sub vcl_recv {
    # Internal markers are ours alone; a client cannot set them.
    unset req.http.X-DS-Cache;
    unset req.http.X-DS-Path;

    # --- Cache key normalisation ----------------------------------------------------------------
    # `?offset=X&live=long-poll&cursor=C` and `?cursor=C&live=long-poll&offset=X` are one request:
    # sort the query string so they share one cache object and one waiting list (§10.1 asks
    # clients to sort, but not all do). querysort also drops an empty trailing `?`.
    set req.url = std.querysort(req.url);

    # --- Operator invalidation --------------------------------------------------------------------
    if (req.method == "BAN") {
        if (client.ip !~ invalidators) {
            return (synth(403, "Forbidden"));
        }
        set req.http.X-DS-Path = regsub(req.url, "\?.*$", "");
        # std.ban() takes its argument verbatim (quotes would become part of the value), so only
        # paths without whitespace, quotes or backslashes are accepted: nothing can be injected.
        if (req.http.X-DS-Path !~ {"^/v1/stream/[^\s"\\]+$"}) {
            return (synth(400, "Bad stream path"));
        }
        if (std.ban("obj.http.X-DS-Path == " + req.http.X-DS-Path)) {
            return (synth(200, "Banned"));
        }
        return (synth(500, std.ban_error()));
    }

    # --- Writes and anything that is not a read: straight to the origin -------------------------
    # PUT (create), POST (append/close), DELETE, OPTIONS (CORS preflight), PATCH, ... are never
    # cached and never collapsed: every write must reach the origin exactly once. Successful
    # DELETEs and creations also invalidate this node's copies (see vcl_backend_response).
    if (req.method != "GET" && req.method != "HEAD") {
        if (req.method == "PRI" || req.method == "CONNECT" || req.method == "TRACE") {
            return (synth(405, "Method Not Allowed"));
        }
        return (pass);
    }

    # HEAD is the canonical way to learn the tail offset and closure status (§5.5): the origin
    # sends `no-store`, and it must never be answered from a cache. Varnish would otherwise look a
    # HEAD up under the same key as the GET of the same URL (and fetch it as a GET), so
    # `HEAD /v1/stream/s` would get the headers of a cached `GET /v1/stream/s` (a catch-up from
    # the start, whose Stream-Next-Offset is the end of the first chunk, not the tail).
    if (req.method == "HEAD") {
        return (pass);
    }

    # --- The REST API (/streams/api/v1) ------------------------------------------------------------
    # Its pages follow the protocol's rules: `read?after=X` of a page that ends before the tail is
    # `public, max-age=31536000, immutable`; a page that reaches the tail (or starts at `-1`) lives
    # a second; a long-poll `tail?mode=long-poll&after=X` that returned data lives 20 s (the data
    # after X does not change) and its 204 is never stored. The rest of the API (create, list,
    # describe, delete: `no-store`; append: a POST) is never looked up.
    if (req.url ~ "^/streams/api/v1/") {
        if (req.url !~ "^/streams/api/v1/streams/[^?]+/(read|tail)(\?|$)") {
            return (pass);
        }
        # A tail in SSE (the default mode) is passed and streamed, like the protocol's SSE.
        if (req.url ~ "^[^?]*/tail(\?|$)" && req.url !~ "[?&]mode=long-poll(&|$)") {
            return (pass);
        }
        # `after=now` is the tail as of this request; a resuming tail's Last-Event-ID overrides
        # `after` (the URL alone does not say what it asks for).
        if (req.url ~ "[?&]after=now(&|$)" || req.http.Last-Event-ID) {
            return (pass);
        }
        # One page is JSON or raw bytes by Accept (the origin sends `Vary: Accept`, and Varnish
        # keeps one variant per Accept value). Browsers and libraries send many Accept strings for
        # the same two answers: reduce it to the one the origin will act on (its rule,
        # shared.rest_pages.wants_raw: raw when it names application/octet-stream and not
        # application/json), so there are two variants per page, not one per Accept string.
        if (req.http.Accept ~ "application/octet-stream" && req.http.Accept !~ "application/json") {
            set req.http.Accept = "application/octet-stream";
        } else {
            set req.http.Accept = "application/json";
        }
        unset req.http.Cookie;  # (as below, for the protocol's reads)
        return (hash);
    }

    # Only the stream API is cached. Health checks, metrics and anything else go straight through.
    if (req.url !~ "^/v1/stream/") {
        return (pass);
    }

    # SSE (`live=sse`): a long response that must reach the client event by event. Passed (never
    # cached, never collapsed onto another client's connection) and streamed unbuffered (see
    # vcl_backend_response). §10.2: the origin ends SSE responses every ~60 s, so reconnecting
    # clients are spread out and do not pin origin connections for ever.
    if (req.url ~ "[?&]live=sse(&|$)") {
        return (pass);
    }

    # `offset=now` means "the tail as of this request": a cached answer is by definition stale.
    # The origin sends no-store; passing skips the hash lookup and the hit-for-miss bookkeeping.
    # This covers `offset=now&live=long-poll` too: a long-poll from "now" must not be answered
    # with data that arrived before the client asked.
    if (req.url ~ "[?&]offset=now(&|$)") {
        return (pass);
    }

    # --- Credentials ------------------------------------------------------------------------------
    # The origin authenticates with `Authorization: Bearer ...` or with signed URLs (query
    # parameters, therefore already part of the key). Authorization is hashed into the cache key
    # (vcl_hash), so a cached answer is only ever served to a request carrying the very same
    # credentials, and clients sharing one token still get collapsing. Responses the origin marks
    # `private` (streams that are not world-readable) are not stored at all (vcl_backend_response).
    #
    # The origin never reads cookies, so a browser's cookies carry no credentials for it; dropping
    # them keeps them from splitting the key, and cannot leak anything (the origin sees a request
    # with less authority, never more). If something behind this Varnish ever authenticates with
    # cookies, replace this with `return (pass)` or hash the cookie like Authorization.
    unset req.http.Cookie;

    # Everything left is a catch-up or long-poll GET: look it up. Concurrent misses on one key are
    # collapsed by the waiting list. Returning here skips the built-in vcl_recv, which would pass
    # every request carrying Authorization.
    return (hash);
}

sub vcl_hash {
    # Key = sorted URL + Host (the built-in key) + the credentials, if any.
    hash_data(req.url);
    if (req.http.host) {
        hash_data(req.http.host);
    } else {
        hash_data(server.ip);
    }
    if (req.http.Authorization) {
        hash_data(req.http.Authorization);
    }
    return (lookup);
}

sub vcl_hit {
    set req.http.X-DS-Cache = "HIT";
}

sub vcl_miss {
    set req.http.X-DS-Cache = "MISS";
}

sub vcl_pass {
    set req.http.X-DS-Cache = "PASS";
}

sub vcl_backend_fetch {
    # Never forward our internal markers.
    unset bereq.http.X-DS-Cache;
    unset bereq.http.X-DS-Path;
}

sub vcl_backend_response {
    # --- Invalidation on this node after deletes and (re)creations ------------------------------
    # Offsets carry a per-incarnation generation, so a recreated stream never reuses an old
    # offset; but the old incarnation's immutable chunks would still be served from here for a
    # year to anyone asking for them by offset. A successful DELETE, or a PUT that created a
    # stream (201), drops every cached response of that stream path (a lurker-friendly ban on an
    # object header; rare events, so the ban list stays short). Other Varnish nodes are not
    # reached: send them `BAN /v1/stream/<name>` (see vcl_recv) or purge by the origin's
    # Surrogate-Key on a CDN that supports it.
    # A REST stream is the protocol stream of the same name: both APIs' objects carry the
    # protocol path (`/v1/stream/<name>`), so a delete through either drops the copies of both.
    if ((bereq.method == "DELETE" && beresp.status >= 200 && beresp.status < 300) ||
        (bereq.method == "PUT" && beresp.status == 201)) {
        set beresp.http.X-DS-Path = regsub(regsub(bereq.url, "\?.*$", ""), "^/streams/api/v1/streams/(.+)$", "/v1/stream/\1");
        # Same guard as for BAN in vcl_recv: the path goes verbatim into the ban expression.
        if (beresp.http.X-DS-Path ~ {"^/v1/stream/[^\s"\\]+$"}) {
            if (!std.ban("obj.http.X-DS-Path == " + beresp.http.X-DS-Path)) {
                std.log("ban failed: " + std.ban_error());
            }
        }
        unset beresp.http.X-DS-Path;
    }

    # --- SSE: stream every byte as it arrives -----------------------------------------------------
    # Whatever the request looked like, an event stream is delivered unbuffered and never stored
    # (the origin sends `no-cache`). No gzip: compressing would hold events back in the
    # compressor's buffer.
    if (beresp.http.Content-Type ~ "(?i)^text/event-stream") {
        set beresp.do_stream = true;
        set beresp.do_gzip = false;
        set beresp.uncacheable = true;
        set beresp.ttl = 0s;
        set beresp.grace = 0s;
        return (deliver);
    }

    # Passed requests (writes, HEAD, `offset=now`, SSE): nothing to decide.
    if (bereq.uncacheable) {
        return (deliver);
    }

    # --- What is never stored ---------------------------------------------------------------------
    # - every 204: a long-poll that timed out (§10.1: CDNs SHOULD NOT cache it; a cached one sends
    #   clients into tight retry loops), and anything else without a body;
    # - `no-store` (long-poll 204, HEAD, `offset=now`, every error), `no-cache` (SSE), `private`
    #   (streams not readable by everyone: one credential's answer must not be stored in a shared
    #   cache at all), the same in Surrogate-Control, `Vary: *`, and Set-Cookie;
    # - anything without explicit freshness: this protocol's reads must not be cached by
    #   heuristics (Varnish would otherwise keep them for default_ttl, 120 s);
    # - server errors, whatever they say.
    # They become "hit-for-miss" for 1 s (the built-in VCL uses 120 s): requests on the key go to
    # the origin without queueing behind one another, then collapsing resumes after a second.
    # Without a hit-for-miss object, the requests waiting on the key would be woken a few at a
    # time and refetch one after another (each a full long-poll). With it, they go to the origin
    # side by side: Varnish 7.1 cannot hand an uncacheable answer to its waiting list, so when a
    # collapsed long-poll ends in a 204, each client that waited behind it sends its own
    # long-poll (README.md, "Known limits"). The 1 s keeps that from outliving the moment: late
    # arrivals with the old cursor collapse again after a second, not after two minutes.
    if (beresp.status == 204 ||
        beresp.status >= 500 ||
        beresp.http.Surrogate-Control ~ "(?i)no-store" ||
        beresp.http.Cache-Control ~ "(?i)(no-store|no-cache|private)" ||
        (!beresp.http.Cache-Control && !beresp.http.Expires) ||
        beresp.http.Set-Cookie ||
        beresp.http.Vary == "*" ||
        beresp.ttl <= 0s) {
        set beresp.ttl = 1s;
        set beresp.grace = 0s;
        set beresp.uncacheable = true;
        return (deliver);
    }

    # --- Honour the origin's lifetime ---------------------------------------------------------------
    # beresp.ttl already comes from Cache-Control (s-maxage, then max-age) minus Age:
    #   - a catch-up chunk at an explicit offset that ended before the tail:
    #     `public, max-age=31536000, immutable` -> kept a year (LRU-evicted when storage is full);
    #   - a read that reached the tail, or from `offset=-1`: `max-age=1, stale-while-revalidate=1`;
    #   - a long-poll 200 (keyed by offset + cursor): `max-age=20`, one cursor interval.
    # Grace (serving a stale copy while refetching in the background) only as far as the origin
    # allows it through stale-while-revalidate (Varnish 7 reads that into beresp.grace); otherwise
    # none, instead of Varnish's default 10 s: the origin's max-age is the whole budget for staleness.
    if (beresp.http.Cache-Control !~ "(?i)stale-while-revalidate") {
        set beresp.grace = 0s;
    }

    # A read without an explicit offset (`offset=-1`, or none; REST: `after=-1`, or none) means
    # "from the start of whatever stream lives at this path now". Delete and recreate change that
    # answer, so however long the origin says it may be kept, it is never kept longer than a tail
    # read (1 s + 1 s grace).
    if ((bereq.url ~ "^/v1/stream/" && (bereq.url !~ "[?&]offset=" || bereq.url ~ "[?&]offset=-1(&|$)")) ||
        (bereq.url ~ "^/streams/api/v1/" && (bereq.url !~ "[?&]after=" || bereq.url ~ "[?&]after=-1(&|$)"))) {
        if (beresp.ttl > 1s) {
            set beresp.ttl = 1s;
        }
        if (beresp.grace > 1s) {
            set beresp.grace = 1s;
        }
    }

    # Remember which stream a stored object belongs to, for the bans above (a REST page or tail:
    # its protocol path).
    set beresp.http.X-DS-Path = regsub(regsub(bereq.url, "\?.*$", ""), "^/streams/api/v1/streams/(.+)/(read|tail)$", "/v1/stream/\1");

    # Long-poll 200s and catch-up chunks are streamed to the waiting clients as they arrive
    # (Varnish's default; stated so that nobody turns it off for this backend).
    set beresp.do_stream = true;
    return (deliver);
}

sub vcl_deliver {
    # The internal marker stays internal; tell operators (and tests) what the cache did.
    unset resp.http.X-DS-Path;
    if (req.http.X-DS-Cache) {
        set resp.http.X-Cache = req.http.X-DS-Cache;
    }
    unset req.http.X-DS-Cache;
}
