"""Prometheus metrics (`rosetta_*`), fed by the existing hook points.

Ingest counts come from `Pipeline.listeners` and the per-request summary ingress
leaves on the request; delivery counts are synced from each `Forwarder.stats` (so a
batch still retrying shows up before it finishes); queue depth, oldest entry age and
dead letters are read from the store at scrape time, since the store is the one
place every replica shares.

Metric objects are created on first use, not at import, so `setup_multiprocess`
can switch prometheus-client to its multiprocess (mmap file) values before any
exists: with several worker processes every scrape then sums all of them.
"""
import os
import shutil
from pathlib import Path

from .delivery.policy import CLOSED

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_ROUTE_DIALECTS = (("/v1/runs/ingest", "lunary"), ("/api/report", "llmonitor"), ("/v1/traces", "otlp"),
                   ("/api/v1/", "voker"), ("/session", "honeyhive"), ("/events", "honeyhive"))
_metrics = None


def setup_multiprocess(directory: str | Path) -> None:
    """Call once in the parent, before workers start: every process then writes its
    samples under ``directory`` (emptied here, as prometheus-client requires)."""
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    from prometheus_client import values
    values.ValueClass = values.get_value_class()


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def dialect_of(path: str) -> str:
    return next((d for prefix, d in _ROUTE_DIALECTS if path.startswith(prefix)), "unknown")


class Metrics:
    """The process's metric objects (one set per process, shared by every app in it)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
        disable_created_metrics()  # the *_created series double a scrape's size for no dashboard use
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("rosetta_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=r)
        self.request_seconds = Histogram("rosetta_http_request_duration_seconds", "time to answer a request",
                                         ["route"], buckets=REQUEST_BUCKETS, registry=r)
        labels = ["dialect", "tenant"]
        self.received = Counter("rosetta_events_received", "events parsed from requests, valid or not", labels,
                                registry=r)
        self.accepted = Counter("rosetta_events_accepted", "new events queued", labels, registry=r)
        self.duplicates = Counter("rosetta_events_duplicate", "events already seen (acknowledged, not queued)",
                                  labels, registry=r)
        self.rejected = Counter("rosetta_events_rejected", "events refused as invalid", labels, registry=r)
        self.delivered = Counter("rosetta_delivery_delivered", "events a backend accepted", ["backend"], registry=r)
        self.retried = Counter("rosetta_delivery_retried", "event retries after a transient failure", ["backend"],
                               registry=r)
        self.failed = Counter("rosetta_delivery_failed_attempts", "send attempts that failed transiently",
                              ["backend"], registry=r)
        self.dead_lettered = Counter("rosetta_delivery_dead_lettered", "events a backend refused for good",
                                     ["backend"], registry=r)
        self.delivery_seconds = Histogram("rosetta_delivery_duration_seconds", "time of a successful send attempt",
                                          ["backend"], buckets=DELIVERY_BUCKETS, registry=r)
        self.circuit_open = Gauge("rosetta_circuit_open", "1 while a backend's circuit breaker is not closed",
                                  ["backend"], registry=r, multiprocess_mode="max")
        self._children: dict[tuple, object] = {}

    def child(self, metric, *labels: str):
        """``metric.labels(*labels)``, remembered: the request path asks for the same few on every request."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_submit(self, tenant, events: list[dict], new: list[bool]) -> None:
        if not events:
            return
        fresh = sum(new)
        source = events[0]["source"]
        if fresh:
            self.child(self.accepted, source, tenant.name).inc(fresh)
        if fresh < len(new):
            self.child(self.duplicates, source, tenant.name).inc(len(new) - fresh)

    def observe_request(self, method: str, path: str, route: str, status: int, seconds: float,
                        summary: dict | None) -> None:
        """One answered request; ``summary``: what ingress made of its events, if it read any."""
        self.child(self.requests, route, method, str(status)).inc()
        self.child(self.request_seconds, route).observe(seconds)
        if summary:
            dialect = summary["dialect"] or dialect_of(path)
            self.child(self.received, dialect, summary["tenant"]).inc(summary["events"])
            if summary["rejected"]:
                self.child(self.rejected, dialect, summary["tenant"]).inc(summary["rejected"])


def get() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


class StatsSync:
    """Carries each forwarder's `Stats` growth into the counters; notes circuit openings."""

    def __init__(self, metrics: Metrics, forwarders: dict, on_circuit_open=None):
        self.metrics = metrics
        self.forwarders = forwarders
        self.seen: dict[str, dict] = {}
        self.on_circuit_open = on_circuit_open

    def sync(self) -> None:
        m = self.metrics
        for name, forwarder in self.forwarders.items():
            stats, seen = forwarder.stats, self.seen.setdefault(name, {"opened_at": 0.0, "last_latency": None})
            for counter, field in ((m.delivered, "delivered"), (m.retried, "retried"),
                                   (m.failed, "failed_attempts"), (m.dead_lettered, "dead_lettered")):
                grown = getattr(stats, field) - seen.get(field, 0)
                if grown > 0:
                    counter.labels(name).inc(grown)
                    seen[field] = getattr(stats, field)
            for seconds in _after(stats.latencies, seen["last_latency"]):
                m.delivery_seconds.labels(name).observe(seconds)
            if stats.latencies:
                seen["last_latency"] = stats.latencies[-1]
            breaker = forwarder.breaker
            m.circuit_open.labels(name).set(0 if breaker.state == CLOSED else 1)
            if breaker.opened_at != seen["opened_at"]:
                seen["opened_at"] = breaker.opened_at
                if self.on_circuit_open is not None:
                    self.on_circuit_open(forwarder)


def _after(values: list[float], last) -> list[float]:
    """The entries appended since ``last`` (by identity: the list is trimmed from the front)."""
    if last is None:
        return list(values)
    for index in range(len(values) - 1, -1, -1):
        if values[index] is last:
            return values[index + 1:]
    return list(values)


async def queue_snapshot(store, backends: list[str]) -> dict[str, dict]:
    """Per backend: queue depth, oldest entry age (seconds), dead letters — read from the store."""
    out = {}
    for name in backends:
        out[name] = {"depth": await store.depth(name), "oldest_age": await store.oldest_age(name),
                     "dead_letters": await store.dead_count(name)}
    return out


class _QueueCollector:
    def __init__(self, snapshot: dict[str, dict]):
        self.snapshot = snapshot

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        families = {"depth": GaugeMetricFamily("rosetta_queue_depth", "events queued for a backend", labels=["backend"]),
                    "oldest_age": GaugeMetricFamily("rosetta_queue_oldest_age_seconds",
                                                    "age of the oldest undelivered queue entry", labels=["backend"]),
                    "dead_letters": GaugeMetricFamily("rosetta_dead_letters", "dead letters held for a backend",
                                                      labels=["backend"])}
        for backend, values in self.snapshot.items():
            for key, family in families.items():
                family.add_metric([backend], values[key])
        yield from families.values()


class _Chain:
    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition(metrics: Metrics, snapshot: dict[str, dict]) -> tuple[bytes, str]:
    """The text format: this process's metrics (or every worker's, summed) and the queue gauges."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector
    base = MultiProcessCollector(None) if multiprocess() else metrics.registry
    return generate_latest(_Chain(base, _QueueCollector(snapshot))), CONTENT_TYPE_LATEST


def mark_process_dead() -> None:
    """A worker leaving: drop its live gauges from the shared directory."""
    if multiprocess():
        from prometheus_client import multiprocess as mp
        mp.mark_process_dead(os.getpid())
