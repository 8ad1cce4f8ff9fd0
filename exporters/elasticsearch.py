"""Elasticsearch exporter: log events (ECS fields) and check results, with the official client only.

Shipping is exactly-once in effect: every document has a deterministic `_id` (host + file identity + byte
offset, where the file identity is a hash of its first line, so a renamed/rotated/compressed copy of the
same file yields the same ids), and each file's checkpoint (identity -> next offset) is written to disk
only after the bulk request holding its documents succeeded. A failed or interrupted run re-sends at most
one batch per file, which overwrites the same ids: nothing lost, nothing duplicated. A host's journal
(services logging to journald) works the same way with the journald cursor: the document id is the
record's cursor and the checkpoint the cursor of the last shipped record (`journalctl --after-cursor`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

from opsctl.config import Config, ElasticsearchSection
from opsctl.errors import ConfigError, UnavailableError
from opsctl.hosts import Host
from opsctl.logs.collect import READ_ERRORS, file_events
from opsctl.logs.discovery import LogFile, file_identity, open_log, read_head
from opsctl.logs.grouping import fingerprint_of
from opsctl.logs.parser import ERROR_LEVELS, Event, epoch_to_iso
from opsctl.logs.state import Checkpoints
from opsctl.secrets import mask, mask_obj

log = logging.getLogger(__name__)

ECS_VERSION = "8.11.0"
LOG_MAPPING = {
    "properties": {
        "@timestamp": {"type": "date"},
        "message": {"type": "text"},
        "log": {"properties": {"level": {"type": "keyword"}, "logger": {"type": "keyword"}, "offset": {"type": "long"},
                               "file": {"properties": {"path": {"type": "keyword"}}}}},
        "service": {"properties": {"name": {"type": "keyword"}}},
        "host": {"properties": {"name": {"type": "keyword"}}},
        "trace": {"properties": {"id": {"type": "keyword"}}},
        "transaction": {"properties": {"id": {"type": "keyword"}}},
        "error": {"properties": {"type": {"type": "keyword"}, "message": {"type": "text"},
                                 "stack_trace": {"type": "text"}, "fingerprint": {"type": "keyword"}}},
        "openstack": {"properties": {k: {"type": "keyword"} for k in
                                     ("request_id", "global_request_id", "instance_id", "user_id", "project_id")}},
    }
}
RESULTS_MAPPING = {
    "properties": {
        "@timestamp": {"type": "date"}, "check": {"type": "keyword"}, "host": {"type": "keyword"},
        "status": {"type": "keyword"}, "component": {"type": "keyword"}, "summary": {"type": "text"},
        "runbook": {"type": "keyword"},
    }
}


# ------------------------------------------------------------------------------------------ client
def make_client(section: ElasticsearchSection):
    """An Elasticsearch client from the `elasticsearch:` config section (secrets resolved and masked)."""
    from elasticsearch import Elasticsearch

    if not section.url:
        raise ConfigError("elasticsearch.url is not set", hint="add elasticsearch: {url: https://es.example:9200} to the config")
    kw: dict = {"request_timeout": section.timeout, "max_retries": 2, "retry_on_timeout": True}
    if section.api_key is not None:
        kw["api_key"] = section.api_key.resolve("elasticsearch.api_key")
    elif section.user:
        password = section.password.resolve("elasticsearch.password") if section.password else ""
        kw["basic_auth"] = (section.user, password)
    if section.url.startswith("https"):
        kw["verify_certs"] = section.verify_certs
        if section.ca_certs:
            kw["ca_certs"] = section.ca_certs
    return Elasticsearch(section.url, **kw)


def _unavailable(section: ElasticsearchSection, exc: BaseException, what: str) -> UnavailableError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return UnavailableError(mask(f"Elasticsearch at {section.url}: {what} failed: {reason[:300]}"),
                            hint="check that Elasticsearch is up and elasticsearch.url/credentials; re-run: "
                                 "checkpoints make it resume without loss or duplicates")


def ensure_index(client, index: str, mapping: dict) -> None:
    from elasticsearch import ApiError

    try:
        if not client.indices.exists(index=index):
            client.indices.create(index=index, mappings=mapping)
    except ApiError as exc:
        if "resource_already_exists" not in str(exc):
            raise


# ------------------------------------------------------------------------------------------ documents
def doc_id(host: str, file_id: str, offset: int | str) -> str:
    return hashlib.sha1(f"{host}\x00{file_id}\x00{offset}".encode()).hexdigest()


def event_document(ev: Event) -> dict:
    """The ECS document of one log event (secrets masked)."""
    doc: dict = {
        "message": mask(ev.message),
        "log": {"level": ev.level, "logger": ev.logger or None, "file": {"path": ev.path}, "offset": ev.offset},
        "service": {"name": ev.service or None},
        "host": {"name": ev.host},
        "event": {"module": "openstack", "dataset": f"openstack.{ev.service}" if ev.service else "openstack"},
        "ecs": {"version": ECS_VERSION},
    }
    if ev.ts is not None:
        doc["@timestamp"] = epoch_to_iso(ev.ts)
    if ev.pid is not None:
        doc["process"] = {"pid": ev.pid}
    trace_id = ev.global_request_id or ev.request_id
    if trace_id:
        doc["trace"] = {"id": trace_id}
    if ev.request_id:
        doc["transaction"] = {"id": ev.request_id}
    ostack = {k: v for k, v in (("request_id", ev.request_id), ("global_request_id", ev.global_request_id),
                                ("instance_id", ev.instance), ("user_id", ev.user), ("project_id", ev.project)) if v}
    if ostack:
        doc["openstack"] = ostack
    if ev.lines or ev.level in ERROR_LEVELS:
        exc_type, exc_msg = ev.exception()
        error: dict = {}
        if exc_type:
            error["type"] = exc_type
        if exc_msg:
            error["message"] = mask(exc_msg)
        if ev.lines:
            error["stack_trace"] = mask(ev.traceback)
        if ev.level in ERROR_LEVELS:
            error["fingerprint"] = fingerprint_of(ev)[0]
        if error:
            doc["error"] = error
    if ev.truncated:
        doc["tags"] = ["truncated"]
    return doc


# ------------------------------------------------------------------------------------------ shipping
@dataclass
class ShipReport:
    shipped: int = 0
    files: int = 0
    skipped_files: int = 0
    batches: int = 0
    problems: list[str] = field(default_factory=list)


def _bulk(client, index: str, docs: list[tuple[str, dict]]) -> None:
    from elasticsearch.helpers import bulk

    actions = ({"_op_type": "index", "_index": index, "_id": _id, "_source": doc} for _id, doc in docs)
    success, errors = bulk(client, actions, raise_on_error=True, raise_on_exception=True, max_retries=0, stats_only=False)
    if errors:  # pragma: no cover - raise_on_error raises first
        raise RuntimeError(f"{len(errors)} documents rejected")


def _complete_events(events: Iterator[Event], last_is_complete: Callable[[Event], bool]) -> Iterator[Event]:
    """All events, and the last one only when `last_is_complete` says so (while a file or journal is still
    being written, its newest event's traceback may continue)."""
    prev = None
    for ev in events:
        if prev is not None:
            yield prev
        prev = ev
    if prev is not None and last_is_complete(prev):
        yield prev


def _ship_batches(client, index: str, docs: Iterator[tuple[str, dict, object]], batch_size: int,
                  commit: Callable[[object], None], on_batch: Callable[[int], None] | None, report: ShipReport,
                  position: object) -> tuple[int, object]:
    """Bulk-index (id, document, position) in batches; after each successful bulk, `commit(position of its
    last document)`. Returns (documents shipped, last committed position)."""
    shipped = 0
    batch: list[tuple[str, dict]] = []

    def flush() -> None:
        nonlocal batch, shipped
        _bulk(client, index, batch)
        commit(position)
        shipped += len(batch)
        report.batches += 1
        batch = []
        if on_batch:
            on_batch(report.shipped + shipped)

    for doc_id_, doc, position in docs:
        batch.append((doc_id_, doc))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return shipped, position


def ship_file(client, index: str, host: Host, lf: LogFile, checkpoints: Checkpoints, *, max_line_bytes: int,
              batch_size: int, settle_seconds: float, on_batch: Callable[[int], None] | None = None,
              report: ShipReport) -> int:
    """Ship the events of one file after its checkpoint; commit the checkpoint after each successful bulk."""
    with open_log(host, lf.path) as stream:
        fid = file_identity(read_head(stream))
    if fid is None:
        report.skipped_files += 1
        return 0
    key = f"{host.name}:{fid}"
    if lf.compressed and checkpoints.complete(key):  # a compressed (rotated) copy shipped to its end never changes
        return 0
    start = checkpoints.offset(key)
    if not lf.compressed and start > lf.size:  # truncated in place (copytruncate) with the same first line
        start = 0
    if not lf.compressed and start == lf.size:
        return 0
    settled = time.time() - lf.mtime >= settle_seconds
    events = _complete_events(file_events(host, lf, max_line_bytes=max_line_bytes, start=start), lambda ev: settled)
    docs = ((doc_id(host.name, fid, ev.offset), event_document(ev), ev.end) for ev in events)
    shipped, last_end = _ship_batches(client, index, docs, batch_size,
                                      lambda end: checkpoints.commit(key, end, host=host.name, path=lf.path),
                                      on_batch, report, start)
    if lf.compressed and settled:
        checkpoints.commit(key, last_end, host=host.name, path=lf.path, complete=True)
    return shipped


def ship_journal(client, index: str, host: Host, lf: LogFile, checkpoints: Checkpoints, *, max_line_bytes: int,
                 batch_size: int, settle_seconds: float, on_batch: Callable[[int], None] | None = None,
                 report: ShipReport) -> int:
    """Ship a host's journal (journalctl -o export) after the cursor of the last shipped record. Documents are
    named after their record's cursor; the newest event waits until it is `settle_seconds` old (a traceback
    logged line by line may still be coming)."""
    key = f"{host.name}:{lf.path}"
    cursor = checkpoints.files.get(key, {}).get("cursor")
    source = dataclasses.replace(lf, cursor=cursor, since=None)
    events = (ev for ev in file_events(host, source, max_line_bytes=max_line_bytes) if ev.cursor and ev.cursor_end)
    events = _complete_events(events, lambda ev: ev.ts is not None and time.time() - ev.ts >= settle_seconds)
    docs = ((doc_id(host.name, "journal", ev.cursor), event_document(ev), ev.cursor_end) for ev in events)
    shipped, _ = _ship_batches(client, index, docs, batch_size,
                               lambda last: checkpoints.commit(key, 0, cursor=last, host=host.name, path=lf.path),
                               on_batch, report, cursor)
    return shipped


def ship(config: Config, hosts: Sequence[Host], files_by_host: dict[str, list[LogFile]], *,
         client=None, on_batch: Callable[[int], None] | None = None) -> ShipReport:
    """Ship every file's new events to the log index; raise UnavailableError when Elasticsearch fails."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError
    from elasticsearch.helpers import BulkIndexError

    section = config.elasticsearch
    client = client or make_client(section)
    report = ShipReport()
    checkpoints = Checkpoints(config.logs.state_dir, f"{section.url}|{section.index}")
    by_name = {h.name: h for h in hosts}
    try:
        ensure_index(client, section.index, LOG_MAPPING)
        for name, files in files_by_host.items():
            host = by_name[name]
            # oldest first so rotated files are shipped before the live one
            for lf in sorted(files, key=lambda f: f.mtime):
                try:
                    shipper = ship_journal if lf.journal else ship_file
                    n = shipper(client, section.index, host, lf, checkpoints, max_line_bytes=config.logs.max_line_bytes,
                                  batch_size=section.bulk_size, settle_seconds=config.logs.ship_settle_seconds,
                                  on_batch=on_batch, report=report)
                except READ_ERRORS as exc:  # what was shipped before the break is checkpointed
                    report.problems.append(f"{name}:{lf.path}: {exc}")
                    continue
                report.shipped += n
                report.files += 1
    except BulkIndexError as exc:
        reasons = {str((e.get("index") or {}).get("error", e))[:200] for e in exc.errors[:5]}
        raise UnavailableError(mask(f"Elasticsearch rejected {len(exc.errors)} documents: {'; '.join(sorted(reasons))}"),
                               hint=f"{report.shipped} events were shipped and checkpointed; fix the cause and re-run") from None
    except (TransportError, ApiError) as exc:
        err = _unavailable(section, exc, "bulk indexing")
        err.message += f" ({report.shipped} events shipped and checkpointed before the failure)"
        raise err from None
    return report


# ------------------------------------------------------------------------------------------ results
def result_documents(results: Iterable, timestamp: float | None = None) -> Iterator[tuple[str, dict]]:
    """(id, document) per check result: `Result.to_dict()` plus @timestamp; one document per check/host/run."""
    ts = time.time() if timestamp is None else timestamp
    iso = epoch_to_iso(ts)
    for r in results:
        doc = mask_obj(r.to_dict() if hasattr(r, "to_dict") else dict(r))
        doc["@timestamp"] = iso
        _id = hashlib.sha1(f"{doc.get('check')}\x00{doc.get('host')}\x00{iso}".encode()).hexdigest()
        yield _id, doc


def index_results(config: Config, results: Iterable, *, client=None, timestamp: float | None = None) -> int:
    """Index check results into the results index; returns the number indexed."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError

    section = config.elasticsearch
    client = client or make_client(section)
    docs = list(result_documents(results, timestamp))
    try:
        ensure_index(client, section.results_index, RESULTS_MAPPING)
        if docs:
            _bulk(client, section.results_index, docs)
    except (TransportError, ApiError) as exc:
        raise _unavailable(section, exc, "indexing check results") from None
    return len(docs)


# ------------------------------------------------------------------------------------------ search
def build_query(query: str | None = None, *, levels: Sequence[str] = (), services: Sequence[str] = (),
                hosts: Sequence[str] = (), since: float | None = None, until: float | None = None,
                trace_id: str | None = None) -> dict:
    filters: list[dict] = []
    if levels:
        filters.append({"terms": {"log.level": [lv.upper() for lv in levels]}})
    if services:
        filters.append({"terms": {"service.name": list(services)}})
    if hosts:
        filters.append({"terms": {"host.name": list(hosts)}})
    if trace_id:
        filters.append({"bool": {"should": [{"term": {"trace.id": trace_id}}, {"term": {"transaction.id": trace_id}},
                                            {"term": {"openstack.instance_id": trace_id}}], "minimum_should_match": 1}})
    if since is not None or until is not None:
        rng: dict = {}
        if since is not None:
            rng["gte"] = epoch_to_iso(since)
        if until is not None:
            rng["lte"] = epoch_to_iso(until)
        filters.append({"range": {"@timestamp": rng}})
    must = [{"query_string": {"query": query, "default_field": "message"}}] if query else [{"match_all": {}}]
    return {"bool": {"must": must, "filter": filters}}


def search(config: Config, query: str | None = None, *, size: int = 50, client=None, **filters) -> tuple[int, list[dict]]:
    """(total hits, newest documents first) from the log index."""
    from elastic_transport import TransportError
    from elasticsearch import ApiError, NotFoundError

    section = config.elasticsearch
    client = client or make_client(section)
    try:
        resp = client.search(index=section.index, query=build_query(query, **filters), size=size,
                             sort=[{"@timestamp": {"order": "desc"}}], track_total_hits=True)
    except NotFoundError:
        return 0, []
    except (TransportError, ApiError) as exc:
        raise _unavailable(section, exc, "search") from None
    hits = resp["hits"]
    total = hits["total"]["value"] if isinstance(hits.get("total"), dict) else int(hits.get("total") or 0)
    return total, [mask_obj(h["_source"]) for h in hits["hits"]]
