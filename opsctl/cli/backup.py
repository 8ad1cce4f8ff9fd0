"""`opsctl backup run|list|verify|prune`: backups of databases and files, per component."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from opsctl.backup import remote as remotemod
from opsctl.backup import retention
from opsctl.backup.progress import Reporter
from opsctl.backup.run import BackupRequest, run_backup
from opsctl.backup.store import Backup, Store
from opsctl.backup.verify import verify as verify_backup
from opsctl.cli.common import state
from opsctl.errors import DataError, UnavailableError, UsageError
from opsctl.secrets import mask, mask_obj

app = typer.Typer(help="Back up databases and files of OpenStack components; list, verify and prune backups.",
                  no_args_is_help=True)


def _out(text: str) -> None:
    typer.echo(mask(text))


def _warn(text: str) -> None:
    typer.echo(mask(f"warning: {text}"), err=True)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    component: List[str] = typer.Option([], "--component", "-c", help="Only this component (repeatable); default backup.components or all."),
    database: List[str] = typer.Option([], "--database", "-d", help="Only this database (repeatable)."),
    no_files: bool = typer.Option(False, "--no-files", help="Databases only."),
    no_databases: bool = typer.Option(False, "--no-databases", help="Files only."),
    physical: Optional[str] = typer.Option(None, "--physical", help="mariabackup too: none, full or incremental (default from config)."),
    kind: str = typer.Option("manual", "--kind", help="Label: manual or scheduled (retention keeps series apart)."),
    root: str = typer.Option("/", "--root", help="File-system root the component paths are read under."),
    host: List[str] = typer.Option([], "--host", "-H", help="Archive file sets on this inventory host (repeatable); "
                                   "default: every inventory host with the component's role, or this machine."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be done; connect to nothing, write nothing."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Take a backup: one compressed dump per database, a tar per file set (from each host that has it),
    a manifest; atomic. A host that cannot be reached is reported and the run exits 69, keeping the rest."""
    if physical not in (None, "none", "full", "incremental"):
        raise UsageError(f"--physical {physical!r}: use none, full or incremental")
    if kind not in ("manual", "scheduled"):
        raise UsageError(f"--kind {kind!r}: use manual or scheduled")
    st = state(ctx)
    req = BackupRequest(list(component), not no_databases, not no_files, physical, kind, dry_run, root, list(database),
                        hosts=list(host))
    outcome = run_backup(st.config, st.catalog, req, Reporter(), inventory=st.inventory if not no_files else None)
    if dry_run:
        for line in outcome.plan:
            _out(f"would run: {line}")
        return
    b = outcome.backup
    if fmt == "json":
        _out(json.dumps(mask_obj({"backup": b.manifest.to_dict(), "path": str(b.path)}), indent=2))
    else:
        _out(f"backup {b.id} {'stored, INCOMPLETE' if outcome.failed else 'complete'}: {len(b.manifest.items)} file(s), {_human(b.manifest.size)}, "
             f"{b.manifest.duration:.1f}s, in {b.path}")
    for w in outcome.warnings:
        if w not in outcome.failed:
            _warn(w)
    if outcome.failed:
        raise UnavailableError(f"backup {b.id} is stored, but incomplete: {'; '.join(outcome.failed)}",
                               hint="fix the host (see 'opsctl check --host NAME') and run the backup again")


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each stored file."),
    remote: bool = typer.Option(False, "--remote", help="List the remote store (backup.remote) instead of the local one."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """List complete backups, oldest first (interrupted ones are never listed)."""
    st = state(ctx)
    if remote:
        where = _remote_of(st.config)
        rows = [(None, m) for m in remotemod.list_remote(where, st.config.backup.remote_ssh)]
    else:
        where = st.config.backup.store
        rows = [(b.path, b.manifest) for b in Store(where).list()]
    if fmt == "json":
        _out(json.dumps(mask_obj([{**({"path": str(p)} if p else {}), **m.to_dict()} for p, m in rows]), indent=2))
        return
    if not rows:
        _out(f"no backups in {where}")
        return
    for _, m in rows:
        _out(f"{m.id}  {m.kind:<11} {_human(m.size):>10}  {m.duration:7.1f}s  {','.join(m.components)}"
             + (f"  ({len(m.warnings)} warning(s))" if m.warnings else ""))
        if verbose:
            for i in m.items:
                origin = f"  from {i.source['host']}" if i.source.get("remote") else ""
                _out(f"    {i.type:<11} {i.component}/{i.name:<20} {_human(i.size):>10}  {i.path}{origin}")


def _remote_of(config) -> str:
    if not config.backup.remote:
        raise UsageError("no remote store configured", hint="set backup.remote (an rsync destination) in the config")
    return config.backup.remote


@app.command("pull")
def pull_cmd(
    ctx: typer.Context,
    backup_ids: List[str] = typer.Argument(None, help="Backup ids, 'latest' (default) or 'all'."),
) -> None:
    """Fetch backups from the remote store into the local one (after a rebuild), checking every checksum
    before the backup is listed; a corrupt copy is refused (exit 65) and nothing is stored."""
    st = state(ctx)
    where = _remote_of(st.config)
    store = Store(st.config.backup.store)
    with store.lock("pull"):
        pulled, present = remotemod.pull(store, where, st.config.backup.remote_ssh, list(backup_ids or ["latest"]))
    for bid in pulled:
        _out(f"pulled {bid} from {where} (checksums verified)")
    for bid in present:
        _out(f"{bid} is already in {store.root}")


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument("latest", help="Backup id (default: the newest)."),
    database: List[str] = typer.Option([], "--database", "-d", help="Only this database (repeatable)."),
    no_load: bool = typer.Option(False, "--checksums-only", help="Only compare file checksums; load nothing."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Check file checksums, load each dump into a throwaway MariaDB and compare table checksums/rows."""
    st = state(ctx)
    backup = Store(st.config.backup.store).get(backup_id)
    report = verify_backup(backup, list(database), not no_load, Reporter())
    if fmt == "json":
        _out(json.dumps({"backup": report.backup_id, "ok": report.ok, "checksum_problems": report.checksum_problems,
                         "databases": [d.__dict__ for d in report.databases]}, indent=2))
    else:
        _out(f"backup {report.backup_id}: files {'OK' if not report.checksum_problems else 'CORRUPT'}")
        for p in report.checksum_problems:
            _out(f"  {p}")
        for d in report.databases:
            status = "OK" if d.ok else "FAILED"
            extra = f", {len(d.not_comparable)} table(s) changed during the dump not compared" if d.not_comparable else ""
            _out(f"  database {d.database}: {status} ({d.tables} tables{extra})" + (f": {d.error}" if d.error else ""))
            for m in d.mismatches:
                _out(f"    {m}")
    if not report.ok:
        raise DataError(f"backup {report.backup_id} failed verification",
                        hint="do not rely on it; take a new backup and investigate the store's disk")


@app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be deleted."),
    remote: bool = typer.Option(False, "--remote", help="Prune the remote store (backup.remote) with the same policy."),
) -> None:
    """Delete backups outside the retention policy (backup.retention); the newest is always kept."""
    st = state(ctx)
    store = Store(st.config.backup.store)
    policy = dict(st.config.backup.retention)
    try:
        retention.decide([], policy)
    except ValueError as exc:
        raise UsageError(f"backup.retention: {exc}") from None
    with store.lock("prune"):
        if remote:
            where, ssh = _remote_of(st.config), st.config.backup.remote_ssh
            backups = [Backup(Path(where) / m.id, m) for m in remotemod.list_remote(where, ssh)]
            delete = lambda b: remotemod.delete_remote(where, ssh, b.id)  # noqa: E731
        else:
            backups, delete = store.list(), store.delete
        for d in retention.decide(backups, policy):
            if d.keep:
                _out(f"keep   {d.backup.id}  ({', '.join(d.reasons)})")
            elif dry_run:
                _out(f"would delete {d.backup.id}")
            else:
                delete(d.backup)
                _out(f"delete {d.backup.id}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup")
