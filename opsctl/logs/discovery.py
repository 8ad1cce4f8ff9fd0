"""Find the log files of each service on a host from the component catalog (globs, log dirs), rotated and
compressed ones included, and open them as byte streams (gzip transparently) on local or remote hosts.

Services that log to journald instead (OpenStack-Ansible, devstack) are read with `journalctl -o export`
on the host: one pseudo file `journal:<identifier>,...` per host, matched by syslog identifier."""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import logging
import posixpath
import time
import zlib
from dataclasses import dataclass
from typing import IO, Mapping, Sequence

from opsctl.components import Component
from opsctl.hosts import Host, LocalHost

log = logging.getLogger(__name__)

ROTATED_SUFFIX = "[.-]*"  # nova-api.log.1, .log.2.gz, .log-20261124(.gz)
DIR_PATTERNS = ("*.log", "*.log[.-]*", "*.out", "*.err", "*.txt")
HEAD_BYTES = 64 * 1024
BUFFER = 1 << 20


@dataclass(frozen=True)
class LogFile:
    host: str
    path: str
    component: str
    service: str
    size: int
    mtime: float
    since: float | None = None  # journal sources: read from this time on
    cursor: str | None = None  # journal sources: read the records after this one

    @property
    def compressed(self) -> bool:
        return self.path.endswith(".gz")

    @property
    def journal(self) -> bool:
        return self.path.startswith(JOURNAL_PREFIX)


JOURNAL_PREFIX = "journal:"


def guess_service(path: str, catalog: Mapping[str, Component], default: tuple[str, str] = ("", "")) -> tuple[str, str]:
    """(component, service) for a log file name: glob match first, then name prefixes."""
    base = posixpath.basename(path)
    for comp in catalog.values():
        for svc in comp.services:
            for pattern in svc.logs:
                pat = posixpath.basename(pattern)
                if pat not in ("*.log", "syslog") and (fnmatch.fnmatchcase(base, pat) or fnmatch.fnmatchcase(base, pat + ROTATED_SUFFIX)):
                    return comp.name, svc.name
    stem = base.split(".", 1)[0]
    best: tuple[str, str] | None = None
    for comp in catalog.values():
        for svc in comp.services:
            if stem == svc.name:
                return comp.name, svc.name
            if stem.startswith(svc.name) and (best is None or len(svc.name) > len(best[1])):
                best = (comp.name, svc.name)
        if best is None and comp.services and (stem == comp.name or stem.startswith(comp.name + "-")):
            best = (comp.name, comp.services[0].name)
    return best or default


def discover(host: Host, catalog: Mapping[str, Component], *, components: Sequence[str] = (), services: Sequence[str] = (),
             since: float | None = None, paths: Sequence[str] = (), journal: str = "never") -> list[LogFile]:
    """Log files on one host, newest content last per service; files last written before `since` are skipped.

    journal: "auto" reads the journal of the selected services when none of them has a log file here,
    "always" also where they do (for the services without files), "never" not at all (nor with --path)."""
    found: dict[str, tuple[str, str]] = {}
    if paths:
        for pattern in paths:
            for path in _glob(host, pattern):
                found.setdefault(path, guess_service(path, catalog, ("", posixpath.basename(path).split(".", 1)[0])))
    else:
        for comp in catalog.values():
            if components and comp.name not in components:
                continue
            for svc in comp.services:
                if services and svc.name not in services:
                    continue
                for pattern in svc.logs:
                    for path in _glob(host, pattern) + _glob(host, pattern + ROTATED_SUFFIX):
                        found.setdefault(path, (comp.name, svc.name))
            for directory in comp.log_dirs:
                for pat in DIR_PATTERNS:
                    for path in _glob(host, posixpath.join(directory, pat)):
                        if path in found:
                            continue
                        cname, sname = guess_service(path, catalog, (comp.name, comp.name))
                        if services and sname not in services:
                            continue
                        if components and cname not in components:
                            continue
                        found[path] = (cname, sname)
    files = []
    for path, (cname, sname) in found.items():
        try:
            st = host.stat(path)
        except OSError:
            continue
        if st.is_dir or (since is not None and st.mtime < since):
            continue
        files.append(LogFile(host.name, path, cname, sname, st.size, st.mtime))
    files.sort(key=lambda f: (f.service, -f.mtime, f.path))
    # auto: a host whose services log nowhere we know (OpenStack-Ansible and devstack log to journald)
    if (journal == "always" or (journal == "auto" and not files)) and not paths:
        with_files = {f.service for f in files}
        idents: list[str] = []
        for comp in catalog.values():
            if components and comp.name not in components:
                continue
            for svc in comp.services:
                if (services and svc.name not in services) or svc.name in with_files:
                    continue
                for ident in (svc.name, *svc.processes):
                    if ident not in idents and "/" not in ident and not ident.startswith("python"):
                        idents.append(ident)
        if idents and _has_journalctl(host):
            files.append(LogFile(host.name, JOURNAL_PREFIX + ",".join(idents), "", "", 0, time.time(), since))
    return files


def _has_journalctl(host: Host) -> bool:
    try:
        return host.run(["journalctl", "--version"], timeout=10).ok
    except Exception as exc:  # noqa: BLE001 - no journalctl (or no way to run it): no journal source
        log.debug("%s: no journalctl: %s", host.name, exc)
        return False


def journal_argv(path: str, since: float | None = None, cursor: str | None = None) -> list[str]:
    """journalctl for a `journal:<identifier>,...` source: export format, after `cursor` or from `since`."""
    argv = ["journalctl", "--no-pager", "--quiet", "-o", "export"]
    for ident in path[len(JOURNAL_PREFIX):].split(","):
        argv += ["-t", ident]
    if cursor:
        argv.append(f"--after-cursor={cursor}")
    elif since is not None:
        argv.append(f"--since=@{int(since)}")
    return argv


class _SpawnedRaw(io.RawIOBase):
    """A running command's stdout as a raw stream (for a BufferedReader); closing stops the command."""

    def __init__(self, proc):
        self.proc = proc

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        data = self.proc.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self.proc.kill()
            try:
                self.proc.wait()
            except Exception:  # noqa: BLE001 - killed on purpose: its exit status does not matter
                pass
        super().close()


def _glob(host: Host, pattern: str) -> list[str]:
    try:
        return host.glob(pattern)
    except OSError as exc:
        log.debug("%s: glob %s failed: %s", host.name, pattern, exc)
        return []


def open_log(host: Host, path: str, *, unbuffered: bool = False, since: float | None = None,
             cursor: str | None = None) -> IO[bytes]:
    """A binary stream of the file's (uncompressed) content; buffered unless asked for a plain local file
    read in big chunks (then the caller's buffer is filled directly)."""
    if path.startswith(JOURNAL_PREFIX):
        return io.BufferedReader(_SpawnedRaw(host.spawn(journal_argv(path, since, cursor), timeout=3600)), BUFFER)
    if isinstance(host, LocalHost):
        raw: IO[bytes] = open(path, "rb", buffering=0 if unbuffered and not path.endswith(".gz") else BUFFER)
    else:
        raw = host.open(path)
    if path.endswith(".gz"):
        return _OwnedGzip(raw)
    return raw


class _OwnedGzip(gzip.GzipFile):
    """A gzip reader that closes the file under it. Not wrapped in another buffer: GzipFile.read(n) loses
    the data it decompressed when a truncated file ends, read1/readline/readinto1 keep it."""

    def __init__(self, raw: IO[bytes]):
        super().__init__(fileobj=raw, mode="rb")  # type: ignore[arg-type]
        self._owned = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._owned.close()


def read_head(stream: IO[bytes]) -> bytes:
    """The first bytes of a stream, which is rewound afterwards."""
    try:
        head = stream.read1(HEAD_BYTES) if isinstance(stream, gzip.GzipFile) else stream.read(HEAD_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        log.debug("cannot read head: %s", exc)
        return b""
    stream.seek(0)
    return head


def file_identity(head: bytes) -> str | None:
    """Identity of a log file that survives rename, rotation and compression: a hash of its first line(s).

    The first line when it is long enough to be distinctive (a timestamped log line), else the first whole
    lines covering 256 bytes; None while not enough complete lines exist (nothing worth shipping yet)."""
    nl = head.find(b"\n")
    if nl < 0:
        return None
    if nl < 32:
        nl = head.find(b"\n", 256)
        if nl < 0:
            return None
    return hashlib.sha1(head[: min(nl, 4096)]).hexdigest()[:20]
