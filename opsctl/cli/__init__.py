"""The `opsctl` command line: one module per command (Typer sub-apps)."""
