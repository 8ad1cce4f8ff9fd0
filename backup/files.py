"""File backups: GNU tar with metadata (permissions, numeric ownership, ACLs, xattrs), excludes, compression."""

from __future__ import annotations

import glob
import os
import posixpath
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from opsctl.backup.compression import Codec
from opsctl.backup.proc import PipelineError, Stage, StreamResult, require, stream_from_file, stream_to_file
from opsctl.secrets import mask

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


def tar_create_argv(tar: str, relpaths: list[str], root: str, excludes: tuple[str, ...]) -> list[str]:
    return [tar, "--create", "--file=-", f"--directory={root}", *TAR_CREATE_META, "--sparse",
            *[f"--exclude={e}" for e in excludes], "--", *relpaths]


def tar_extract_argv(tar: str, root: str) -> list[str]:
    return [tar, "--extract", "--file=-", f"--directory={root}", *TAR_EXTRACT_META]


def tar_create_stages(relpaths: list[str], root: str, excludes: tuple[str, ...], codec: Codec) -> list[Stage]:
    argv = tar_create_argv(require("tar"), relpaths, root, excludes)
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
    tar = Stage(tar_extract_argv(require("tar"), root))
    return stream_from_file(path, ([dec] if dec else []) + [tar], progress)


# ----------------------------------------------------------------------------- other hosts (SSH)
# tar runs on the host; its stream comes back over the SSH channel and is compressed, hashed and
# stored here, so nothing is staged on the host and no compressor is needed there.

def expand_on(host, paths: tuple[str, ...], root: str = "/") -> tuple[list[str], list[str]]:
    """`expand` on another host (globs over SFTP): (existing paths relative to root, missing patterns)."""
    found, missing = [], []
    for pattern in paths:
        full = posixpath.join(root, pattern.lstrip("/"))
        matches = host.glob(full) if glob.has_magic(full) else existing_on(host, [full], "/")
        if not matches:
            missing.append(pattern)
        for m in matches:
            rel = posixpath.relpath(m, root)
            if rel not in found:
                found.append(rel)
    return found, missing


def _remote_result(proc, ok_codes: tuple[int, ...]) -> list[str]:
    rc = proc.wait()
    text = mask(proc.stderr().strip())
    last = text.splitlines()[-1] if text else ""
    if rc not in ok_codes:
        raise PipelineError(f"{proc.host}: {proc.argv[0]} failed (exit {rc}){': ' + last if last else ''}")
    return [f"{proc.host}: {proc.argv[0]}: {last}"] if rc != 0 and last else []


def archive_on(host, fileset: FileSet, dest: Path, codec: Codec, root: str = "/", progress=None) -> FilesOutcome:
    """Archive a file set that lives on `host` (an SSHHost) into `dest` on this machine."""
    t0 = time.monotonic()
    included, missing = expand_on(host, fileset.paths, root)
    if not included:
        return FilesOutcome(None, [], missing, time.monotonic() - t0)
    proc = host.spawn(tar_create_argv("tar", included, root, fileset.excludes))
    try:
        comp = codec.compress()
        result = stream_to_file([comp] if comp else [], dest, progress, source=proc)
    except BaseException:
        proc.kill()
        raise
    warnings = list(result.warnings) + _remote_result(proc, (0, 1))  # 1: file changed as we read it
    return FilesOutcome(result, included, missing, time.monotonic() - t0, warnings)


def existing_on(host, rels: list[str], root: str) -> list[str]:
    """The paths (under root) that exist on `host`."""
    return [full for full in (posixpath.join(root, rel) for rel in rels) if host.exists(full)]


def move_aside_on(host, paths: list[str], root: str, stamp: str | None = None) -> list[tuple[str, str]]:
    """`move_aside` on another host (mv -T, never a shell)."""
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for full in existing_on(host, paths, root):
        to = f"{full}.pre-restore-{stamp}"
        res = host.run(["mv", "-T", "--", full, to])
        if not res.ok:
            raise PipelineError(f"{host.name}: cannot move {full} aside: {mask(res.stderr.strip())}")
        moved.append((f"{host.name}:{full}", f"{host.name}:{to}"))
    return moved


def extract_on(host, path: Path, codec: Codec, root: str, progress=None) -> list[str]:
    """Decompress here, extract with tar on `host` (ownership, modes, ACLs and xattrs kept)."""
    mk = host.run(["mkdir", "-p", "--", root])
    if not mk.ok:
        raise PipelineError(f"{host.name}: cannot create {root}: {mask(mk.stderr.strip())}")
    proc = host.spawn(tar_extract_argv("tar", root))
    try:
        dec = codec.decompress()
        try:
            warnings = stream_from_file(path, [dec] if dec else [], progress, sink=proc)
        except BrokenPipeError:
            warnings = []  # tar on the host stopped reading: its exit status below says why
            if proc.wait() == 0:
                raise PipelineError(f"{host.name}: tar stopped reading the archive early") from None
    except BaseException:
        proc.kill()
        raise
    return warnings + _remote_result(proc, (0,))


def top_paths(included: list[str]) -> list[str]:
    """The archived roots (e.g. etc/keystone), outermost only."""
    out: list[str] = []
    for p in sorted(included, key=len):
        if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in out):
            out.append(p)
    return out
