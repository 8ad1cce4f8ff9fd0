"""`python -m opsctl` runs the CLI."""

from opsctl.cli.main import run

run()
