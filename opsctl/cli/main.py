"""Entry point: the Typer app, global options, and the one place errors become exit codes.

Exit codes: 0-3 are check results (OK, WARNING, CRITICAL, UNKNOWN, as Nagios reads them);
64 usage error, 65 bad input data, 69 a needed server/host unavailable, 70 internal error,
75 locked by another run (try later), 78 configuration invalid, 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Optional

import typer

from opsctl import __version__
from opsctl.cli import common
from opsctl.errors import EXIT_INTERRUPTED, EXIT_SOFTWARE, EXIT_USAGE, ConfigError, OpsctlError
from opsctl.secrets import mask

app = typer.Typer(
    name="opsctl", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Operations and diagnostics for OpenStack clouds: check, logs, exporter, backup, restore, runbook.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"opsctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _global(
    ctx: typer.Context,
    config: Optional[str] = typer.Option(None, "--config", envvar="OPSCTL_CONFIG", help="Config file (default /etc/opsctl/opsctl.yaml)."),
    inventory: Optional[str] = typer.Option(None, "--inventory", "-i", help="Inventory: opsctl YAML or kolla-ansible/OSA INI."),
    debug: bool = typer.Option(False, "--debug", help="Debug logging and tracebacks."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    ctx.obj = common.AppState(config_path=config, inventory_path=inventory, debug=debug)
    if config:  # opsctl commands run by this one (runbook steps, scheduled jobs) use the same file
        os.environ["OPSCTL_CONFIG"] = config
    common.setup_logging(debug)


def _register() -> None:
    from opsctl.cli import check, config_cmd, inventory_cmd

    app.command("check", help=check.__doc__)(check.check)
    app.add_typer(inventory_cmd.app, name="inventory")
    app.add_typer(config_cmd.app, name="config")
    for module_name, name in (("logs", "logs"), ("exporter", "exporter"), ("backup", "backup"), ("restore", "restore"),
                              ("runbook", "runbook"), ("schedule", "schedule")):
        _register_optional(module_name, name)


def _register_optional(module_name: str, name: str) -> None:
    """Feature commands live in their own modules; each exposes `register(app)`."""
    import importlib

    try:
        module = importlib.import_module(f"opsctl.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"opsctl.cli.{module_name}":
            return
        raise
    module.register(app)


def _click_class(name: str) -> type[BaseException]:
    """Click's exception classes, whether typer uses click or its vendored copy."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


ClickException = _click_class("ClickException")
ClickUsageError = _click_class("UsageError")


def _err(message: str) -> None:
    typer.echo(mask(message), err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit code (never raises, never calls sys.exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("OPSCTL_DEBUG") == "1"
    try:
        _register_once()
        command = typer.main.get_command(app)
        rv = command.main(args=args, prog_name="opsctl", standalone_mode=False)
    except ClickUsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # help already printed
            return EXIT_USAGE
        hint = f"\nhint: see '{exc.ctx.command_path} --help'" if exc.ctx else ""
        _err(f"error: {exc.format_message()}{hint}")
        return EXIT_USAGE
    except typer.Abort:
        _err("error: aborted")
        return EXIT_INTERRUPTED
    except ClickException as exc:
        _err(f"error: {exc.format_message()}")
        return EXIT_USAGE
    except ConfigError as exc:
        _err(f"error: {exc.message}")
        for problem in exc.problems:
            _err(f"  {problem}")
        if exc.hint:
            _err(f"hint: {exc.hint}")
        return exc.exit_code
    except OpsctlError as exc:
        _err(f"error: {exc.message}")
        if exc.hint:
            _err(f"hint: {exc.hint}")
        if debug:
            _err(traceback.format_exc())
        return exc.exit_code
    except KeyboardInterrupt:
        _err("error: interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            _err(traceback.format_exc())
        text = str(exc).splitlines()[0] if str(exc) else ""
        _err(f"error: internal error: {type(exc).__name__}{': ' + text if text else ''}")
        _err("hint: run again with --debug for the traceback, and report it")
        return EXIT_SOFTWARE
    if isinstance(rv, int):
        return rv
    return 0


_registered = False


def _register_once() -> None:
    global _registered
    if not _registered:
        _register()
        _registered = True


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
