"""Health probe: `python -m tests.fuzz.probe URL...` polls each URL's /healthz every 20 ms.

It runs as its own process so that what it measures is the server: in the fuzzing process,
Hypothesis generating a large example holds the GIL, and a probe thread there would report
that as server latency. Each poll is a fresh connection (as a load balancer's check would be).
It prints one JSON line per poll slower than the threshold, as it happens:
`{"url", "start", "latency", "error"}` (`start` is wall-clock time, for matching against the
requests in flight), and exits when its stdin closes, after a last line `{"worst": {url: s}}`.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from urllib.parse import urlsplit

INTERVAL = 0.02
THRESHOLD = 0.1
TIMEOUT = 10.0


def poll(url: str, stop: threading.Event, worst: dict[str, float], out: threading.Lock) -> None:
    parts = urlsplit(url)
    while not stop.is_set():
        start, began = time.time(), time.monotonic()
        error = ""
        try:
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=TIMEOUT)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status != 200:
                error = f"status {response.status}"
        except OSError as e:
            error = repr(e)
        latency = time.monotonic() - began
        worst[url] = max(worst.get(url, 0.0), latency)
        if latency > THRESHOLD or error:
            with out:
                print(json.dumps({"url": url, "start": start, "latency": latency, "error": error}), flush=True)
        stop.wait(INTERVAL)


def main(urls: list[str]) -> None:
    stop, out = threading.Event(), threading.Lock()
    worst: dict[str, float] = {}
    threads = [threading.Thread(target=poll, args=(url, stop, worst, out), daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    print(json.dumps({"started": urls}), flush=True)
    sys.stdin.read()  # until the test closes our stdin
    stop.set()
    for thread in threads:
        thread.join(TIMEOUT + 1)
    print(json.dumps({"worst": worst}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
