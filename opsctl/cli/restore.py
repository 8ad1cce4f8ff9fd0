"""`opsctl restore`: a database, a component or file sets from a backup; keeps what it replaces."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from opsctl.backup.progress import Reporter
from opsctl.backup.restore import RestoreRequest, restore
from opsctl.cli.common import state
from opsctl.errors import UsageError
from opsctl.secrets import mask


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(f"restore would {question.rstrip('?')} and stdin is not a terminal to ask",
                         hint="pass --yes to confirm")
    return typer.confirm(mask(question), default=False)


def restore_cmd(
    ctx: typer.Context,
    backup_id: str = typer.Argument("latest", help="Backup id (default: the newest)."),
    database: Optional[str] = typer.Option(None, "--database", "-d", help="Restore this database."),
    component: Optional[str] = typer.Option(None, "--component", "-c", help="Restore this component (databases and files)."),
    files: Optional[str] = typer.Option(None, "--files", help="Restore file set(s): config, keys, rings, state, images or all."),
    physical: Optional[str] = typer.Option(None, "--physical", help="Prepare the mariabackup (and incrementals) into this directory."),
    physical_datadir: Optional[str] = typer.Option(None, "--physical-datadir", help="Prepare, then replace this stopped "
                                                   "server's datadir with it (the old one is kept)."),
    root: str = typer.Option("/", "--root", help="Extract files under this root instead of /."),
    host: Optional[str] = typer.Option(None, "--host", "-H", help="Only file sets archived on this host; "
                                       "file sets always go back to the host they came from (over SSH)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show what would be done; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before overwriting."),
    no_keep: bool = typer.Option(False, "--no-keep", help="Do not keep what is replaced (no safety dump, no move aside)."),
) -> None:
    """Restore from a backup after verifying its checksums (a corrupt backup is refused, exit 65)."""
    st = state(ctx)
    if physical and physical_datadir:
        raise UsageError("--physical and --physical-datadir: give one")
    req = RestoreRequest(backup_id, component, database, files, physical, physical_datadir, root, host, dry_run, yes,
                         not no_keep)
    outcome = restore(st.config, req, _confirm, Reporter(), inventory=lambda: st.inventory)
    for line in outcome.actions:
        typer.echo(mask(line))
    for line in outcome.kept:
        typer.echo(mask(f"kept: {line}"))
    for w in outcome.warnings:
        typer.echo(mask(f"warning: {w}"), err=True)


def register(app: typer.Typer) -> None:
    app.command("restore", help=restore_cmd.__doc__)(restore_cmd)
