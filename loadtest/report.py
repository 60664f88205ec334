"""End-of-run report: delivery latency, per-reader delivery accounting, and origin load per append.

The origin's and the edge's /metrics are scraped when the test starts and when it stops; the
report works on the deltas:

- origin GET requests on streams per append = delta ds_origin_http_requests_total{method="GET",
  route="stream"} / delta ds_origin_appends_total. This is the fan-out number: with an edge (or a
  CDN) collapsing reads it stays near 1-2 whatever the number of readers; straight at the origin
  it grows with the readers. The origin counts a request when its response *ends*, so SSE
  upstream connections still open at the stop (and long-polls still waiting) are not in it.
- edge upstream requests per append, by kind (ds_edge_upstream_requests_total{kind}, counted when
  the request is sent).

Each metrics variable may list several URLs separated by commas (several edge nodes, or the
workers of one edge); their counters are summed.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import Any

import requests

from loadtest.config import CONFIG, LoadConfig
from loadtest.tracking import TRACKER, percentile

Sample = tuple[str, dict[str, str], float]


def parse_metrics(text: str) -> list[Sample]:
    from prometheus_client.parser import text_string_to_metric_families

    samples: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.append((s.name, dict(s.labels), float(s.value)))
    return samples


def scrape(urls: str) -> tuple[list[Sample] | None, str | None]:
    """Scrape every URL of a comma-separated list; (samples, None) or (None, error)."""
    samples: list[Sample] = []
    for url in [u.strip() for u in urls.split(",") if u.strip()]:
        try:
            resp = requests.get(url, timeout=5)
            resp.raise_for_status()
            samples.extend(parse_metrics(resp.text))
        except Exception as exc:  # report what we could not scrape, never fail the run for it
            return None, f"{url}: {exc}"
    return samples, None


def total(samples: list[Sample] | None, name: str, **labels: str) -> float:
    if not samples:
        return 0.0
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


def by_label(samples: list[Sample] | None, name: str, label: str, **labels: str) -> Counter[str]:
    out: Counter[str] = Counter()
    for n, lab, v in samples or []:
        if n == name and all(lab.get(k) == x for k, x in labels.items()):
            out[lab.get(label, "")] += v
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _spread(values: list[int]) -> dict[str, float | int]:
    if not values:
        return {"sum": 0, "max": 0, "min": 0, "mean": 0}
    return {"sum": sum(values), "max": max(values), "min": min(values), "mean": round(sum(values) / len(values), 1)}


class RunReport:
    def __init__(self, config: LoadConfig = CONFIG) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        self.started = time.time()
        self.stopped: float | None = None
        self.before: dict[str, tuple[list[Sample] | None, str | None]] = {}
        self.after: dict[str, tuple[list[Sample] | None, str | None]] = {}
        self.worker_snapshots: dict[str, dict[str, Any]] = {}
        self.printed = False

    def _targets(self) -> dict[str, str]:
        return {k: v for k, v in (("origin", self.config.metrics_origin), ("edge", self.config.metrics_edge)) if v}

    def start(self) -> None:
        self.reset()
        for name, urls in self._targets().items():
            self.before[name] = scrape(urls)

    def stop(self) -> None:
        self.stopped = time.time()
        for name, urls in self._targets().items():
            self.after[name] = scrape(urls)

    # -- building ---------------------------------------------------------------------------------

    def _snapshots(self) -> list[dict[str, Any]]:
        return list(self.worker_snapshots.values()) or [TRACKER.snapshot()]

    def build(self, environment: Any = None) -> dict[str, Any]:
        readers: dict[str, dict[str, Any]] = {}
        writers: dict[str, dict[str, Any]] = {}
        latency: dict[str, Counter[str]] = {}
        for snap in self._snapshots():
            readers.update(snap["readers"])
            writers.update(snap["writers"])
            for mode, hist in snap["latency"].items():
                latency.setdefault(mode, Counter()).update(hist)
        all_latency: Counter[str] = Counter()
        for hist in latency.values():
            all_latency.update(hist)

        def lat(hist: Counter[str]) -> dict[str, Any]:
            return {
                "count": sum(hist.values()),
                "p50_ms": percentile(hist, 0.50),
                "p90_ms": percentile(hist, 0.90),
                "p99_ms": percentile(hist, 0.99),
                "max_ms": percentile(hist, 1.0),
            }

        # How far each reader was behind its writers' last acknowledged append when the test stopped.
        acked: dict[int, dict[str, int]] = {}
        for w in writers.values():
            for stream, seq in w["last_acked"].items():
                acked.setdefault(int(stream), {})[w["id"]] = seq
        behind = []
        for r in readers.values():
            if r.get("retired"):
                continue
            lag = 0
            for writer, seq in acked.get(r["stream"], {}).items():
                seen = r["last_seq"].get(writer)
                if seen is not None and seq > seen:
                    lag += seq - seen
            behind.append(lag)

        appended = sum(w["appended"] for w in writers.values())
        delivered = [r["delivered"] for r in readers.values()]
        missed = [r["missed"] for r in readers.values()]
        duplicated = [r["duplicated"] for r in readers.values()]
        read_requests = sum(r["requests"] for r in readers.values())
        duration = (self.stopped or time.time()) - self.started

        report: dict[str, Any] = {
            "run": {
                "run_id": self.config.run_id,
                "mode": self.config.mode,
                "streams": self.config.streams,
                "writers_configured": self.config.writers,
                "write_interval_s": self.config.write_interval,
                "shape": self.config.shape or None,
                "host": getattr(environment, "host", None),
                "duration_s": round(duration, 1),
            },
            "delivery_latency_ms": {"all": lat(all_latency), **{m: lat(h) for m, h in sorted(latency.items())}},
            "readers": {
                "count": len(readers),
                "by_mode": dict(Counter(r["mode"] for r in readers.values())),
                "delivered": _spread(delivered),
                "missed": _spread(missed),
                "duplicated": _spread(duplicated),
                "behind_at_stop": _spread(behind),
                "malformed": sum(r["malformed"] for r in readers.values()),
                "errors": sum(r["errors"] for r in readers.values()),
                "requests": read_requests,
                "with_no_message": sum(1 for d in delivered if d == 0),
                "retired_by_shape": sum(1 for r in readers.values() if r.get("retired")),
            },
            "writers": {
                "count": len(writers),
                "appended": appended,
                "appends_per_s": round(appended / duration, 1) if duration > 0 else None,
                "duplicate_acks": sum(w["duplicate_acks"] for w in writers.values()),
                "attempts": sum(w["attempts"] for w in writers.values()),
                "retries": sum(w["retries"] for w in writers.values()),
                "failed_attempts": sum(w["failures"] for w in writers.values()),
                "producer_errors": sum(w["conflicts"] for w in writers.values()),
            },
            "client": {
                "read_requests": read_requests,
                "read_requests_per_append": _ratio(read_requests, appended),
            },
        }

        origin_appends = None
        if "origin" in self.after:
            (b, b_err), (a, a_err) = self.before.get("origin", (None, "not scraped")), self.after["origin"]
            if a is None or b is None:
                report["origin"] = {"error": a_err or b_err}
            else:

                def d(name: str, **labels: str) -> float:
                    return total(a, name, **labels) - total(b, name, **labels)

                origin_appends = d("ds_origin_appends_total")
                gets = d("ds_origin_http_requests_total", method="GET", route="stream")
                statuses = by_label(a, "ds_origin_http_requests_total", "status", method="GET", route="stream")
                statuses.subtract(by_label(b, "ds_origin_http_requests_total", "status", method="GET", route="stream"))
                report["origin"] = {
                    "appends": int(origin_appends),
                    "get_stream_requests": int(gets),
                    "get_stream_requests_by_status": {k: int(v) for k, v in sorted(statuses.items()) if v},
                    "post_stream_requests": int(d("ds_origin_http_requests_total", method="POST", route="stream")),
                    "get_requests_per_append": _ratio(gets, origin_appends),
                    "live_connections_at_stop": {
                        k: int(v) for k, v in by_label(a, "ds_origin_live_connections", "mode").items()
                    },
                }
        if "edge" in self.after:
            (b, b_err), (a, a_err) = self.before.get("edge", (None, "not scraped")), self.after["edge"]
            if a is None or b is None:
                report["edge"] = {"error": a_err or b_err}
            else:
                kinds = by_label(a, "ds_edge_upstream_requests_total", "kind")
                kinds.subtract(by_label(b, "ds_edge_upstream_requests_total", "kind"))
                upstream = sum(kinds.values())
                appends = origin_appends if origin_appends else appended
                client_gets = total(a, "ds_edge_http_requests_total", method="GET", route="stream") - total(
                    b, "ds_edge_http_requests_total", method="GET", route="stream"
                )
                hits = by_label(a, "ds_edge_cache_hits_total", "tier")
                hits.subtract(by_label(b, "ds_edge_cache_hits_total", "tier"))
                report["edge"] = {
                    "client_get_stream_requests": int(client_gets),
                    "upstream_requests": int(upstream),
                    "upstream_requests_by_kind": {k: int(v) for k, v in sorted(kinds.items()) if v},
                    "upstream_requests_per_append": _ratio(upstream, appends),
                    "cache_hits_by_tier": {k: int(v) for k, v in sorted(hits.items()) if v},
                    "upstream_errors": int(
                        total(a, "ds_edge_upstream_errors_total") - total(b, "ds_edge_upstream_errors_total")
                    ),
                    "slow_client_disconnects": int(
                        total(a, "ds_edge_slow_client_disconnects_total")
                        - total(b, "ds_edge_slow_client_disconnects_total")
                    ),
                }
        return report

    # -- output -----------------------------------------------------------------------------------

    def emit(self, environment: Any = None) -> dict[str, Any]:
        report = self.build(environment)
        self.printed = True
        sys.stdout.write(format_report(report))
        sys.stdout.flush()
        if self.config.report_json:
            with open(self.config.report_json, "w") as fh:
                json.dump(report, fh, indent=2, sort_keys=False)
                fh.write("\n")
        return report


def format_report(r: dict[str, Any]) -> str:
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:g} ms"

    lines = ["", "=" * 78, "Durable Streams fan-out report", "=" * 78]
    run = r["run"]
    lines.append(
        f"run {run['run_id']}  mode={run['mode']}  streams={run['streams']}  "
        f"write_interval={run['write_interval_s']}s  shape={run['shape'] or '-'}  duration={run['duration_s']}s"
    )
    lines.append("delivery latency (receive time - ts):")
    for name, lat in r["delivery_latency_ms"].items():
        lines.append(
            f"  {name:<10} n={lat['count']:<8} p50={ms(lat['p50_ms']):<10} p90={ms(lat['p90_ms']):<10} "
            f"p99={ms(lat['p99_ms']):<10} max={ms(lat['max_ms'])}"
        )
    rd = r["readers"]
    lines.append(f"readers: {rd['count']} {rd['by_mode']}  requests={rd['requests']}  errors={rd['errors']}")
    for key in ("delivered", "missed", "duplicated", "behind_at_stop"):
        s = rd[key]
        lines.append(f"  {key:<15} sum={s['sum']:<9} max/reader={s['max']:<7} min={s['min']:<7} mean={s['mean']}")
    if rd["with_no_message"] or rd["malformed"] or rd["retired_by_shape"]:
        lines.append(
            f"  readers with no message: {rd['with_no_message']}  malformed messages: {rd['malformed']}  "
            f"stopped early by the shape: {rd['retired_by_shape']} (not counted in behind_at_stop)"
        )
    w = r["writers"]
    lines.append(
        f"writers: {w['count']}  appended={w['appended']} ({w['appends_per_s']}/s)  "
        f"duplicate_acks={w['duplicate_acks']}  retries={w['retries']}  failed_attempts={w['failed_attempts']}  "
        f"producer_errors={w['producer_errors']}"
    )
    c = r["client"]
    lines.append(f"client read requests per append: {c['read_requests_per_append']}")
    if "origin" in r:
        o = r["origin"]
        if "error" in o:
            lines.append(f"origin metrics: unavailable ({o['error']})")
        else:
            lines.append(
                f"origin: appends={o['appends']}  GET stream requests={o['get_stream_requests']} "
                f"{o['get_stream_requests_by_status']}  => {o['get_requests_per_append']} GET per append"
            )
    if "edge" in r:
        e = r["edge"]
        if "error" in e:
            lines.append(f"edge metrics: unavailable ({e['error']})")
        else:
            lines.append(
                f"edge: client GETs={e['client_get_stream_requests']}  upstream={e['upstream_requests']} "
                f"{e['upstream_requests_by_kind']}  => {e['upstream_requests_per_append']} upstream per append"
            )
            lines.append(
                f"      cache hits={e['cache_hits_by_tier']}  upstream errors={e['upstream_errors']}  "
                f"slow-client disconnects={e['slow_client_disconnects']}"
            )
    lines.append("=" * 78)
    return "\n".join(lines) + "\n"


REPORT = RunReport()
