"""Parse OpenStack service logs into events: oslo.log (incl. old TRACE style), gunicorn/uwsgi, plain Python,
journald short(-precise) text and journald export (`journalctl -o export`).

An event is one log record with its continuation lines (traceback, multi-line message). Lines are bytes
read through a bounded reader: invalid UTF-8 is replaced, over-long lines are truncated at
`max_line_bytes`, binary garbage becomes a plain line; nothing here raises on bad input.
"""

from __future__ import annotations

import re
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import IO, Iterable, Iterator

LEVELS = ("DEBUG", "INFO", "AUDIT", "WARNING", "ERROR", "CRITICAL", "TRACE")
ERROR_LEVELS = frozenset({"ERROR", "CRITICAL"})
LEVEL_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR", "AUDIT": "INFO"}
MAX_CONTINUATION_LINES = 2000  # a runaway "event" is cut, never unbounded
SYSLOG_PRIORITY = {"0": "CRITICAL", "1": "CRITICAL", "2": "CRITICAL", "3": "ERROR", "4": "WARNING", "5": "INFO",
                   "6": "INFO", "7": "DEBUG"}

_LEVEL_RE = r"(?P<level>TRACE|DEBUG|INFO|AUDIT|WARNING|WARN|ERROR|CRITICAL)"
OSLO_RE = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)(?P<tz>Z|[+-]\d\d:?\d\d)? +(?:(?P<pid>\d+) +)?"
    + _LEVEL_RE + r" +(?P<logger>\S+) ?(?P<rest>.*)", re.S)
# gunicorn: [2026-11-24 08:02:42 +0000] [2617] [ERROR] Error handling request POST /v3/auth/tokens
GUNICORN_RE = re.compile(
    r"\[(?P<date>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?)(?: (?P<tz>[+-]\d{4}))?\] \[(?P<pid>\d+)\] "
    r"\[(?P<level>[A-Z]+)\] (?P<rest>.*)", re.S)
# uwsgi request log: [pid: 2617|app: 0|req: 5/9] 127.0.0.1 () {34 vars in 596 bytes} [Tue Nov 24 08:02:42 2026]
#   POST /v3/auth/tokens => generated 503 bytes in 12 msecs (HTTP/1.1 500) 5 headers in 180 bytes (1 switches on core 0)
UWSGI_RE = re.compile(
    r"\[pid: (?P<pid>\d+)\|[^\]]*\] \S+ .*?\[(?P<date>[A-Z][a-z]{2} [A-Z][a-z]{2} +\d+ \d\d:\d\d:\d\d \d{4})\] "
    r"(?P<method>[A-Z]+) (?P<uri>\S+) => generated .*?\(HTTP/[\d.]+ (?P<status>\d{3})\)")
# plain Python logging default: 2026-11-24 08:00:00,123 ERROR name: message  /  ERROR:name:message
PYLOG_RE = re.compile(r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<logger>[\w.]+):(?P<rest>.*)", re.S)
# journald short / short-precise / short-iso: "May 26 20:44:32.276580 host unit[pid]: message"
JOURNAL_RE = re.compile(
    r"(?P<date>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d{4}|Z)?)"
    r" (?P<host>\S+) (?P<ident>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<rest>.*)", re.S)
# the oslo format without timestamp/pid, as devstack writes it into the journal
JOURNAL_OSLO_RE = re.compile(_LEVEL_RE + r" (?P<logger>[\w.]+) (?P<rest>.*)", re.S)
CONTEXT_RE = re.compile(r"\[(?P<ctx>(?:-|None|req-|[0-9a-f]{32}|[0-9a-f]{8}-)[^\]]*)\] ?")
INSTANCE_RE = re.compile(r"\[instance: (?P<uuid>[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\] ?")
_EXC_TYPE_RE = re.compile(r"[A-Za-z_][\w.]*")
MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


_TB = "Traceback (most recent call last)"
_TB_B = _TB.encode()


@dataclass(slots=True)
class Event:
    """One log record with its continuation lines."""

    ts: float | None
    level: str
    message: str
    logger: str = ""
    pid: int | None = None
    request_id: str | None = None
    global_request_id: str | None = None
    user: str | None = None
    project: str | None = None
    instance: str | None = None
    _lines: list = field(default_factory=list)  # continuation lines; the fast path stores undecoded bytes
    fmt: str = "oslo"
    host: str = ""
    service: str = ""
    path: str = ""
    offset: int = 0  # byte offset of the first line in the (uncompressed) file
    end: int = 0  # byte offset just after the last line
    truncated: bool = False
    key: tuple = ()  # what continuation lines must share with the first line
    _raw: bool = False  # some of _lines are still bytes
    _date: str = ""  # the oslo timestamp text of the first line
    _fastp: bytes | None = None  # the exact prefix oslo gives this event's traceback lines
    cursor: str | None = None  # journald: cursor of the event's first record (its document id)
    cursor_end: str | None = None  # journald: cursor of its last record (where shipping resumes)

    @property
    def lines(self) -> list[str]:
        """Continuation lines (traceback, rest of a multi-line message)."""
        if self._raw:
            parts = self._lines
            for i, x in enumerate(parts):
                if type(x) is not str:
                    parts[i] = decode(x)
            self._raw = False
        return self._lines

    @property
    def traceback(self) -> str:
        """The traceback / continuation text ('' when the record is one line)."""
        return "\n".join(self.lines)

    @property
    def text(self) -> str:
        return self.message if not self.lines else self.message + "\n" + self.traceback

    @property
    def has_traceback(self) -> bool:
        for line in self._lines:
            if line.startswith(_TB_B if line.__class__ is bytes else _TB):
                return True
        return False

    def _reversed_text(self) -> Iterator[str]:
        for x in reversed(self._lines):
            yield x if type(x) is str else decode(x)

    def exception(self) -> tuple[str | None, str | None]:
        """(type, message) of the last exception in the traceback, else one named in the message."""
        if self._lines and self.has_traceback:
            for line in self._reversed_text():
                stripped = line.strip()
                if not stripped or line.startswith((" ", "\t")) or stripped.startswith(("(Background on this error", "^")):
                    continue
                if stripped.startswith(("During handling", "The above exception", "Traceback (most recent")):
                    break
                head, _, msg = stripped.partition(": ")
                if _EXC_TYPE_RE.fullmatch(head) and head.rsplit(".", 1)[-1][:1].isupper():
                    return head, msg.strip()
                break
        return exception_in_message(self.message), None


_MSG_EXC_RE = re.compile(r"(?:^|[\s:(])(?P<type>(?:[a-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Failure|Timeout|NotFound|Refused|Fault))(?=[:\s(,]|$)")


_MSG_QUALIFIED_EXC_RE = re.compile(r"(?:^|[\s(])(?P<type>(?:[a-z_]\w*\.)+[A-Z]\w*)(?=: )")


def exception_in_message(message: str) -> str | None:
    """The exception class named in a one-line error message ('...: oslo_db.exception.DBConnectionError: ...',
    '...: nova.exception.NoValidHost: ...', '...: ConnectionRefusedError: ...')."""
    m = _MSG_QUALIFIED_EXC_RE.search(message) or _MSG_EXC_RE.search(message)
    return m["type"] if m else None


# ------------------------------------------------------------------------------------------ timestamps
_DEFAULT_TZ: tzinfo | None = None  # None: the local time zone of this machine


def set_log_timezone(name: str | None) -> None:
    """The time zone of the naive timestamps in log files (config logs.timezone), e.g. 'UTC' or 'Europe/Paris'."""
    global _DEFAULT_TZ
    if not name:
        _DEFAULT_TZ = None
        return
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from opsctl.errors import ConfigError

    try:
        _DEFAULT_TZ = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"logs.timezone: unknown time zone {name!r}", hint="use an IANA name such as UTC or Europe/Berlin") from None


class Clock:
    """Converts the naive local timestamps of log files to epoch seconds, cached per minute."""

    def __init__(self, tz: tzinfo | None = None, default_year: int | None = None):
        self.tz = tz if tz is not None else _DEFAULT_TZ
        self.default_year = default_year or time.gmtime().tm_year
        self._cache: dict[str, float] = {}

    def oslo(self, date: str, tzpart: str | None = None) -> float | None:
        base = date[:16]
        seconds = date[17:]
        key = base + (tzpart or "")
        epoch = self._cache.get(key)
        if epoch is None:
            try:
                dt = datetime.strptime(base.replace("T", " "), "%Y-%m-%d %H:%M")
            except ValueError:
                return None
            if tzpart:
                tzpart = "+0000" if tzpart == "Z" else tzpart.replace(":", "")
                dt = dt.replace(tzinfo=datetime.strptime(tzpart, "%z").tzinfo)
            elif self.tz is not None:
                dt = dt.replace(tzinfo=self.tz)
            epoch = dt.timestamp()  # naive: the local time of this machine
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = epoch
        try:
            return epoch + float(seconds.replace(",", ".")) if seconds else epoch
        except ValueError:
            return None

    def ctime(self, date: str) -> float | None:
        """'Tue Nov 24 08:02:42 2026' (uwsgi, asctime)."""
        parts = date.split()
        if len(parts) != 5 or parts[1] not in MONTHS:
            return None
        return self.oslo(f"{parts[4]}-{MONTHS[parts[1]]:02d}-{int(parts[2]):02d} {parts[3]}")

    def syslog(self, date: str) -> float | None:
        if date[:1].isdigit():
            tz = re.search(r"([+-]\d{4}|Z)$", date)
            body = date[: tz.start()] if tz else date
            return self.oslo(body.replace("T", " "), tz.group(1) if tz else None)
        month = MONTHS.get(date[:3])
        if not month:
            return None
        try:
            day = int(date[4:6])
        except ValueError:
            return None
        return self.oslo(f"{self.default_year:04d}-{month:02d}-{day:02d} {date[7:]}")


# ------------------------------------------------------------------------------------------ lines
def read_lines(stream: IO[bytes], max_line_bytes: int, start: int = 0) -> Iterator[tuple[int, bytes, bool, int]]:
    """(offset, line without newline, truncated, offset of the next line) with bounded memory: longer lines are cut, the rest skipped."""
    offset = start
    readline = stream.readline
    while True:
        line = readline(max_line_bytes + 1)
        if not line:
            return
        consumed = len(line)
        truncated = False
        if line[-1:] != b"\n":
            if consumed > max_line_bytes:  # an over-long line: skip to its end without keeping it
                truncated = True
                line = line[:max_line_bytes]
                while True:
                    rest = readline(1 << 20)
                    consumed += len(rest)
                    if not rest or rest[-1:] == b"\n":
                        break
            elif consumed:  # last line without newline
                pass
        else:
            line = line[:-1]
        if line[-1:] == b"\r":
            line = line[:-1]
        yield offset, line, truncated, offset + consumed
        offset += consumed


def decode(line: bytes) -> str:
    return line.decode("utf-8", "replace").replace("\x00", "\ufffd")


# ------------------------------------------------------------------------------------------ parsing
def _is_req(token: str) -> bool:
    return len(token) == 40 and token.startswith("req-")


def parse_context(ctx: str) -> dict:
    """Request context `[global local user project domain user_domain project_domain]` (global may be None or
    absent; `[-]` when there is none) -> fields."""
    toks = ctx.split(None, 4)
    out: dict = {}
    if not toks:
        return out
    first = toks[0]
    if len(toks) > 1 and _is_req(toks[1]) and (first == "None" or _is_req(first)):
        if first != "None":
            out["global_request_id"] = first
        out["request_id"] = toks[1]
        i = 2
    elif _is_req(first):
        out["request_id"] = first
        i = 1
    else:
        return out
    if len(toks) > i and toks[i] not in ("-", "None"):
        out["user"] = toks[i]
    if len(toks) > i + 1 and toks[i + 1] not in ("-", "None"):
        out["project"] = toks[i + 1]
    return out


def _split_context(rest: str) -> tuple[dict, str, bool]:
    """(context fields, message, had a context bracket)."""
    fields: dict = {}
    had = False
    m = CONTEXT_RE.match(rest)
    if m:
        fields = parse_context(m["ctx"])
        rest = rest[m.end():]
        had = True
    im = INSTANCE_RE.match(rest)
    if im:
        fields["instance"] = im["uuid"]
        rest = rest[im.end():]
    return fields, rest, had


_HANDLED = object()  # the line was appended to the current event already


class Assembler:
    """Turns lines into events: groups prefixed continuation lines, TRACE lines and unprefixed lines."""

    def __init__(self, clock: Clock | None = None, *, service: str = "", host: str = "", path: str = "",
                 max_lines: int = MAX_CONTINUATION_LINES):
        self.clock = clock or Clock()
        self.service, self.host, self.path = service, host, path
        self.max_lines = max_lines
        self.max_line_bytes = 1 << 20
        self.current: Event | None = None
        self._fastp: bytes | None = None  # exact prefix of the current oslo event's continuation lines

    def _new(self, offset: int, end: int, **kw) -> Event:
        return Event(host=self.host, service=self.service, path=self.path, offset=offset, end=end, **kw)

    def feed(self, offset: int, raw: bytes, truncated: bool = False, end: int | None = None) -> Event | None:
        """Add a line; return the previous event if this line starts a new one."""
        end = offset + len(raw) + 1 if end is None else end
        text = decode(raw)
        done = None
        ev = self._classify(text, offset, end)
        if ev is _HANDLED:
            if truncated and self.current is not None:
                self.current.truncated = True
            return None
        if ev is None:  # a continuation of the current event
            cur = self.current
            if cur is None or cur.fmt == "uwsgi":  # a uwsgi request line is complete in itself
                done, self.current = cur, None
                self._fastp = None
                cur = self.current = self._new(offset, end, ts=None, level="INFO", message=text, fmt="plain")
                if truncated:
                    cur.truncated = True
                return done
            elif len(cur._lines) < self.max_lines:
                cur._lines.append(text)
                cur.end = end
            else:
                cur.truncated = True
                cur.end = end
            if truncated:
                cur.truncated = True
            return None
        if truncated:
            ev.truncated = True
        self._fastp = ev._fastp
        done, self.current = self.current, ev
        return done

    def feed_block(self, offset: int, block: bytes) -> Iterator[Event]:
        """Add consecutive lines (no trailing newline); yield the events they complete.

        Runs of continuation lines carrying exactly the current oslo event's exception prefix are appended
        without a regex (and undecoded until needed); everything else goes through feed()."""
        maxb = self.max_line_bytes
        if self.current is not None and self.current.end != offset:  # lines were skipped: the event is complete
            done = self.flush()
            if done is not None:
                yield done
        lines = block.split(b"\n")
        n = len(lines)
        i = 0
        while i < n:
            fastp = self._fastp
            if fastp is not None:
                cur = self.current
                parts = cur._lines  # type: ignore[union-attr]
                room = self.max_lines - len(parts)
                lp = len(fastp)
                j = i
                while j < n:
                    r = lines[j]
                    if not r.startswith(fastp) or r[lp:lp + 1] == b"[" or len(r) > maxb:
                        break
                    if room > 0:
                        parts.append(r[lp:])
                        room -= 1
                    else:
                        cur.truncated = True  # type: ignore[union-attr]
                    offset += len(r) + 1
                    j += 1
                if j > i:
                    cur._raw = True  # type: ignore[union-attr]
                    cur.end = offset  # type: ignore[union-attr]
                    i = j
                    continue
            raw = lines[i]
            end = offset + len(raw) + 1
            if raw[-1:] == b"\r":
                raw = raw[:-1]
            trunc = len(raw) > maxb
            done = self.feed(offset, raw[:maxb] if trunc else raw, trunc, end)
            if done is not None:
                yield done
            offset = end
            i += 1

    def flush(self) -> Event | None:
        self._fastp = None
        done, self.current = self.current, None
        return done

    # -- classification -----------------------------------------------------------------------
    def _continues(self, key: tuple) -> bool:
        return self.current is not None and self.current.key == key

    def _classify(self, text: str, offset: int, end: int) -> Event | None:
        c0 = text[:1]
        if c0.isdigit():
            m = OSLO_RE.match(text)
            if m:
                return self._oslo(m, offset, end)
            m = JOURNAL_RE.match(text)  # journalctl -o short-iso(-precise)
            if m:
                return self._journal(m, offset, end)
        elif c0 == "[":
            m = GUNICORN_RE.match(text)
            if m:
                level = LEVEL_ALIASES.get(m["level"], m["level"])
                return self._new(offset, end, ts=self.clock.oslo(m["date"], m["tz"]), level=level, message=m["rest"],
                                 pid=int(m["pid"]), logger="gunicorn", fmt="gunicorn")
            m = UWSGI_RE.match(text)
            if m:
                status = int(m["status"])
                return self._new(offset, end, ts=self.clock.ctime(m["date"]), level="ERROR" if status >= 500 else "INFO",
                                 message=f'{m["method"]} {m["uri"]} => HTTP {status}', pid=int(m["pid"]), logger="uwsgi",
                                 fmt="uwsgi")
        if c0.isalpha() and c0.isupper():
            m = JOURNAL_RE.match(text)
            if m:
                return self._journal(m, offset, end)
            m = PYLOG_RE.match(text)
            if m:
                return self._new(offset, end, ts=None, level=m["level"], message=m["rest"], logger=m["logger"], fmt="python")
        if text.startswith("Traceback (most recent call last)"):
            cur = self.current
            # uwsgi prints a request's traceback before its request line, so a traceback never continues one
            if (cur is None or cur.fmt == "uwsgi" or (cur.level not in ERROR_LEVELS and not cur._lines)
                    or cur.has_traceback and not self._chained(cur)):
                # a bare traceback printed to stderr (eventlet, gunicorn workers): an error of its own
                ev = self._new(offset, end, ts=cur.ts if cur else None, level="ERROR", message="Unhandled exception",
                               fmt="python", pid=cur.pid if cur else None, logger=cur.logger if cur else "")
                ev._lines.append(text)
                return ev
        return None

    @staticmethod
    def _chained(cur: Event) -> bool:
        last = cur._lines[-1] if cur._lines else ""
        last = (last if type(last) is str else decode(last)).strip()
        return last == "" or last.startswith(("During handling", "The above exception"))

    def _oslo(self, m: re.Match, offset: int, end: int) -> Event | None:
        level = m["level"]
        key = ("oslo", m["pid"], m["logger"])
        rest = m["rest"]
        cur = self.current
        if cur is not None and cur.key == key:
            same_time = cur.fmt == "oslo" and self._same_date(cur, m["date"])
            if level == "TRACE" or (same_time and level in ("ERROR", cur.level) and not CONTEXT_RE.match(rest)):
                if len(cur._lines) < self.max_lines:
                    im = INSTANCE_RE.match(rest)
                    cur._lines.append(rest[im.end():] if im else rest)
                else:
                    cur.truncated = True
                cur.end = end
                return _HANDLED
        level = LEVEL_ALIASES.get(level, level)
        if level == "TRACE":  # a TRACE line without its ERROR line
            level = "ERROR"
        fields, message, _ = _split_context(rest)
        ev = self._new(offset, end, ts=self.clock.oslo(m["date"], m["tz"]), level=level, message=message,
                       logger=m["logger"], pid=int(m["pid"]) if m["pid"] else None, fmt="oslo", **fields)
        ev.key = key
        ev._date = m["date"]
        if m["pid"] and not m["tz"]:
            ev._fastp = f"{m['date']} {m['pid']} ERROR {m['logger']} ".encode()
        return ev

    @staticmethod
    def _same_date(cur: Event, date: str) -> bool:
        return cur._date == date

    def _journal(self, m: re.Match, offset: int, end: int) -> Event | None:
        rest = m["rest"]
        key = ("journal", m["host"], m["ident"], m["pid"])
        inner = JOURNAL_OSLO_RE.match(rest)
        cur = self.current
        same = cur is not None and cur.key == key
        if inner is None and same:
            bare_tb = rest.startswith("Traceback (most recent call last)")
            if not bare_tb or (cur.level in ERROR_LEVELS and (not cur._lines or self._chained(cur))):
                if len(cur._lines) < self.max_lines:
                    cur._lines.append(rest)
                cur.end = end
                return _HANDLED
        level, logger = "INFO", m["ident"]
        if inner is not None:
            level, logger, rest = LEVEL_ALIASES.get(inner["level"], inner["level"]), inner["logger"], inner["rest"]
            if same and (level == "TRACE" or (level == "ERROR" and logger == cur.logger and not CONTEXT_RE.match(rest))):
                if len(cur._lines) < self.max_lines:
                    im = INSTANCE_RE.match(rest)
                    cur._lines.append(rest[im.end():] if im else rest)
                cur.end = end
                return _HANDLED
        elif rest.startswith("Traceback (most recent call last)"):
            level = "ERROR"
        fields, message, _ = _split_context(rest)
        ev = self._new(offset, end, ts=self.clock.syslog(m["date"]), level=level, message=message, logger=logger,
                       pid=int(m["pid"]) if m["pid"] else None, fmt="journal", **fields)
        if message.startswith("Traceback (most recent call last)"):
            ev.message, ev._lines = "Unhandled exception", [message]
        ev.key = key
        ev.service = m["ident"]  # the journal interleaves units: the unit names the service
        return ev


def parse_lines(lines: Iterable[tuple[int, bytes, bool, int]], assembler: Assembler) -> Iterator[Event]:
    for offset, raw, truncated, end in lines:
        done = assembler.feed(offset, raw, truncated, end)
        if done is not None:
            yield done
    last = assembler.flush()
    if last is not None:
        yield last


# ------------------------------------------------------------------------------------------ journald export
JOURNAL_EXPORT_MAGIC = b"__CURSOR="


def parse_journal_export(stream: IO[bytes], max_field_bytes: int, *, host: str = "", path: str = "",
                         start: int = 0) -> Iterator[Event]:
    """Events of `journalctl -o export`: KEY=value lines, binary fields as KEY\\n<le64 length><data>\\n.

    A record sent by a logging library (oslo.log's journal handler) is one event. A service that logs to
    stdout/stderr under systemd (devstack) gives one record per line: those are assembled into events
    like the lines of a log file, so a traceback stays with its error."""
    assembler = Assembler(host=host, path=path)
    pending: list[tuple[int, int, str | None]] = []  # (start, end, cursor) of the records the assembler holds

    def assembled(ev: Event) -> Event:
        ev.cursor = next((c for a, _, c in pending if a == ev.offset), None)
        ev.cursor_end = next((c for _, b, c in pending if b == ev.end), None)
        pending[:] = [r for r in pending if r[1] > ev.end]
        return ev

    for rec_start, rec_end, fields in _export_records(stream, max_field_bytes, start):
        if fields.get("_TRANSPORT") == "stdout":
            done = assembler.feed(rec_start, _as_journal_line(fields, host).encode(), end=rec_end)
            pending.append((rec_start, rec_end, fields.get("__CURSOR")))
            if done is not None:
                yield assembled(done)
            continue
        done = assembler.flush()
        if done is not None:
            yield assembled(done)
        ev = _journal_event(fields, host, path, rec_start, rec_end)
        ev.cursor = ev.cursor_end = fields.get("__CURSOR")
        yield ev
    done = assembler.flush()
    if done is not None:
        yield assembled(done)


def _as_journal_line(f: dict[str, str], host: str) -> str:
    """A stdout record as the line `journalctl -o short-iso-precise` would print (in UTC)."""
    raw_ts = f.get("_SOURCE_REALTIME_TIMESTAMP") or f.get("__REALTIME_TIMESTAMP") or ""
    ts = datetime.fromtimestamp(int(raw_ts) / 1e6, timezone.utc) if raw_ts.isdigit() else datetime.now(timezone.utc)
    ident = f.get("SYSLOG_IDENTIFIER") or f.get("_COMM") or "unknown"
    pid = f.get("_PID") or f.get("SYSLOG_PID")
    return (f"{ts.strftime('%Y-%m-%dT%H:%M:%S.%f')}+0000 {f.get('_HOSTNAME') or host or 'localhost'} "
            f"{ident}{f'[{pid}]' if pid else ''}: {f.get('MESSAGE', '')}")


def _export_records(stream: IO[bytes], max_field_bytes: int, start: int) -> Iterator[tuple[int, int, dict[str, str]]]:
    """(start offset, end offset, fields) of each record; MESSAGE without terminal colour codes."""
    for rec_start, rec_end, fields in _raw_export_records(stream, max_field_bytes, start):
        if "\x1b" in fields.get("MESSAGE", ""):
            fields["MESSAGE"] = ANSI_RE.sub("", fields["MESSAGE"])
        yield rec_start, rec_end, fields


def _raw_export_records(stream: IO[bytes], max_field_bytes: int, start: int) -> Iterator[tuple[int, int, dict[str, str]]]:
    offset = start
    fields: dict[str, str] = {}
    rec_start = offset
    while True:
        line = stream.readline(max_field_bytes + 1)
        if not line:
            break
        consumed = len(line)
        if line in (b"\n", b"\r\n"):
            if fields:
                yield rec_start, offset + consumed, fields
            fields = {}
            offset += consumed
            rec_start = offset
            continue
        if line[-1:] != b"\n":  # over-long text field: skip the rest of it
            while True:
                rest = stream.readline(1 << 20)
                consumed += len(rest)
                if not rest or rest[-1:] == b"\n":
                    break
        body = line.rstrip(b"\n")
        eq = body.find(b"=")
        if eq > 0:
            fields[decode(body[:eq])] = decode(body[eq + 1:])
        elif body and line[-1:] == b"\n":  # binary field
            raw_len = stream.read(8)
            consumed += len(raw_len)
            if len(raw_len) < 8:
                break
            (length,) = struct.unpack("<Q", raw_len)
            keep = stream.read(min(length, max_field_bytes))
            consumed += len(keep)
            skip = length - len(keep)
            while skip > 0:
                chunk = stream.read(min(skip, 1 << 20))
                if not chunk:
                    break
                skip -= len(chunk)
                consumed += len(chunk)
            consumed += len(stream.read(1))  # the trailing newline
            fields[decode(body)] = decode(keep)
        offset += consumed
    if fields:
        yield rec_start, offset, fields


ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colour codes (oslo's ColorHandler on stderr)
_CONT_PREFIX = re.compile(r"(?:\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)? +\d+ +)?" + _LEVEL_RE
                          + r" (?P<logger>\S+) (?:\[instance: [0-9a-fA-F-]{36}\] )?")


def _strip_prefix(line: str, logger: str) -> str:
    """A traceback line of a journal record without oslo's exception prefix (same logger only)."""
    m = _CONT_PREFIX.match(line)
    return line[m.end():] if m and m["logger"] == logger else line


def _journal_event(f: dict[str, str], host: str, path: str, start: int, end: int) -> Event:
    ts = None
    raw_ts = f.get("__REALTIME_TIMESTAMP") or f.get("_SOURCE_REALTIME_TIMESTAMP")
    if raw_ts and raw_ts.isdigit():
        ts = int(raw_ts) / 1e6
    message = f.get("MESSAGE", "")
    level = f.get("LOGGER_LEVEL") or SYSLOG_PRIORITY.get(f.get("PRIORITY", "6"), "INFO")
    level = LEVEL_ALIASES.get(level, level)
    logger = f.get("LOGGER_NAME", f.get("SYSLOG_IDENTIFIER", ""))
    # oslo.log's journal handler sends the formatted record: MESSAGE repeats level, logger and context
    # (full oslo format, or devstack's "LEVEL logger [ctx] msg"), and every traceback line carries the
    # exception prefix. Strip both so the event looks like the same record read from a log file.
    inner = OSLO_RE.match(message) or JOURNAL_OSLO_RE.match(message)
    if inner and (not f.get("LOGGER_NAME") or inner["logger"] == f["LOGGER_NAME"]):
        if not f.get("LOGGER_LEVEL"):
            level = LEVEL_ALIASES.get(inner["level"], inner["level"])
        logger, message = inner["logger"], inner["rest"]
    ctx, message, _ = _split_context(message)
    first, _, rest = message.partition("\n")
    lines = [_strip_prefix(line, logger) for line in rest.split("\n")] if rest else []
    if f.get("EXCEPTION_TEXT") and not lines:
        lines = f["EXCEPTION_TEXT"].split("\n")
    request_id = f.get("REQUEST_ID") or ctx.get("request_id")
    pid = f.get("_PID") or f.get("SYSLOG_PID")
    return Event(ts=ts, level=level, message=first, logger=logger, pid=int(pid) if pid and pid.isdigit() else None,
                 request_id=request_id, global_request_id=f.get("GLOBAL_REQUEST_ID") or ctx.get("global_request_id"),
                 user=f.get("USER_ID") or f.get("USER_NAME") or ctx.get("user"),
                 project=f.get("PROJECT_ID") or f.get("PROJECT_NAME") or ctx.get("project"),
                 instance=ctx.get("instance"), _lines=lines[:MAX_CONTINUATION_LINES], fmt="journal-export",
                 host=f.get("_HOSTNAME", host), service=f.get("SYSLOG_IDENTIFIER", ""), path=path, offset=start, end=end)


def parse_stream(stream: IO[bytes], *, max_line_bytes: int = 1 << 20, clock: Clock | None = None, service: str = "",
                 host: str = "", path: str = "", start: int = 0) -> Iterator[Event]:
    """Every event in a stream, whatever its format (journald export detected by its first field)."""
    head = stream.peek(len(JOURNAL_EXPORT_MAGIC))[: len(JOURNAL_EXPORT_MAGIC)] if hasattr(stream, "peek") else b""
    if head == JOURNAL_EXPORT_MAGIC:
        for ev in parse_journal_export(stream, max_line_bytes, host=host, path=path, start=start):
            ev.service = ev.service or service
            yield ev
        return
    assembler = Assembler(clock, service=service, host=host, path=path)
    yield from parse_lines(read_lines(stream, max_line_bytes, start), assembler)


def epoch_to_iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
