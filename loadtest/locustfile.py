"""Durable Streams fan-out load test (see loadtest/README.md).

    locust -f loadtest/locustfile.py --headless -u 100 -r 50 -t 30s --host http://127.0.0.1:4438

The user mix comes from DS_LOAD_* environment variables: DS_LOAD_STREAMS, DS_LOAD_WRITERS,
DS_LOAD_MODE (long-poll | sse | mixed), DS_LOAD_SSE_SHARE, DS_LOAD_WRITE_INTERVAL,
DS_LOAD_SHAPE, DS_LOAD_METRICS_URL_ORIGIN / _EDGE, DS_LOAD_REPORT_JSON, ... (README.md).
At the end of the run a report is printed (and written as JSON if DS_LOAD_REPORT_JSON is set).
"""

from __future__ import annotations

import logging
import os
import sys

# Make `loadtest.*` and the project's `shared.*` importable whatever the working directory.
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from locust import events  # noqa: E402
from locust.runners import MasterRunner, WorkerRunner  # noqa: E402

from loadtest import shapes  # noqa: E402
from loadtest.config import CONFIG  # noqa: E402
from loadtest.report import REPORT  # noqa: E402
from loadtest.tracking import TRACKER  # noqa: E402
from loadtest.users import LongPollReader, SSEReader, WriterUser  # noqa: E402, F401 (locust collects the user classes)

log = logging.getLogger("loadtest")

# -- the user mix --------------------------------------------------------------------------------
# WriterUser has fixed_count = DS_LOAD_WRITERS; the other users are readers, split by weight.
if CONFIG.mode == "long-poll":
    SSEReader.abstract = True
elif CONFIG.mode == "sse":
    LongPollReader.abstract = True
else:
    share = round(CONFIG.sse_share * 100)
    SSEReader.weight, LongPollReader.weight = share, 100 - share
    if share == 0:
        SSEReader.abstract = True
    elif share == 100:
        LongPollReader.abstract = True

# -- the load shape (only the selected one is visible to locust) -----------------------------------
_shape = shapes.select(CONFIG.shape)
if _shape is not None:
    Shape = _shape
    if CONFIG.shape == "hot-stream" and CONFIG.streams != 1:
        log.warning("DS_LOAD_SHAPE=hot-stream with DS_LOAD_STREAMS=%d: readers are spread over streams", CONFIG.streams)


# -- the report ------------------------------------------------------------------------------------
@events.init.add_listener
def _describe(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    log.info(
        "fan-out test: run %s, %d stream(s) %s..., %d writer(s) every %ss, readers: %s, shape: %s",
        CONFIG.run_id,
        CONFIG.streams,
        CONFIG.stream_path(0),
        CONFIG.writers,
        CONFIG.write_interval,
        CONFIG.mode if CONFIG.mode != "mixed" else f"mixed ({CONFIG.sse_share:.0%} sse)",
        CONFIG.shape or "none",
    )


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    TRACKER.__init__()  # a new test in the same process (web UI) starts from zero
    if not isinstance(environment.runner, WorkerRunner):
        REPORT.start()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    REPORT.stop()
    if not isinstance(environment.runner, MasterRunner):
        REPORT.emit(environment)
    # A master prints at quit, once the workers' final reports are in.


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if isinstance(environment.runner, MasterRunner) and not REPORT.printed:
        # A master's test_stop fires before its workers have stopped (at quit): scrape again now
        # that they have, so the appends they made last are in the "after" numbers.
        REPORT.stop()
        REPORT.emit(environment)


@events.report_to_master.add_listener
def _on_report_to_master(client_id, data, **_kwargs) -> None:
    data["ds_tracker"] = TRACKER.snapshot()


@events.worker_report.add_listener
def _on_worker_report(client_id, data, **_kwargs) -> None:
    if "ds_tracker" in data:
        REPORT.worker_snapshots[client_id] = data["ds_tracker"]
