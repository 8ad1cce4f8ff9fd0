"""Optional remote store, over rsync (ssh, or a local/mounted path).

Push: each complete backup is copied after the run, data files first and `manifest.json` last, so a
remote copy without its manifest is an incomplete push (the same rule as the local store) and is never
listed. Pull (disaster recovery, e.g. the backup host was rebuilt): the backup is fetched into the
store's in-progress area, every file is checked against the manifest's sha256, and only then renamed
into the store, so a failed or corrupt pull never shows up in `backup list`. Prune applies the local
retention policy to the remote copies, deleting each manifest before its data.
"""

from __future__ import annotations

import os
import posixpath
import shlex
import shutil
import tempfile
from pathlib import Path

from opsctl.backup.fsutil import fsync_dir, fsync_tree
from opsctl.backup.proc import Stage, require, run_capture
from opsctl.backup.store import ID_RE, INPROGRESS, Backup, Manifest, Store, read_manifest, require_intact
from opsctl.errors import DataError, UsageError


def _base(destination: str, ssh_argv: list[str]) -> list[str]:
    rsync = require("rsync")
    shell = ["-e", " ".join(ssh_argv)] if ":" in destination else []
    return [rsync, "--archive", "--partial", *shell]


def push(backup: Backup, destination: str, ssh_argv: list[str]) -> None:
    dest = destination.rstrip("/") + f"/{backup.id}/"
    base = _base(destination, ssh_argv)
    run_capture(Stage([*base, "--exclude=manifest.json", f"{backup.path}/", dest]))
    run_capture(Stage([*base, f"{backup.path}/manifest.json", dest]))


def list_remote(destination: str, ssh_argv: list[str]) -> list[Manifest]:
    """Complete backups on the remote, oldest first (only their manifests are fetched)."""
    base = _base(destination, ssh_argv)
    with tempfile.TemporaryDirectory(prefix="opsctl-remote-") as tmp:
        run_capture(Stage([*base, "--include=/*/", "--include=/*/manifest.json", "--exclude=*",
                           destination.rstrip("/") + "/", tmp + "/"]))
        out = []
        for d in Path(tmp).iterdir():
            if ID_RE.match(d.name) and d.is_dir():
                m = read_manifest(d)
                if m is not None and m.status == "complete" and m.id == d.name:
                    out.append(m)
    return sorted(out, key=lambda m: (m.created, m.id))


def pull(store: Store, destination: str, ssh_argv: list[str], wanted: list[str], progress=None) -> tuple[list[str], list[str]]:
    """Fetch remote backups into the local store (caller holds the store lock): (pulled ids, already there).

    `wanted`: ids, "latest", or "all"."""
    remote = list_remote(destination, ssh_argv)
    if not remote:
        raise UsageError(f"no complete backup on the remote store {destination}")
    by_id = {m.id: m for m in remote}
    if "all" in wanted:
        ids = [m.id for m in remote]
    else:
        ids = []
        for w in wanted or ["latest"]:
            bid = remote[-1].id if w == "latest" else w
            if bid not in by_id:
                raise UsageError(f"no complete backup {w!r} on the remote store {destination}",
                                 hint="see 'opsctl backup list --remote'")
            ids.append(bid)
    have = {b.id for b in store.list()}
    pulled, present = [], []
    base = _base(destination, ssh_argv)
    for bid in ids:
        if bid in have:
            present.append(bid)
            continue
        store.ensure()
        work = store.root / INPROGRESS / bid
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=0o700)
        try:
            src = destination.rstrip("/") + f"/{bid}/"
            run_capture(Stage([*base, f"{src}", f"{work}/"]))
            manifest = read_manifest(work)
            if manifest is None or manifest.id != bid or manifest.status != "complete":
                raise DataError(f"remote backup {bid}: its manifest is missing or not complete")
            require_intact(Backup(work, manifest), progress=progress, what="remote backup",
                           hint="pull another backup (see 'opsctl backup list --remote'); nothing was stored")
            fsync_tree(work)
            os.rename(work, store.root / bid)
            fsync_dir(store.root)
            pulled.append(bid)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return pulled, present


def _split(destination: str) -> tuple[str | None, str]:
    """rsync's rule: `host:path` is remote (over the shell), a path without a colon is local."""
    if ":" in destination and not destination.startswith(("/", ".")):
        host, path = destination.split(":", 1)
        return host, path
    return None, destination


def delete_remote(destination: str, ssh_argv: list[str], backup_id: str) -> None:
    """Delete one backup from the remote store: its manifest first, so a half-deleted backup is never listed."""
    if not ID_RE.match(backup_id):
        raise UsageError(f"not a backup id: {backup_id!r}")
    host, path = _split(destination)
    target = posixpath.join(path, backup_id)
    if host is None:
        try:
            os.remove(os.path.join(target, "manifest.json"))
        except FileNotFoundError:
            pass
        shutil.rmtree(target, ignore_errors=True)
        return
    for argv in (["rm", "-f", "--", f"{target}/manifest.json"], ["rm", "-rf", "--", target]):
        # ssh hands the remote shell one command line: every word quoted
        run_capture(Stage([*ssh_argv, host, "--", shlex.join(argv)]))
