"""Log parser and fast scanner on real logs: testbed fault captures (tests/testbed/log-samples) and the
Apache-2.0 OpenStack CI samples in ../shared/data/logs (os-loganalyze: devstack nova/neutron/cinder logs,
old TRACE style, journald text)."""

from __future__ import annotations

import gzip
import io
import struct
from pathlib import Path

import pytest

from opsctl.hosts import LocalHost
from opsctl.logs.collect import error_tokens, errors_in_file, file_events, Window
from opsctl.logs.discovery import LogFile
from opsctl.logs.grouping import ErrorGroups
from opsctl.logs.parser import ERROR_LEVELS, Assembler, Clock, parse_journal_export, parse_stream, read_lines
from opsctl.logs.scan import candidate_blocks

SAMPLES = Path(__file__).resolve().parents[1] / "testbed" / "log-samples"
HOST = LocalHost("testhost")


def _lf(path: Path | str, service: str = "svc") -> LogFile:
    return LogFile("testhost", str(path), "comp", service, Path(path).stat().st_size, Path(path).stat().st_mtime)


def _events(path, **kw):
    return list(file_events(HOST, _lf(path), max_line_bytes=kw.pop("max_line_bytes", 1 << 20), **kw))


def _errors(path):
    return [e for e in _events(path) if e.level in ERROR_LEVELS]


def _real_files(shared_data: Path) -> list[Path]:
    files = sorted(SAMPLES.iterdir())
    files += sorted((shared_data / "logs" / "os-loganalyze_samples").glob("*.gz"))
    files += sorted((shared_data / "logs" / "os-loganalyze_samples").glob("*.txt"))
    return files


# ------------------------------------------------------------------------------------------ oslo.log
def test_oslo_line_fields_with_global_and_local_request_id():
    a = Assembler(Clock())
    line = (b"2026-11-24 12:45:14.414 4366 INFO nova.api.openstack.requestlog [req-11111111-2222-3333-4444-555555555555 "
            b"req-c6c2e7dd-0cfa-4771-8060-67c9e21d3cae d8e85a34077e497886247816b78bfd7e 7926e7e26ab347f1a56ce83d6f666391 "
            b"- default default] [instance: 0a6ea9f2-6b52-4f77-9b40-0c5d5c2a4a5e] 127.0.0.1 \"GET /v2.1/servers\" status: 200")
    assert a.feed(0, line) is None
    ev = a.flush()
    assert (ev.level, ev.pid, ev.logger) == ("INFO", 4366, "nova.api.openstack.requestlog")
    assert ev.global_request_id == "req-11111111-2222-3333-4444-555555555555"
    assert ev.request_id == "req-c6c2e7dd-0cfa-4771-8060-67c9e21d3cae"
    assert ev.user == "d8e85a34077e497886247816b78bfd7e" and ev.project == "7926e7e26ab347f1a56ce83d6f666391"
    assert ev.instance == "0a6ea9f2-6b52-4f77-9b40-0c5d5c2a4a5e"
    assert ev.message.startswith('127.0.0.1 "GET /v2.1/servers"')
    assert ev.ts is not None and abs(ev.ts % 60 - 14.414) < 1e-6


def test_testbed_db_outage_traceback_with_unprefixed_background_line():
    errors = _errors(SAMPLES / "nova-conductor-db-outage.log")
    assert len(errors) == 8  # one per failed service report, each with its full chained traceback
    first = errors[0]
    assert first.logger == "nova.servicegroup.drivers.db" and first.pid == 8289
    assert "(Background on this error at: https://sqlalche.me/e/21/e3q8)" in first.lines  # unprefixed line kept
    assert first.has_traceback
    assert first.exception()[0] == "oslo_db.exception.DBConnectionError"
    assert "During handling of the above exception, another exception occurred:" in first.traceback


def test_testbed_rabbit_outage_errors_and_scheduler_indexerror():
    errors = _errors(SAMPLES / "nova-compute-rabbit-outage.log")
    assert len(errors) == 57
    assert {e.exception()[0] for e in errors} >= {"ConnectionRefusedError", "ConnectionResetError"}
    (idx,) = _errors(SAMPLES / "nova-scheduler-discover-hosts-IndexError.log")
    assert idx.exception() == ("IndexError", "list index out of range")


def test_gunicorn_plain_python_500():
    (ev,) = _errors(SAMPLES / "keystone-gunicorn-db-outage.txt")
    assert ev.fmt == "gunicorn" and ev.level == "ERROR" and ev.message == "Error handling request POST /v3/auth/tokens"
    assert ev.lines[0] == "Traceback (most recent call last):" and len(ev.lines) > 40


def test_old_trace_style(shared_data):
    events = _errors(shared_data / "logs" / "os-loganalyze_samples" / "screen-q-svc.txt.gz")
    delete_failed = [e for e in events if e.message == "delete failed"]
    assert len(delete_failed) == 21
    ev = delete_failed[0]
    assert ev.lines[0] == "Traceback (most recent call last):"
    assert ev.exception() == ("PortNotFound", "Port 6a8a6cb8-811f-4c9f-b183-133223d5a7c5 could not be found")


def test_journald_text_with_bare_eventlet_traceback(shared_data):
    events = _events(shared_data / "logs" / "os-loganalyze_samples" / "devstack@c-vol.service.log.txt")
    info = events[0]
    assert info.fmt == "journal" and info.level == "INFO" and info.logger == "cinder.volume.manager"
    assert info.request_id == "req-34715675-437c-4668-8f27-ee0f5f10cabb"
    errors = [e for e in events if e.level == "ERROR"]
    assert len(errors) == 1 and errors[0].has_traceback and errors[0].service == "cinder-volume"


def test_journald_export_format_with_binary_multiline_field():
    # `journalctl -o export` serialises multi-line MESSAGE fields in the binary form (built here by hand;
    # tests/integration/test_logs_journald.py reads the real journald written by the real oslo.log).
    msg = ("Unexpected error: boom\nTraceback (most recent call last):\n  File \"x.py\", line 1, in f\n"
           "ValueError: bad value").encode()
    rec1 = (b"__CURSOR=s=abc\n__REALTIME_TIMESTAMP=1764000000123456\nPRIORITY=3\n_HOSTNAME=compute1\n"
            b"SYSLOG_IDENTIFIER=nova-compute\n_PID=42\nREQUEST_ID=req-11111111-2222-3333-4444-555555555555\nMESSAGE\n"
            + struct.pack("<Q", len(msg)) + msg + b"\n\n")
    rec2 = b"__CURSOR=s=abd\n__REALTIME_TIMESTAMP=1764000001000000\nPRIORITY=6\nSYSLOG_IDENTIFIER=nova-compute\nMESSAGE=all good\n\n"
    events = list(parse_journal_export(io.BufferedReader(io.BytesIO(rec1 + rec2)), 1 << 20))
    assert [e.level for e in events] == ["ERROR", "INFO"]
    ev = events[0]
    assert ev.host == "compute1" and ev.service == "nova-compute" and ev.pid == 42
    assert ev.request_id == "req-11111111-2222-3333-4444-555555555555"
    assert ev.message == "Unexpected error: boom" and ev.exception() == ("ValueError", "bad value")
    assert abs(ev.ts - 1764000000.123456) < 1e-6
    assert events[1].offset == len(rec1)
    # the same bytes through the generic entry point (detected by the first field)
    assert len(list(parse_stream(io.BufferedReader(io.BytesIO(rec1 + rec2))))) == 2


# ------------------------------------------------------------------------------------------ hostile input
def test_invalid_utf8_binary_garbage_and_huge_lines_never_crash(tmp_path):
    limit = 4096
    huge = b"2026-11-24 08:00:00.000 1 ERROR x.y [-] " + b"A" * (10 << 20)  # a 10 MB line
    garbage = bytes(range(256)) * 64  # NULs, invalid UTF-8, control bytes, no newline for 16 KB
    data = (b"2026-11-24 08:00:00.000 1 INFO x.y [-] caf\xe9 \xff\xfe\n" + huge + b"\n" + garbage + b"\n"
            b"2026-11-24 08:00:01.000 1 ERROR x.y [-] after the garbage\n")
    path = tmp_path / "bad.log"
    path.write_bytes(data)
    for tokens in ((), error_tokens(ERROR_LEVELS)):  # full parse and the fast path
        events = list(file_events(HOST, _lf(path), max_line_bytes=limit, tokens=tokens))
        assert events[-1].message == "after the garbage" and events[-1].level == "ERROR"
        big = next(e for e in events if e.message.startswith("AAAA"))
        assert big.truncated and len(big.message) <= limit
        assert all(len(line) <= limit for e in events for line in e.lines)
    first = list(file_events(HOST, _lf(path), max_line_bytes=limit))[0]
    assert "caf\ufffd" in first.message


def test_read_lines_offsets_are_exact_with_crlf_and_truncation():
    data = b"one\r\n" + b"x" * 5000 + b"\nlast-without-newline"
    out = list(read_lines(io.BufferedReader(io.BytesIO(data)), 1024))
    assert [(o, len(line), t) for o, line, t, _ in out] == [(0, 3, False), (5, 1024, True), (5006, 20, False)]
    assert [end for *_, end in out] == [5, 5006, len(data)]


# ------------------------------------------------------------------------------------------ fast path == full parse
def test_fast_path_finds_exactly_what_a_full_parse_finds(shared_data):
    for path in _real_files(shared_data):
        fast = errors_in_file(HOST, _lf(path), ERROR_LEVELS, Window(), 1 << 20)
        full = ErrorGroups()
        for ev in _events(path):
            if ev.level in ERROR_LEVELS:
                full.add(ev)
        assert fast.events == full.events, path
        assert {k: g.count for k, g in fast.groups.items()} == {k: g.count for k, g in full.groups.items()}, path
        assert {k: g.sample_traceback for k, g in fast.groups.items()} == \
               {k: g.sample_traceback for k, g in full.groups.items()}, path


@pytest.mark.parametrize("chunk", [64, 1000, 4096])
def test_scanner_chunk_boundaries_do_not_change_the_blocks(chunk):
    data = (SAMPLES / "nova-conductor-db-outage.log").read_bytes() + (SAMPLES / "nova-compute-rabbit-outage.log").read_bytes()
    tokens = error_tokens(ERROR_LEVELS)

    def lines(chunk_size):
        out = []
        for off, block in candidate_blocks(io.BytesIO(data), tokens, 1 << 16, chunk_size=chunk_size):
            for line in block.split(b"\n"):
                out.append((off, line))
                off += len(line) + 1
        return out

    reference = lines(1 << 20)
    assert lines(chunk) == reference
    assert all(data[o:o + len(line)] == line for o, line in reference)  # offsets point at the line


def test_gzip_rotated_file_reads_like_the_plain_one(tmp_path):
    src = SAMPLES / "nova-conductor-db-outage.log"
    gz = tmp_path / "nova-conductor.log.2.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(src.read_bytes())
    assert len(_errors(gz)) == len(_errors(src)) == 8
    assert errors_in_file(HOST, _lf(gz), ERROR_LEVELS, Window(), 1 << 20).events == 8


def test_truncated_gz_keeps_what_was_readable_and_reports_the_break(tmp_path):
    full = gzip.compress((SAMPLES / "nova-conductor-db-outage.log").read_bytes())
    cut = tmp_path / "nova-conductor.log.1.gz"
    cut.write_bytes(full[:5000])  # e.g. logrotate still compressing it
    groups = errors_in_file(HOST, _lf(cut), ERROR_LEVELS, Window(), 1 << 20)
    assert 0 < groups.events < 8
    assert groups.problems and "ended before the end-of-stream marker" in groups.problems[0]
    garbage = tmp_path / "nova-conductor.log.2.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(200)))
    bad = errors_in_file(HOST, _lf(garbage), ERROR_LEVELS, Window(), 1 << 20)
    assert bad.events == 0 and bad.problems


def test_uwsgi_request_log_and_its_plain_traceback():
    # uwsgi prints the application's traceback to its log, then the request line with the status
    # (tests/integration/test_logs_uwsgi.py checks the same against a real uWSGI)
    a = Assembler(Clock())
    lines = [b"Traceback (most recent call last):", b'  File "/usr/lib/python3/dist-packages/keystone/x.py", line 3, in f',
             b"sqlalchemy.exc.OperationalError: (pymysql.err.OperationalError) (2013, 'Lost connection')",
             b"[pid: 2617|app: 0|req: 5/9] 127.0.0.1 () {34 vars in 596 bytes} [Tue Nov 24 08:02:42 2026] POST "
             b"/v3/auth/tokens => generated 503 bytes in 12 msecs (HTTP/1.1 500) 5 headers in 180 bytes (1 switches on core 0)",
             b"[pid: 2617|app: 0|req: 6/10] 127.0.0.1 () {34 vars in 596 bytes} [Tue Nov 24 08:02:43 2026] GET /v3 => "
             b"generated 268 bytes in 1 msecs (HTTP/1.1 200) 4 headers in 152 bytes (1 switches on core 0)"]
    events = [e for i, line in enumerate(lines) if (e := a.feed(i, line)) is not None] + [a.flush()]
    assert [(e.fmt, e.level, e.message) for e in events] == [
        ("python", "ERROR", "Unhandled exception"), ("uwsgi", "ERROR", "POST /v3/auth/tokens => HTTP 500"),
        ("uwsgi", "INFO", "GET /v3 => HTTP 200")]
    assert events[0].exception()[0] == "sqlalchemy.exc.OperationalError"
    assert events[1].pid == 2617 and events[2].ts - events[1].ts == 1.0
