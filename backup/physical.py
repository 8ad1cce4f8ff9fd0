"""Physical backups with mariabackup: full, or incremental on a full (by LSN), streamed as mbstream
through compression; restore = extract + prepare (+ apply incrementals) into a directory, and optionally
into the server's datadir: only while no server uses it, the old datadir moved aside (kept), the prepared
files put in place with `mariabackup --move-back`, ownership taken from the old datadir."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from opsctl.backup.compression import Codec
from opsctl.backup.mysql import MySQLTarget
from opsctl.backup.proc import Stage, StreamResult, require, run_capture, stream_from_file, stream_to_file
from opsctl.errors import LockedError, UsageError


@dataclass
class PhysicalOutcome:
    result: StreamResult
    mode: str
    from_lsn: int | None
    to_lsn: int | None
    duration: float


def read_checkpoints(text: str) -> dict[str, str]:
    return dict(m.groups() for m in re.finditer(r"^(\w+)\s*=\s*(\S+)\s*$", text, re.M))


def backup(target: MySQLTarget, datadir: str, dest: Path, codec: Codec, incremental_lsn: int | None = None,
           progress=None) -> PhysicalOutcome:
    """Stream a mariabackup (full, or incremental from `incremental_lsn`) to `dest`."""
    t0 = time.monotonic()
    tool = require("mariabackup")
    lsndir = Path(tempfile.mkdtemp(prefix="opsctl-lsn-"))
    try:
        argv = [tool, "--defaults-extra-file={fd}", "--backup", "--stream=mbstream", f"--datadir={datadir}",
                f"--extra-lsndir={lsndir}", f"--target-dir={lsndir}", *target.connection_args()]
        if incremental_lsn is not None:
            argv.append(f"--incremental-lsn={incremental_lsn}")
        stages = [Stage(argv, secret=target.mariabackup_file())]
        comp = codec.compress()
        result = stream_to_file(stages + ([comp] if comp else []), dest, progress)
        cp = read_checkpoints((lsndir / "xtrabackup_checkpoints").read_text())
        return PhysicalOutcome(result, "incremental" if incremental_lsn is not None else "full",
                               int(cp.get("from_lsn", 0)), int(cp.get("to_lsn", 0)), time.monotonic() - t0)
    finally:
        shutil.rmtree(lsndir, ignore_errors=True)


def extract(path: Path, codec: Codec, target_dir: Path) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    dec = codec.decompress()
    stream_from_file(path, ([dec] if dec else []) + [Stage([require("mbstream"), "-x", "-C", str(target_dir)])])


def prepare(chain: list[tuple[Path, Codec]], target_dir: Path) -> None:
    """Extract the full backup and apply each incremental in order: `target_dir` is ready for --copy-back."""
    if not chain:
        raise UsageError("nothing to prepare")
    if target_dir.exists() and any(target_dir.iterdir()):
        raise UsageError(f"{target_dir} is not empty", hint="give an empty or new directory with --target")
    tool = require("mariabackup")
    full, codec = chain[0]
    extract(full, codec, target_dir)
    run_capture(Stage([tool, "--prepare", f"--target-dir={target_dir}"]))
    for i, (inc, inc_codec) in enumerate(chain[1:], 1):
        inc_dir = target_dir.parent / f".{target_dir.name}.inc{i}"
        try:
            extract(inc, inc_codec, inc_dir)
            run_capture(Stage([tool, "--prepare", f"--target-dir={target_dir}", f"--incremental-dir={inc_dir}"]))
        finally:
            shutil.rmtree(inc_dir, ignore_errors=True)


def server_datadir(target: MySQLTarget) -> str:
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@datadir")
            return cur.fetchone()[0]
    finally:
        conn.close()


def server_using(datadir: Path) -> str | None:
    """Why a server is using `datadir` (None: none is). A running InnoDB holds a lock on ibdata1; a server
    process also has the datadir as its working directory."""
    import psutil

    real = datadir.resolve()
    for proc in psutil.process_iter(["name", "cwd", "pid"]):
        name = proc.info.get("name") or ""
        if name in ("mariadbd", "mysqld") and proc.info.get("cwd") and Path(proc.info["cwd"]).resolve() == real:
            return f"{name} (pid {proc.info['pid']}) runs on it"
    ibdata = datadir / "ibdata1"
    if ibdata.exists():
        with open(ibdata, "rb+") as fh:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return "ibdata1 is locked by a running server"
            fcntl.lockf(fh, fcntl.LOCK_UN)
    return None


def require_unused(datadir: Path) -> None:
    why = server_using(datadir)
    if why:
        raise LockedError(f"MariaDB is still using {datadir}: {why}",
                          hint="stop MariaDB on this node first (on a Galera node: and let it leave the cluster)")


def restore_into_datadir(prepared: Path, datadir: Path, stamp: str) -> Path:
    """Replace `datadir` by the prepared backup; returns where the previous datadir was kept.

    Refuses while a server uses the datadir. The previous datadir is renamed (never deleted), a new empty
    one gets its owner and mode, and `mariabackup --move-back` puts the files in place."""
    require_unused(datadir)
    tool = require("mariabackup")
    kept = datadir.with_name(f"{datadir.name}.pre-restore-{stamp}")
    owner = None
    if datadir.exists():
        st = datadir.stat()
        owner = (st.st_uid, st.st_gid, st.st_mode & 0o7777)
        os.rename(datadir, kept)
    datadir.mkdir(mode=0o750)
    try:
        run_capture(Stage([tool, "--move-back", f"--target-dir={prepared}", f"--datadir={datadir}"]))
    except BaseException:
        shutil.rmtree(datadir, ignore_errors=True)
        if kept.exists():
            os.rename(kept, datadir)  # put the old one back: nothing changed
        raise
    if owner is not None:
        uid, gid, mode = owner
        os.chmod(datadir, mode)
        for root, dirs, files in os.walk(datadir):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.lchown(name, uid, gid)
    shutil.rmtree(prepared, ignore_errors=True)
    return kept
