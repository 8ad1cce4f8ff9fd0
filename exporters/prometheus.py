"""Prometheus exporter: collectors refreshed in the background, scrapes served from the cache.

Collectors come from plugins in the `opsctl.exporters` entry-point group: each plugin is a factory
`sources(ctx: ExporterContext) -> list[Source]`. Every Source runs in its own refresher thread on its own
interval with a deadline; a Source that fails or overruns marks itself (opsctl_collector_up 0, errors
counted, cache age growing) and keeps its last families until they are older than `max_cache_age`,
while every other Source goes on. A scrape never calls an API: it serves what the cache rendered.
"""

from __future__ import annotations

import gzip
import logging
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from opsctl.config import Config
from opsctl.errors import UsageError
from opsctl.exporters.cache import Cache, CachedCollector, HealthCollector, MirrorCache, health_of
from opsctl.secrets import mask

log = logging.getLogger(__name__)
GROUP = "opsctl.exporters"


class CollectorError(Exception):
    """A collection failed; `families` (optional) are what it could still tell, e.g. `*_up 0`."""

    def __init__(self, message: str, families: Sequence[Metric] | None = None):
        super().__init__(message)
        self.families = list(families) if families is not None else None


@dataclass
class Source:
    """One collector instance: `collect()` returns fresh metric families (runs in a refresher thread)."""

    name: str
    collect: Callable[[], Sequence[Metric]]
    cloud: str = ""
    interval: float = 60.0
    timeout: float = 50.0


@dataclass
class ExporterContext:
    """What collector plugins get: the config, the component catalog, the inventory and the clouds."""

    config: Config
    catalog: Mapping[str, Any]
    inventory: Any = None
    clouds: Sequence[str | None] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cloud_names(self) -> list[str | None]:
        return list(self.clouds) if self.clouds else (list(self.config.cloud.clouds) or [None])


def load_sources(ctx: ExporterContext, only: Sequence[str] = ()) -> tuple[list[Source], list[str]]:
    """Sources of every registered collector plugin (or those named in `only`), and plugin errors."""
    from opsctl.registry import load_group

    loaded, errors = load_group(GROUP)
    problems = [str(e) for e in errors]
    names = {name for name, _ in loaded}
    unknown = set(only) - names
    if unknown:
        raise UsageError(f"unknown collector(s): {', '.join(sorted(unknown))}", hint=f"collectors: {', '.join(sorted(names))}")
    sources: list[Source] = []
    for name, factory in loaded:
        if only and name not in only:
            continue
        try:
            sources.extend(factory(ctx))
        except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, the others run
            problems.append(f"collector plugin {name!r} failed to set up: {type(exc).__name__}: {mask(str(exc))}")
    return sources, problems


# ------------------------------------------------------------------------------------------------ refresher
class Refresher:
    """Runs every Source on its interval in its own thread, each run bounded by the Source's timeout."""

    def __init__(self, cache: Cache, sources: Sequence[Source]):
        self.cache = cache
        self.sources = list(sources)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._busy: dict[tuple[str, str], threading.Thread] = {}
        for s in self.sources:
            cache.register(s.name, s.cloud)

    def run_once(self, source: Source) -> bool:
        """One collection of one Source into the cache; True if it succeeded in time."""
        key = (source.name, source.cloud)
        previous = self._busy.get(key)
        if previous is not None and previous.is_alive():
            self.cache.failure(source.name, source.cloud, "previous run still running (over its timeout)", 0.0)
            return False
        outcome: dict[str, Any] = {}

        def work() -> None:
            t0 = time.monotonic()
            try:
                outcome["families"] = list(source.collect())
            except CollectorError as exc:
                outcome["error"], outcome["partial"] = mask(str(exc)), exc.families
            except Exception as exc:  # noqa: BLE001 - any collector bug marks the collector, not the exporter
                text = str(exc).splitlines()[0] if str(exc) else ""
                outcome["error"] = mask(f"{type(exc).__name__}: {text}".rstrip(": "))
            outcome["duration"] = time.monotonic() - t0

        worker = threading.Thread(target=work, name=f"collect-{source.name}-{source.cloud}", daemon=True)
        t0 = time.monotonic()
        worker.start()
        worker.join(source.timeout)
        if worker.is_alive():
            self._busy[key] = worker
            self.cache.failure(source.name, source.cloud, f"timed out after {source.timeout:g}s", time.monotonic() - t0)
            log.warning("collector %s/%s timed out after %ss", source.name, source.cloud, source.timeout)
            return False
        if "error" in outcome:
            log.warning("collector %s/%s failed: %s", source.name, source.cloud, outcome["error"])
            self.cache.failure(source.name, source.cloud, outcome["error"], outcome["duration"], outcome.get("partial"))
            return False
        self.cache.success(source.name, source.cloud, outcome["families"], outcome["duration"])
        return True

    def run_all_once(self) -> None:
        """Every Source once, in parallel (used by `--once` and the benchmark)."""
        threads = [threading.Thread(target=self.run_once, args=(s,), daemon=True) for s in self.sources]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _loop(self, source: Source) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.run_once(source)
            except Exception:  # noqa: BLE001 - the loop must survive anything
                log.exception("refresher for %s failed", source.name)
            self._stop.wait(max(0.0, source.interval - (time.monotonic() - started)))

    def _janitor(self) -> None:
        while not self._stop.wait(1.0):
            self.cache.expire()

    def start(self) -> None:
        for s in self.sources:
            t = threading.Thread(target=self._loop, args=(s,), name=f"refresh-{s.name}-{s.cloud}", daemon=True)
            t.start()
            self._threads.append(t)
        t = threading.Thread(target=self._janitor, name="cache-janitor", daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()


# ------------------------------------------------------------------------------------------------ isolation
class CollectorProcess:
    """The refreshers and their cache in a child process; the parent only serves what it ships.

    Collecting is CPU work (JSON of thousands of servers, rendering tens of thousands of samples) and
    Python objects (garbage-collector pauses): in its own process it cannot delay a scrape. The child
    sends the rendered body and the collectors' health through a pipe whenever they changed
    (coalesced); if it dies, the parent starts a new one; if the parent dies, the child exits.
    """

    POLL = 0.5  # seconds between checks for changes to ship (coalesces bursts of refreshes)

    def __init__(self, sources: Sequence[Source], max_cache_age: float | None, mirror: MirrorCache):
        import multiprocessing

        self._mp = multiprocessing.get_context("fork")
        self.sources, self.max_cache_age, self.mirror = list(sources), max_cache_age, mirror
        self._proc: Any = None
        self._stop = threading.Event()
        self.restarts = 0

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="collector-process-watch", daemon=True).start()

    def _spawn(self) -> None:
        reader, writer = self._mp.Pipe(duplex=False)
        self._proc = self._mp.Process(target=_child_main, args=(self.sources, self.max_cache_age, writer, os.getpid()),
                                      name="opsctl-exporter-collectors", daemon=True)
        self._proc.start()
        writer.close()
        self._reader = reader

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                body, body_gz, health = pickle.loads(self._reader.recv_bytes())
                self.mirror.update(body, body_gz, health)
            except (EOFError, OSError):
                if self._stop.is_set():
                    return
                log.error("exporter collector process died (exit code %s); starting a new one", self._proc.exitcode)
                self._proc.join(5)
                self.restarts += 1
                self._stop.wait(1.0)
                self._spawn()

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(10)


def _child_main(sources: Sequence[Source], max_cache_age: float | None, writer: Any, parent: int) -> None:
    try:
        os.nice(5)  # background work: under CPU contention the serving process goes first
    except OSError:
        pass
    cache = Cache(max_age=max_cache_age)
    refresher = Refresher(cache, sources)
    refresher.start()
    sent = -1
    while os.getppid() == parent:
        changes = cache.changes
        if changes != sent:
            body, body_gz = cache.body()
            try:
                writer.send_bytes(pickle.dumps((body, body_gz, health_of(cache.states())), protocol=pickle.HIGHEST_PROTOCOL))
            except (BrokenPipeError, OSError):
                break
            sent = changes
        time.sleep(CollectorProcess.POLL)
    refresher.stop()
    os._exit(0)


# ------------------------------------------------------------------------------------------------ exporter
class Exporter:
    """The cache, its refresher and a registry of its own (never prometheus_client's global REGISTRY).

    isolate=True runs the refreshers in a child process (`start()`); the default runs them in threads
    of this process (tests, `--once`).
    """

    def __init__(self, sources: Sequence[Source], max_cache_age: float | None = None, isolate: bool = False):
        self.isolated = isolate
        self.cache: Cache | MirrorCache
        if isolate:
            self.cache = MirrorCache()
            self.process: CollectorProcess | None = CollectorProcess(sources, max_cache_age, self.cache)
            self.refresher = Refresher(Cache(max_age=max_cache_age), sources)  # unused: the child has its own
        else:
            self.cache = Cache(max_age=max_cache_age)
            self.process = None
            self.refresher = Refresher(self.cache, sources)
        self.health_registry = CollectorRegistry(auto_describe=False)
        self.health_registry.register(HealthCollector(self.cache))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CachedCollector(self.cache))  # type: ignore[arg-type]
        self.registry.register(HealthCollector(self.cache))

    def start(self) -> None:
        """Start refreshing in the background (a child process when isolated, else threads)."""
        if self.process is not None:
            self.process.start()
        else:
            self.refresher.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self.refresher.stop()

    def exposition(self) -> bytes:
        """The whole exposition through prometheus_client (fresh families from the cache)."""
        if self.isolated:
            return self.scrape()[0]
        return generate_latest(self.registry)

    def scrape_chunks(self, gzip_ok: bool = False) -> tuple[list[bytes], bool]:
        """The fast path used by /metrics: the cached body plus freshly rendered health series."""
        body, body_gz = self.cache.body()
        health = generate_latest(self.health_registry)
        if gzip_ok:  # two gzip members make one valid gzip stream (RFC 1952 2.2)
            return [body_gz, gzip.compress(health, 1)], True
        return [body, health], False

    def scrape(self, gzip_ok: bool = False) -> tuple[bytes, bool]:
        chunks, gzipped = self.scrape_chunks(gzip_ok)
        return b"".join(chunks), gzipped

    def serve(self, listen: str, port: int) -> ThreadingHTTPServer:
        """Start the HTTP server in a thread and return it (call shutdown() to stop)."""
        server = ThreadingHTTPServer((listen, port), _handler(self))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="exporter-http", daemon=True).start()
        return server


INDEX = (b"<html><head><title>opsctl exporter</title></head><body><h1>opsctl exporter</h1>"
         b"<p><a href=\"/metrics\">Metrics</a></p></body></html>\n")


def _handler(exporter: Exporter) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                gzip_ok = "gzip" in self.headers.get("Accept-Encoding", "")
                chunks, gzipped = exporter.scrape_chunks(gzip_ok)
                self._send(200, CONTENT_TYPE_LATEST, chunks, gzipped)
            elif path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", [INDEX])
            elif path == "/healthz":
                self._send(200, "text/plain; charset=utf-8", [b"ok\n"])
            else:
                self._send(404, "text/plain; charset=utf-8", [b"not found\n"])

        def _send(self, code: int, ctype: str, chunks: list[bytes], gzipped: bool = False) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
            self.end_headers()
            for chunk in chunks:
                self.wfile.write(chunk)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http: " + fmt, *args)

    return Handler
