"""File backups: GNU tar with metadata (permissions, numeric ownership, ACLs, xattrs), excludes, compression."""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from opsctl.backup.compression import Codec
from opsctl.backup.proc import Stage, StreamResult, require, stream_from_file, stream_to_file

TAR_CREATE_META = ["--numeric-owner", "--acls", "--xattrs", "--xattrs-include=*"]
TAR_EXTRACT_META = ["--numeric-owner", "--same-owner", "--preserve-permissions", "--acls", "--xattrs",
                    "--xattrs-include=*"]


@dataclass(frozen=True)
class FileSet:
    """Paths (globs allowed) of one component to archive together, e.g. keystone 'keys'."""

    name: str
    paths: tuple[str, ...]
    excludes: tuple[str, ...] = ()
    optional: bool = False


@dataclass
class FilesOutcome:
    result: StreamResult | None
    included: list[str]
    missing: list[str]
    duration: float
    warnings: list[str] = field(default_factory=list)


def expand(paths: tuple[str, ...], root: str = "/") -> tuple[list[str], list[str]]:
    """(existing paths relative to root, missing patterns)."""
    found, missing = [], []
    for pattern in paths:
        full = os.path.join(root, pattern.lstrip("/"))
        matches = sorted(glob.glob(full)) if glob.has_magic(full) else ([full] if os.path.lexists(full) else [])
        if not matches:
            missing.append(pattern)
        for m in matches:
            rel = os.path.relpath(m, root)
            if rel not in found:
                found.append(rel)
    return found, missing


def tar_create_stages(relpaths: list[str], root: str, excludes: tuple[str, ...], codec: Codec) -> list[Stage]:
    tar = require("tar")
    argv = [tar, "--create", "--file=-", f"--directory={root}", *TAR_CREATE_META, "--sparse",
            *[f"--exclude={e}" for e in excludes], "--", *relpaths]
    # exit 1: "file changed as we read it" (a live config dir): kept, reported as a warning
    stages = [Stage(argv, ok_codes=(0, 1))]
    comp = codec.compress()
    return stages + ([comp] if comp else [])


def archive(fileset: FileSet, dest: Path, codec: Codec, root: str = "/", progress=None) -> FilesOutcome:
    t0 = time.monotonic()
    included, missing = expand(fileset.paths, root)
    if not included:
        return FilesOutcome(None, [], missing, time.monotonic() - t0)
    result = stream_to_file(tar_create_stages(included, root, fileset.excludes, codec), dest, progress)
    return FilesOutcome(result, included, missing, time.monotonic() - t0, list(result.warnings))


def move_aside(paths: list[str], root: str, stamp: str | None = None) -> list[tuple[str, str]]:
    """Rename existing top-level paths to `<path>.pre-restore-<stamp>`; returns (from, to)."""
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for rel in paths:
        full = os.path.join(root, rel)
        if os.path.lexists(full):
            to = f"{full}.pre-restore-{stamp}"
            os.rename(full, to)
            moved.append((full, to))
    return moved


def extract(path: Path, codec: Codec, root: str, progress=None) -> list[str]:
    os.makedirs(root, exist_ok=True)
    dec = codec.decompress()
    tar = Stage([require("tar"), "--extract", "--file=-", f"--directory={root}", *TAR_EXTRACT_META])
    return stream_from_file(path, ([dec] if dec else []) + [tar], progress)


def top_paths(included: list[str]) -> list[str]:
    """The archived roots (e.g. etc/keystone), outermost only."""
    out: list[str] = []
    for p in sorted(included, key=len):
        if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in out):
            out.append(p)
    return out
