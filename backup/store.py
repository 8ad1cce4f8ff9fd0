"""The local backup store: one directory per complete backup holding `manifest.json` and its files.

A backup is written under `<store>/.inprogress/<id>/`; only after every file and the manifest are
fsynced is it renamed to `<store>/<id>/` (and the store directory fsynced). So a backup killed at any
moment (kill -9) is never listed: listing only looks at `<store>/<id>/manifest.json` with status complete.
A `fcntl` lock on `<store>/.lock` keeps two runs (backup, prune, restore) from overlapping.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from opsctl.backup.fsutil import fsync_dir, fsync_tree, write_json_atomic
from opsctl.errors import DataError, LockedError, UsageError

FORMAT = 1
ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
INPROGRESS = ".inprogress"
TRASH = ".trash"


def new_id(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class Item:
    """One stored file of a backup: a database dump, a tar of files or a physical backup stream."""

    type: str  # mysql-dump | files | mariabackup
    component: str
    name: str
    path: str  # relative to the backup directory
    compression: str
    size: int = 0
    sha256: str = ""
    duration: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def target(self) -> str:
        return target_name(self.to_dict())


def target_name(item: dict[str, Any]) -> str:
    """What freshness is tracked per: component/name, plus @host for file sets archived on another host
    (so a controller that has been unreachable for days ages on its own)."""
    source = item.get("source") or {}
    host = f"@{source.get('host')}" if source.get("remote") else ""
    return f"{item.get('component', '')}/{item.get('name', '')}{host}"


@dataclass
class Manifest:
    id: str
    kind: str = "manual"  # manual | scheduled | pre-restore
    status: str = "incomplete"
    host: str = ""
    started: str = ""
    finished: str = ""
    duration: float = 0.0
    components: list[str] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    format: int = FORMAT

    @property
    def created(self) -> datetime:
        return datetime.strptime(self.id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)

    @property
    def size(self) -> int:
        return sum(i.size for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["items"] = [i.to_dict() for i in self.items]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Manifest":
        items = [Item(**i) for i in data.get("items", [])]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "items"}
        return cls(**known, items=items)


@dataclass
class Backup:
    """A complete backup in the store."""

    path: Path
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.manifest.id


class Store:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    # -- layout
    def ensure(self) -> None:
        try:
            for d in (self.root, self.root / INPROGRESS, self.root / TRASH):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
        except PermissionError as exc:
            raise UsageError(f"cannot create backup store {self.root}: {exc.strerror}",
                             hint="set backup.store in the config to a writable directory") from None

    @contextmanager
    def lock(self, what: str = "backup") -> Iterator[None]:
        """Exclusive lock on the store; a second run fails at once (exit 75) naming the holder."""
        self.ensure()
        path = self.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another opsctl run"
                raise LockedError(f"backup store {self.root} is locked by {holder}",
                                  hint="another backup/restore/prune is running; try again when it has finished") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({what})".encode(), 0)
            yield
        finally:
            os.close(fd)

    # -- writing
    def begin(self, kind: str = "manual", now: datetime | None = None) -> tuple[Manifest, Path]:
        """A new in-progress backup directory (caller holds the lock); stale in-progress ones are removed."""
        self.ensure()
        self.clean_incomplete()
        base = new_id(now)
        bid, n = base, 0
        while (self.root / bid).exists() or (self.root / INPROGRESS / bid).exists():
            n += 1
            bid = f"{base}-{n}"
        work = self.root / INPROGRESS / bid
        work.mkdir(mode=0o700)
        manifest = Manifest(id=bid, kind=kind, host=os.uname().nodename,
                            started=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return manifest, work

    def commit(self, manifest: Manifest, work: Path) -> Backup:
        """Write the manifest, fsync everything, and move the backup into place in one rename."""
        fsync_tree(work)
        manifest.status = "complete"
        write_json_atomic(work / "manifest.json", manifest.to_dict())
        final = self.root / manifest.id
        os.rename(work, final)
        fsync_dir(self.root)
        fsync_dir(self.root / INPROGRESS)
        return Backup(final, manifest)

    def abandon(self, work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)

    def clean_incomplete(self) -> list[str]:
        """Remove what killed runs left behind (caller holds the lock)."""
        removed = []
        for sub in (INPROGRESS, TRASH):
            d = self.root / sub
            if d.is_dir():
                for child in d.iterdir():
                    shutil.rmtree(child, ignore_errors=True)
                    removed.append(child.name)
        return removed

    # -- reading
    def list(self) -> list[Backup]:
        """Complete backups, oldest first. Anything without a complete manifest is not a backup."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.iterdir():
            if not ID_RE.match(d.name) or not d.is_dir():
                continue
            manifest = read_manifest(d)
            if manifest is not None and manifest.status == "complete" and manifest.id == d.name:
                out.append(Backup(d, manifest))
        return sorted(out, key=lambda b: (b.manifest.created, b.id))

    def get(self, backup_id: str | None) -> Backup:
        """A backup by id, or 'latest'/None for the newest complete one."""
        backups = self.list()
        if not backups:
            raise UsageError(f"no complete backup in {self.root}", hint="run 'opsctl backup run' first")
        if backup_id in (None, "", "latest"):
            return backups[-1]
        for b in backups:
            if b.id == backup_id:
                return b
        raise UsageError(f"no complete backup {backup_id!r} in {self.root}", hint="see 'opsctl backup list'")

    def delete(self, backup: Backup) -> None:
        """Remove a backup: renamed out of the listing first, then deleted."""
        trash = self.root / TRASH / f"{backup.id}.{int(time.time() * 1000)}"
        os.rename(backup.path, trash)
        fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)


def read_manifest(path: Path) -> Manifest | None:
    try:
        data = json.loads((path / "manifest.json").read_text())
        return Manifest.from_dict(data)
    except (OSError, ValueError, TypeError):
        return None


def verify_checksums(backup: Backup, items: list[Item] | None = None, progress=None) -> list[str]:
    """Problems found comparing stored files with the manifest's sizes and sha256 (empty: all good)."""
    from opsctl.backup.proc import sha256_file

    problems = []
    for item in items if items is not None else backup.manifest.items:
        path = backup.path / item.path
        if not path.is_file():
            problems.append(f"{item.path}: missing")
            continue
        size = path.stat().st_size
        if size != item.size:
            problems.append(f"{item.path}: size {size} != {item.size} recorded")
            continue
        if sha256_file(path, progress) != item.sha256:
            problems.append(f"{item.path}: sha256 mismatch")
    return problems


def require_intact(backup: Backup, items: list[Item] | None = None, progress=None, *, what: str = "backup",
                   hint: str = "restore from another backup (see 'opsctl backup list')") -> None:
    problems = verify_checksums(backup, items, progress)
    if problems:
        raise DataError(f"{what} {backup.id} is corrupt: {'; '.join(problems[:3])}"
                        + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""), hint=hint)
