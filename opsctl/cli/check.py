"""Run health checks (the daily routine); exit code is the worst status (Nagios)."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from opsctl import output, registry
from opsctl.cli.common import state
from opsctl.errors import UsageError
from opsctl.runner import Selection, run_checks


def check(
    ctx: typer.Context,
    role: List[str] = typer.Option([], "--role", "-r", help="Only hosts with this role (repeatable)."),
    host: List[str] = typer.Option([], "--host", "-H", help="Only this host (repeatable)."),
    component: List[str] = typer.Option([], "--component", "-c", help="Only this component (repeatable)."),
    check_ids: List[str] = typer.Option([], "--check", help="Only checks matching this id or glob (repeatable)."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="Routine profile: daily, weekly, or one from config."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or nagios."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show details under each result."),
    list_checks: bool = typer.Option(False, "--list", help="List the available checks and exit."),
) -> None:
    """Run health checks (the daily routine); exit code is the worst status (Nagios)."""
    if fmt not in output.FORMATS:
        raise UsageError(f"unknown format {fmt!r}", hint=f"formats: {', '.join(output.FORMATS)}")
    st = state(ctx)
    checks, plugin_errors = registry.load_checks()
    if list_checks:
        _list(checks, plugin_errors)
        raise typer.Exit(0)
    selection = Selection(tuple(role), tuple(host), tuple(component), tuple(check_ids), profile)
    report = run_checks(checks, st.inventory, st.config, st.catalog, selection, plugin_errors=plugin_errors)
    output.emit(report.results, fmt, sys.stdout, verbose=verbose, plugin_errors=report.plugin_errors, notes=report.notes)
    raise typer.Exit(int(report.status))


def _list(checks, plugin_errors) -> None:
    table = Table("Check", "Scope", "Roles", "Runbook", "Description")
    for c in checks:
        table.add_row(c.id, c.scope, ",".join(sorted(c.roles)) or "all", c.runbook or "", c.description)
    console = Console()
    console.print(table)
    for err in plugin_errors:
        console.print(f"[yellow]warning: {err}[/yellow]")
