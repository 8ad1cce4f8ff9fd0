"""Group error events by fingerprint: exception type + message with ids, numbers and addresses stripped."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from opsctl.logs.parser import Event, epoch_to_iso

# words (runs of [\w.:-]) that contain a digit are the volatile parts of a message: classify each one
_DIGIT_WORD = re.compile(r"(?<![\w.:-])(?=[\w.:-]*\d)[\w.:-]+")
_CLASSES = [
    (re.compile(r"req-[0-9a-f-]{36}"), "<req>"),
    (re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?"), "<ip>"),
    (re.compile(r"[-+]?\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"0x[0-9a-f]+", re.I), "<hex>"),
    (re.compile(r"[0-9a-f]{16,}", re.I), "<id>"),
    (re.compile(r"(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}", re.I), "<addr>"),
]
_DIGITS = re.compile(r"\d+")


def _placeholder(m: re.Match) -> str:
    word = m.group()
    core = word.rstrip(".:-")
    tail = word[len(core):]
    for pattern, name in _CLASSES:
        if pattern.fullmatch(core):
            return name + tail
    return _DIGITS.sub("<n>", word)  # e.g. python3.11, e3q8


MAX_SAMPLE_LINES = 200


_DIGITS_TO_ONE = bytes.maketrans(b"23456789", b"11111111")  # 0 stays: it is significant in "0x"
_CACHE_MAX = 4096


def normalize(message: str, _cache: dict[bytes, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    """The message with request ids, uuids, hex ids, addresses and numbers replaced by placeholders.

    Memoised on the message with every digit but 0 made 1: the placeholders depend on the shape of each
    word (digit count, letters, separators, a leading 0x), never on other digit values, so messages that
    differ only in such digit values normalise alike."""
    message = message.strip()[:2000]
    key = message.encode("utf-8", "surrogatepass").translate(_DIGITS_TO_ONE)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    text = " ".join(_DIGIT_WORD.sub(_placeholder, message).split())
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[key] = text
    return text


def fingerprint_of(event: Event, _cache: dict[tuple[str, str], str] = {}) -> tuple[str, str, str]:  # noqa: B006
    """(fingerprint, exception type, normalized message)."""
    exc_type = event.exception()[0] or ""
    norm = normalize(event.message)
    digest = _cache.get((exc_type, norm))
    if digest is None:
        digest = hashlib.sha1(f"{exc_type or '-'}\x00{norm}".encode("utf-8", "replace")).hexdigest()[:12]
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[(exc_type, norm)] = digest
    return digest, exc_type, norm


@dataclass
class ErrorGroup:
    fingerprint: str
    exception: str
    normalized: str
    level: str
    message: str  # one sample message (first seen)
    count: int = 0
    first_seen: float | None = None
    last_seen: float | None = None
    by_host: dict[str, int] = field(default_factory=dict)
    by_service: dict[str, int] = field(default_factory=dict)
    sample_traceback: str = ""
    sample_where: str = ""
    request_ids: list[str] = field(default_factory=list)  # a few, to `opsctl logs trace`
    new: bool = False

    def add(self, ev: Event) -> None:
        self.count += 1
        self.by_host[ev.host] = self.by_host.get(ev.host, 0) + 1
        self.by_service[ev.service] = self.by_service.get(ev.service, 0) + 1
        if ev.ts is not None:
            if self.first_seen is None or ev.ts < self.first_seen:
                self.first_seen = ev.ts
            if self.last_seen is None or ev.ts > self.last_seen:
                self.last_seen = ev.ts
        if _rank(ev.level) > _rank(self.level):
            self.level = ev.level
        if not self.sample_traceback and ev._lines:
            self.sample_traceback = "\n".join(ev.lines[:MAX_SAMPLE_LINES])
            self.sample_where = f"{ev.host}:{ev.path}:{ev.offset}"
        if len(self.request_ids) < 3:
            rid = ev.global_request_id or ev.request_id
            if rid and rid not in self.request_ids:
                self.request_ids.append(rid)

    def merge(self, other: "ErrorGroup") -> None:
        self.count += other.count
        for k, v in other.by_host.items():
            self.by_host[k] = self.by_host.get(k, 0) + v
        for k, v in other.by_service.items():
            self.by_service[k] = self.by_service.get(k, 0) + v
        for ts in (other.first_seen, other.last_seen):
            if ts is None:
                continue
            self.first_seen = ts if self.first_seen is None else min(self.first_seen, ts)
            self.last_seen = ts if self.last_seen is None else max(self.last_seen, ts)
        if _rank(other.level) > _rank(self.level):
            self.level = other.level
        if not self.sample_traceback and other.sample_traceback:
            self.sample_traceback, self.sample_where = other.sample_traceback, other.sample_where
        for rid in other.request_ids:
            if len(self.request_ids) < 3 and rid not in self.request_ids:
                self.request_ids.append(rid)

    def to_dict(self) -> dict:
        return {
            "fingerprint": self.fingerprint, "exception": self.exception or None, "level": self.level,
            "message": self.message, "normalized": self.normalized, "count": self.count,
            "first_seen": epoch_to_iso(self.first_seen), "last_seen": epoch_to_iso(self.last_seen),
            "hosts": dict(sorted(self.by_host.items())), "services": dict(sorted(self.by_service.items())),
            "request_ids": self.request_ids, "sample_traceback": self.sample_traceback or None,
            "sample_location": self.sample_where or None, "new": self.new,
        }


def _rank(level: str) -> int:
    return {"WARNING": 1, "ERROR": 2, "CRITICAL": 3}.get(level, 0)


class ErrorGroups:
    """Fingerprint -> ErrorGroup, fed event by event or merged from another worker's groups."""

    def __init__(self) -> None:
        self.groups: dict[str, ErrorGroup] = {}
        self.events = 0
        self.problems: list[str] = []  # files that could not be read (completely)

    def add(self, ev: Event) -> None:
        fp, exc_type, norm = fingerprint_of(ev)
        group = self.groups.get(fp)
        if group is None:
            group = self.groups[fp] = ErrorGroup(fp, exc_type, norm, ev.level, ev.message[:1000])
        group.add(ev)
        self.events += 1

    def merge(self, other: "ErrorGroups") -> None:
        self.events += other.events
        self.problems.extend(other.problems)
        for fp, g in other.groups.items():
            mine = self.groups.get(fp)
            if mine is None:
                self.groups[fp] = g
            else:
                mine.merge(g)

    def sorted(self) -> list[ErrorGroup]:
        return sorted(self.groups.values(), key=lambda g: (-g.count, -(g.last_seen or 0), g.fingerprint))
