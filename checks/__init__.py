"""Built-in checks, one module per component; each module exports CHECKS (entry point group opsctl.checks)."""
