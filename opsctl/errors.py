"""Errors a user can act on: one line plus a hint, mapped to a process exit code by the CLI."""

from __future__ import annotations

# Exit codes. 0-3 are reserved for check results (Nagios: OK, WARNING, CRITICAL, UNKNOWN).
EXIT_USAGE = 64  # EX_USAGE: bad command line
EXIT_DATAERR = 65  # EX_DATAERR: bad input data (corrupt backup, unparsable file)
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a server or host needed is not reachable
EXIT_SOFTWARE = 70  # EX_SOFTWARE: internal error (a bug; run with --debug)
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: try again later (lock held by another run)
EXIT_CONFIG = 78  # EX_CONFIG: configuration invalid
EXIT_INTERRUPTED = 130


class OpsctlError(Exception):
    """An error with a one-line message, an optional hint and an exit code."""

    exit_code = EXIT_SOFTWARE

    def __init__(self, message: str, hint: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(OpsctlError):
    exit_code = EXIT_USAGE


class ConfigError(OpsctlError):
    """Configuration is invalid; `problems` lists every error with its key path."""

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, problems: list[str] | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.problems = problems or []


class DataError(OpsctlError):
    exit_code = EXIT_DATAERR


class UnavailableError(OpsctlError):
    exit_code = EXIT_UNAVAILABLE


class LockedError(OpsctlError):
    exit_code = EXIT_TEMPFAIL
