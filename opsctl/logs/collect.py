"""Read events out of discovered log files, on any host: the fast path for oslo.log files when only some
events matter (errors, one request id), a full parse otherwise; local files in parallel processes."""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from opsctl.hosts import Host, LocalHost
from opsctl.logs.discovery import LogFile, open_log, read_head
from opsctl.logs.grouping import ErrorGroups
from opsctl.logs.parser import (ERROR_LEVELS, JOURNAL_EXPORT_MAGIC, Assembler, Clock, Event, parse_journal_export,
                                parse_lines, read_lines)
from opsctl.logs.scan import candidate_blocks, sniff_oslo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    since: float | None = None
    until: float | None = None

    def contains(self, ts: float | None) -> bool:
        if ts is None:
            return True
        return (self.since is None or ts >= self.since) and (self.until is None or ts <= self.until)


def file_events(host: Host, lf: LogFile, *, max_line_bytes: int, tokens: Sequence[bytes] = (), clock: Clock | None = None,
                start: int = 0) -> Iterator[Event]:
    """Events of one file. With tokens, oslo.log files go through the byte-level prefilter and only events
    whose lines contain a token (or continue such a line) come out."""
    if lf.journal:  # journalctl -o export on the host (a stream: no probe, no seek)
        journal, fast = True, False
    else:
        with open_log(host, lf.path) as probe:
            head = read_head(probe)
        journal = head.startswith(JOURNAL_EXPORT_MAGIC)
        fast = bool(tokens) and not journal and sniff_oslo(head)
    with open_log(host, lf.path, unbuffered=fast, since=lf.since, cursor=lf.cursor) as stream:
        if start:
            stream.seek(start)
        if journal:
            for ev in parse_journal_export(stream, max_line_bytes, host=host.name, path=lf.path, start=start):
                ev.service = ev.service or lf.service
                ev.host = host.name
                yield ev
            return
        assembler = Assembler(clock or Clock(), service=lf.service, host=host.name, path=lf.path)
        assembler.max_line_bytes = max_line_bytes
        if fast:
            for offset, block in candidate_blocks(stream, tokens, max_line_bytes, start=start):
                yield from assembler.feed_block(offset, block)
            last = assembler.flush()
            if last is not None:
                yield last
        else:
            yield from parse_lines(read_lines(stream, max_line_bytes, start), assembler)


def error_tokens(levels: frozenset[str]) -> list[bytes]:
    tokens = [f" {lvl} ".encode() for lvl in sorted(levels)] + [b" TRACE ", b"Traceback (most recent call last)"]
    if "WARNING" in levels:
        tokens.append(b" WARN ")
    return tokens


READ_ERRORS = (OSError, EOFError, zlib.error)  # unreadable, vanished, truncated or corrupt (.gz) files


def errors_in_file(host: Host, lf: LogFile, levels: frozenset[str], window: Window, max_line_bytes: int) -> ErrorGroups:
    """Error groups of one file; a file that breaks off (truncated .gz, removed) keeps what was read before."""
    groups = ErrorGroups()
    try:
        for ev in file_events(host, lf, max_line_bytes=max_line_bytes, tokens=error_tokens(levels)):
            if ev.level in levels and window.contains(ev.ts):
                groups.add(ev)
    except READ_ERRORS as exc:
        groups.problems.append(f"{host.name}:{lf.path}: {exc}")
    return groups


def _local_worker(args: tuple) -> ErrorGroups:
    host_name, lf, levels, window, max_line_bytes = args
    return errors_in_file(LocalHost(host_name), lf, levels, window, max_line_bytes)


@dataclass
class ScanReport:
    groups: ErrorGroups
    files: int
    bytes: int
    problems: list[str]


def collect_errors(hosts: Sequence[Host], files_by_host: dict[str, list[LogFile]], *, levels: frozenset[str] = ERROR_LEVELS,
                   window: Window = Window(), max_line_bytes: int = 1 << 20, workers: int | None = None,
                   fan_out: Callable | None = None) -> ScanReport:
    """Group the errors of every file: local files in worker processes, remote hosts concurrently over SSH."""
    total = ErrorGroups()
    problems: list[str] = []
    by_name = {h.name: h for h in hosts}
    local_jobs = []
    remote: list[tuple[Host, list[LogFile]]] = []
    for name, files in files_by_host.items():
        host = by_name[name]
        if isinstance(host, LocalHost):
            local_jobs.extend((name, lf, levels, window, max_line_bytes) for lf in files)
        elif files:
            remote.append((host, files))
    nfiles = sum(len(f) for f in files_by_host.values())
    nbytes = sum(lf.size for f in files_by_host.values() for lf in f)
    if local_jobs:
        for job, result in _run_local(local_jobs, workers):
            if isinstance(result, BaseException):
                problems.append(f"{job[0]}:{job[1].path}: {result}")
            else:
                total.merge(result)
                problems.extend(result.problems)
    if remote:
        def one_host(item: tuple[Host, list[LogFile]]) -> tuple[ErrorGroups, list[str]]:
            host, files = item
            groups, errs = ErrorGroups(), []
            for lf in files:
                found = errors_in_file(host, lf, levels, window, max_line_bytes)
                groups.merge(found)
                errs.extend(found.problems)
            return groups, errs

        from opsctl.fanout import fan_out as default_fan_out

        for outcome in (fan_out or default_fan_out)(remote, one_host, concurrency=16):
            if outcome.error is not None:
                problems.append(f"{outcome.item[0].name}: {outcome.error}")
            elif outcome.value is not None:
                total.merge(outcome.value[0])
                problems.extend(outcome.value[1])
    return ScanReport(total, nfiles, nbytes, problems)


def _run_local(jobs: list[tuple], workers: int | None):
    """(job, ErrorGroups | exception) per local file; biggest files first so the pool stays busy."""
    jobs = sorted(jobs, key=lambda j: -j[1].size)
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    if workers <= 1 or len(jobs) == 1 or sum(j[1].size for j in jobs) < (32 << 20):
        for job in jobs:
            try:
                yield job, _local_worker(job)
            except READ_ERRORS as exc:
                yield job, exc
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [(job, pool.submit(_local_worker, job)) for job in jobs]
        for job, fut in futures:
            try:
                yield job, fut.result()
            except READ_ERRORS as exc:
                yield job, exc


# ------------------------------------------------------------------------------------------ trace
def trace_in_file(host: Host, lf: LogFile, ident: str, window: Window, max_line_bytes: int) -> list[Event]:
    """Events of one file that mention the id (in the request context, the instance tag or the text)."""
    token = ident.encode()
    out = []
    try:
        for ev in file_events(host, lf, max_line_bytes=max_line_bytes, tokens=[token]):
            if not window.contains(ev.ts):
                continue
            if ident in (ev.request_id, ev.global_request_id, ev.instance) or ident in ev.message or any(ident in ln for ln in ev.lines):
                out.append(ev)
    except READ_ERRORS as exc:
        log.warning("%s:%s: %s", host.name, lf.path, exc)
    return out


# ------------------------------------------------------------------------------------------ time windows
_REL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_when(text: str | None, now: float | None = None) -> float | None:
    """'15m', '2h', '3d' (ago), 'now', or an ISO date/time (naive = local time) -> epoch seconds."""
    import re
    import time
    from datetime import datetime

    from opsctl.errors import UsageError

    if text is None or text == "":
        return None
    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if m:
        return now - float(m[1]) * _REL_UNITS[m[2]]
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"cannot read time {text!r}",
                         hint="use a duration ago (30m, 2h, 1d) or an ISO time (2026-11-24T08:00, naive = local time)") from None
    return dt.timestamp()
