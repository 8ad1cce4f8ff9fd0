"""Optional remote store: each complete backup is pushed with rsync (over ssh, or to a local path).

Data files go first and `manifest.json` last, so a remote copy without its manifest is an incomplete
push (the same rule as the local store). Listing/restoring from the remote is not implemented: fetch
the directory back (rsync) into the local store first.
"""

from __future__ import annotations

from opsctl.backup.proc import Stage, require, run_capture
from opsctl.backup.store import Backup


def push(backup: Backup, destination: str, ssh_argv: list[str]) -> None:
    rsync = require("rsync")
    dest = destination.rstrip("/") + f"/{backup.id}/"
    shell = ["-e", " ".join(ssh_argv)] if ":" in destination else []
    base = [rsync, "--archive", "--partial", *shell]
    run_capture(Stage([*base, "--exclude=manifest.json", f"{backup.path}/", dest]))
    run_capture(Stage([*base, f"{backup.path}/manifest.json", dest]))
