"""The exporter's cache: the latest metric families of every collector, and their pre-rendered exposition.

Collectors never run in a scrape. Background refreshers put each collector's families here; the cache
renders them to the Prometheus text format once per refresh (family by family, so the same family coming
from several collectors, e.g. one per cloud, is written with one HELP/TYPE header). A scrape then only
joins bytes and renders the few per-collector health series, fresh.
"""

from __future__ import annotations

import gzip
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest


@dataclass
class CollectorState:
    """What the exporter knows about one collector (name, cloud): its last families and its health."""

    name: str
    cloud: str = ""
    families: list[Metric] = field(default_factory=list)
    rendered: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)  # family -> (header, samples)
    last_success: float | None = None  # wall clock of the last good collection
    updated: float | None = None  # wall clock when `families` were set (a success or a failure's partial families)
    last_attempt: float | None = None
    last_duration: float = 0.0
    last_error: str = ""
    up: bool = False
    runs: int = 0
    errors: int = 0

    @property
    def key(self) -> tuple[str, str]:
        return self.name, self.cloud


class _One:
    """A registry-like object yielding given families (generate_latest only calls collect())."""

    def __init__(self, families: Iterable[Metric]):
        self._families = list(families)

    def collect(self) -> list[Metric]:
        return self._families


def render_family(family: Metric) -> tuple[bytes, bytes]:
    """One family as (HELP/TYPE header, sample lines) in the text format 0.0.4."""
    text = generate_latest(_One([family]))  # type: ignore[arg-type]
    lines = text.split(b"\n", 2)
    if len(lines) < 3 or not lines[0].startswith(b"# HELP") or not lines[1].startswith(b"# TYPE"):
        return b"", text
    return lines[0] + b"\n" + lines[1] + b"\n", lines[2]


class Cache:
    """Thread-safe store of collector states with a merged, pre-rendered (and pre-gzipped) body."""

    def __init__(self, max_age: float | None = None):
        self._lock = threading.Lock()
        self._states: dict[tuple[str, str], CollectorState] = {}
        self._body = b""
        self._body_gz = gzip.compress(b"", 1)
        self._stale: set[tuple[str, str]] = set()
        self._version = 0  # bumped by every change; a rebuild only replaces an older body
        self._body_version = 0
        self.changes = 0  # bumped on any change of body or health (a mirror polls it)
        self.max_age = max_age

    # ----------------------------------------------------------------------------------------- writing
    def register(self, name: str, cloud: str = "") -> CollectorState:
        with self._lock:
            return self._states.setdefault((name, cloud), CollectorState(name, cloud))

    def success(self, name: str, cloud: str, families: Sequence[Metric], duration: float, now: float | None = None) -> None:
        """A collection finished: replace the collector's families and re-render the body."""
        rendered = {f.name: render_family(f) for f in families}  # outside the lock: the slow part
        with self._lock:
            st = self._states.setdefault((name, cloud), CollectorState(name, cloud))
            st.families, st.rendered = list(families), rendered
            st.last_success = st.last_attempt = st.updated = now or time.time()
            st.last_duration, st.up, st.last_error = duration, True, ""
            st.runs += 1
        self._rebuild()

    def failure(self, name: str, cloud: str, error: str, duration: float, families: Sequence[Metric] | None = None,
                now: float | None = None) -> None:
        """A collection failed: count it; keep the last families unless the collector gave partial ones."""
        rendered = {f.name: render_family(f) for f in families} if families is not None else None
        with self._lock:
            st = self._states.setdefault((name, cloud), CollectorState(name, cloud))
            st.last_attempt = now or time.time()
            st.last_duration, st.up, st.last_error = duration, False, error
            st.runs += 1
            st.errors += 1
            self.changes += 1
            if families is not None and rendered is not None:
                st.families, st.rendered, st.updated = list(families), rendered, st.last_attempt
        if families is not None:
            self._rebuild()

    def expire(self, now: float | None = None) -> None:
        """Drop from the body the families of collectors not updated for more than max_age seconds."""
        if self.max_age is None:
            return
        now = now or time.time()
        with self._lock:
            stale = {k for k, st in self._states.items()
                     if st.rendered and (st.updated is None or now - st.updated > self.max_age)}
            changed = stale != self._stale
        if changed:
            self._rebuild(stale)

    def _rebuild(self, stale: set[tuple[str, str]] | None = None) -> None:
        with self._lock:
            if stale is not None:
                self._stale = stale
            self._version += 1
            version = self._version
            headers: dict[str, bytes] = {}
            samples: dict[str, list[bytes]] = {}
            for key in sorted(self._states):
                if key in self._stale:
                    continue
                for fname, (header, lines) in self._states[key].rendered.items():
                    headers.setdefault(fname, header)
                    samples.setdefault(fname, []).append(lines)
            body = b"".join(headers[n] + b"".join(samples[n]) for n in sorted(headers))
        body_gz = gzip.compress(body, 1)
        with self._lock:
            if version > self._body_version:  # two refreshers finishing together: the newest body wins
                self._body, self._body_gz, self._body_version = body, body_gz, version
            self.changes += 1

    # ----------------------------------------------------------------------------------------- reading
    def body(self) -> tuple[bytes, bytes]:
        """The cached exposition of every collector's families: (plain, gzip member)."""
        with self._lock:
            return self._body, self._body_gz

    def states(self) -> list[CollectorState]:
        with self._lock:
            return [self._states[k] for k in sorted(self._states)]

    def families(self) -> Iterator[Metric]:
        """Fresh family objects merged by name from the cached samples (one family per name)."""
        with self._lock:
            chosen = [st for k, st in sorted(self._states.items()) if k not in self._stale]
        merged: dict[str, Metric] = {}
        for st in chosen:
            for fam in st.families:
                out = merged.get(fam.name)
                if out is None:
                    out = merged[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                out.samples.extend(fam.samples)
        for name in sorted(merged):
            yield merged[name]


class CachedCollector:
    """prometheus_client collector: the cached families, as fresh family objects on every collect()."""

    def __init__(self, cache: Cache):
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        yield from self.cache.families()


class HealthCollector:
    """Per-collector health, computed at scrape time: up, last success, cache age, duration, errors."""

    def __init__(self, cache: Cache, clock=time.time):
        self.cache = cache
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        labels = ["collector", "cloud"]
        up = GaugeMetricFamily("opsctl_collector_up", "1 if the collector's last run succeeded", labels=labels)
        last = GaugeMetricFamily("opsctl_collector_last_success_timestamp_seconds",
                                 "Unix time of the collector's last successful run (0: never)", labels=labels)
        age = GaugeMetricFamily("opsctl_collector_cache_age_seconds",
                                "Age of the collector's cached data (+Inf: never collected)", labels=labels)
        dur = GaugeMetricFamily("opsctl_collector_duration_seconds", "Duration of the collector's last run",
                                labels=labels)
        errors = CounterMetricFamily("opsctl_collector_errors", "Failed runs of the collector", labels=labels)
        runs = CounterMetricFamily("opsctl_collector_runs", "Runs of the collector", labels=labels)
        for st in self.cache.states():
            lv = [st.name, st.cloud]
            up.add_metric(lv, 1.0 if st.up else 0.0)
            last.add_metric(lv, st.last_success or 0.0)
            age.add_metric(lv, max(0.0, now - st.last_success) if st.last_success else math.inf)
            dur.add_metric(lv, st.last_duration)
            errors.add_metric(lv, float(st.errors))
            runs.add_metric(lv, float(st.runs))
        yield from (up, last, age, dur, errors, runs)


HEALTH_FIELDS = ("name", "cloud", "last_success", "updated", "last_attempt", "last_duration", "last_error", "up", "runs",
                 "errors")


def health_of(states: Iterable[CollectorState]) -> list[dict]:
    """The collectors' health without their families (what a mirror needs)."""
    return [{k: getattr(st, k) for k in HEALTH_FIELDS} for st in states]


class MirrorCache:
    """A read-only copy of a Cache living in another process: the body and the collectors' health."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._body = b""
        self._body_gz = gzip.compress(b"", 1)
        self._states: list[CollectorState] = []

    def update(self, body: bytes, body_gz: bytes, health: list[dict]) -> None:
        states = [CollectorState(**h) for h in health]
        with self._lock:
            self._body, self._body_gz, self._states = body, body_gz, states

    def body(self) -> tuple[bytes, bytes]:
        with self._lock:
            return self._body, self._body_gz

    def states(self) -> list[CollectorState]:
        with self._lock:
            return list(self._states)

    def families(self) -> Iterator[Metric]:
        return iter(())
