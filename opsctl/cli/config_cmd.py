"""`opsctl config validate|show`: check the configuration file, all errors at once."""

from __future__ import annotations

import fnmatch

import typer
import yaml

from opsctl import registry
from opsctl.cli.common import state
from opsctl.errors import ConfigError
from opsctl.secrets import mask

app = typer.Typer(help="Validate and show the configuration.", no_args_is_help=True)


@app.command("validate")
def validate(ctx: typer.Context) -> None:
    """Validate the config (schema, check ids, inventory); print every problem with its key path."""
    st = state(ctx)
    cfg = st.config  # raises ConfigError with all schema problems
    checks, _ = registry.load_checks()
    ids = {c.id for c in checks}
    problems = []
    for check_id in cfg.checks.thresholds:
        if check_id not in ids:
            problems.append(f"checks.thresholds.{check_id}: no such check")
    for i, pattern in enumerate(cfg.checks.disabled):
        if not any(fnmatch.fnmatchcase(c, pattern) for c in ids):
            problems.append(f"checks.disabled.{i}: {pattern!r} matches no check")
    for name, patterns in cfg.checks.profiles.items():
        for i, pattern in enumerate(patterns):
            if not any(fnmatch.fnmatchcase(c, pattern) for c in ids):
                problems.append(f"checks.profiles.{name}.{i}: {pattern!r} matches no check")
    if problems:
        raise ConfigError(f"{st.config_file}: {len(problems)} configuration error(s)", problems)
    inventory = st.inventory
    where = st.config_file or "defaults (no config file)"
    typer.echo(f"config OK: {where}; inventory: {len(inventory.hosts)} host(s) from {inventory.source}")


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective configuration (defaults filled in, secrets as references)."""
    cfg = state(ctx).config
    typer.echo(mask(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)), nl=False)
