"""Guided repair: list, show and run the runbooks that failing checks point to."""

from __future__ import annotations

import shlex
import sys
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from opsctl import registry
from opsctl import runbook as rb
from opsctl.cli.common import state
from opsctl.errors import UsageError
from opsctl.runbook_audit import RunLock
from opsctl.secrets import mask

app = typer.Typer(help=__doc__, no_args_is_help=True)


def register(main_app: typer.Typer) -> None:
    main_app.add_typer(app, name="runbook")


@app.command("list")
def list_cmd() -> None:
    """List the runbooks and the checks that point to each."""
    table = Table("Runbook", "Title", "Checks")
    for book in rb.load_runbooks().values():
        table.add_row(book.id, book.title, ", ".join(book.checks))
    Console().print(table)


@app.command("show")
def show_cmd(book_id: str = typer.Argument(..., metavar="ID")) -> None:
    """Show a runbook: symptoms, the checks pointing to it, every step with its command."""
    book = rb.get_runbook(book_id)
    echo = typer.echo
    echo(f"{book.id}: {book.title}")
    echo("symptoms:")
    for s in book.symptoms:
        echo(f"  - {s}")
    if book.checks:
        echo(f"checks: {', '.join(book.checks)}")
    if book.role or book.service:
        echo(f"runs on: {book.role or 'any'} host" + (f"; service: {book.service}" if book.service else ""))
    needed = sorted(k for k, v in book.vars.items() if v is None)
    if needed:
        echo(f"needs: {' '.join(f'--set {k}=...' for k in needed)}")
    for n, step in enumerate(book.steps, 1):
        echo(f"\n{n}. {step.kind}: {step.title}")
        if step.run:
            echo(f"   on {step.where}: {shlex.join(step.run)}" + (f"   (for each line of {step.foreach})" if step.foreach else ""))
        elif step.check:
            echo(f"   run check {step.check}")
        elif step.builtin:
            echo(f"   {step.builtin} on {step.where}")
        else:
            echo("   manual step")
        if step.expect:
            echo(f"   expected: {step.expect.describe()}")
        if step.when:
            echo(f"   only if step {step.when.step} {step.when.outcome}")
        if step.note:
            echo(f"   note: {step.note}")
    echo(f"\n{len(book.steps) + 1}. verify: re-run {', '.join(book.verify_checks)} (up to {book.verify.timeout:g}s)")
    for ref in book.references:
        echo(f"see: {ref}")


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    book_id: str = typer.Argument(..., metavar="ID"),
    host: Optional[str] = typer.Option(None, "--host", "-H", help="The host to repair (as `opsctl check` named it)."),
    service: Optional[str] = typer.Option(None, "--service", "-s", help="The service concerned (catalog name, e.g. nova-api)."),
    sets: List[str] = typer.Option([], "--set", help="A runbook variable, KEY=VALUE (repeatable)."),
    check_ids: List[str] = typer.Option([], "--check", help="Re-run this check at the end instead of the runbook's (repeatable)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Run actions without asking."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Run the diagnostics, show the actions without running them."),
    verify_timeout: Optional[float] = typer.Option(None, "--verify-timeout", min=0, help="Seconds to wait for the re-check to pass."),
) -> None:
    """Run a runbook: diagnostics automatically, actions after confirmation, then re-check; exit 0 when repaired."""
    st = state(ctx)
    book = rb.get_runbook(book_id)
    overrides = _parse_sets(sets)
    checks, _errors = registry.load_checks()
    known = {c.id for c in checks}
    unknown = [c for c in check_ids if c not in known]
    if unknown:
        raise UsageError(f"unknown check(s): {', '.join(unknown)}", hint="list them with: opsctl check --list")
    config = st.config
    target, subject = rb.resolve_target(book, st.inventory, host, config.cloud.clouds or ["default"])
    context = rb.Context(config, st.catalog, st.inventory, checks, out=_out, confirm=_confirm, choose=_choose)
    if rb.needs_service(book, service, overrides) or (book.infer_service and not service and not overrides.get("service")):
        service = rb.infer_service(context, book, target, fallback=book.service)
        _out(f"service: {service} (from the failing checks; --service picks another)")
    variables = rb.base_variables(book, config, st.catalog, target, subject, service, overrides)
    timeout = verify_timeout if verify_timeout is not None else config.runbooks.verify_timeout
    engine = rb.Engine(book, context, target, variables, yes=yes, dry_run=dry_run, verify_checks=check_ids or None,
                       verify_timeout=timeout)
    if dry_run:
        outcome = engine.run()
    else:
        with RunLock(config.runbooks.audit_log, book.id, target.name):
            outcome = engine.run()
    raise typer.Exit(outcome.exit_code)


def _parse_sets(sets: List[str]) -> dict[str, str]:
    values = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        values[key] = value
    return values


def _out(line: str) -> None:
    typer.echo(mask(line))
    sys.stdout.flush()


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        raise rb.Declined("an action needs confirmation and stdin is not a terminal", hint="pass --yes to run actions unattended")
    return typer.confirm(prompt, default=False)


def _choose(prompt: str, options: list[str]) -> str | None:
    if not sys.stdin.isatty():
        return None
    answer = typer.prompt(f"{prompt} [{', '.join(options)}]", default="", show_default=False).strip()
    if answer and answer not in options:
        typer.echo(f"  {shlex.quote(answer)} is not one of {', '.join(options)}: stopping")
        return None
    return answer or None
