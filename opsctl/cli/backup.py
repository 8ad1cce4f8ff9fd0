"""`opsctl backup run|list|verify|prune`: backups of databases and files, per component."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from opsctl.backup import retention
from opsctl.backup.progress import Reporter
from opsctl.backup.run import BackupRequest, run_backup
from opsctl.backup.store import Store
from opsctl.backup.verify import verify as verify_backup
from opsctl.cli.common import state
from opsctl.errors import DataError, UsageError
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
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be done; connect to nothing, write nothing."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Take a backup: one compressed dump per database, a tar per file set, a manifest; atomic."""
    if physical not in (None, "none", "full", "incremental"):
        raise UsageError(f"--physical {physical!r}: use none, full or incremental")
    if kind not in ("manual", "scheduled"):
        raise UsageError(f"--kind {kind!r}: use manual or scheduled")
    st = state(ctx)
    req = BackupRequest(list(component), not no_databases, not no_files, physical, kind, dry_run, root, list(database))
    outcome = run_backup(st.config, st.catalog, req, Reporter())
    if dry_run:
        for line in outcome.plan:
            _out(f"would run: {line}")
        return
    b = outcome.backup
    if fmt == "json":
        _out(json.dumps(mask_obj({"backup": b.manifest.to_dict(), "path": str(b.path)}), indent=2))
    else:
        _out(f"backup {b.id} complete: {len(b.manifest.items)} file(s), {_human(b.manifest.size)}, "
             f"{b.manifest.duration:.1f}s, in {b.path}")
    for w in outcome.warnings:
        _warn(w)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show each stored file."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """List complete backups, oldest first (interrupted ones are never listed)."""
    st = state(ctx)
    backups = Store(st.config.backup.store).list()
    if fmt == "json":
        _out(json.dumps(mask_obj([{"path": str(b.path), **b.manifest.to_dict()} for b in backups]), indent=2))
        return
    if not backups:
        _out(f"no backups in {st.config.backup.store}")
        return
    for b in backups:
        m = b.manifest
        _out(f"{b.id}  {m.kind:<11} {_human(m.size):>10}  {m.duration:7.1f}s  {','.join(m.components)}"
             + (f"  ({len(m.warnings)} warning(s))" if m.warnings else ""))
        if verbose:
            for i in m.items:
                _out(f"    {i.type:<11} {i.component}/{i.name:<20} {_human(i.size):>10}  {i.path}")


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
        decisions = retention.decide(store.list(), policy)
        for d in decisions:
            if d.keep:
                _out(f"keep   {d.backup.id}  ({', '.join(d.reasons)})")
            elif dry_run:
                _out(f"would delete {d.backup.id}")
            else:
                store.delete(d.backup)
                _out(f"delete {d.backup.id}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backup")
