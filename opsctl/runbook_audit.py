"""The runbook audit log (one masked JSON line per run, 0600, locked appends) and the per-host run lock."""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

from opsctl.errors import LockedError, OpsctlError
from opsctl.secrets import mask_obj

def append_audit(path: str | Path, record: Mapping[str, Any]) -> None:
    """Append one masked JSON line; directories created, file mode 0600, locked against concurrent runs."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        line = (json.dumps(mask_obj(dict(record)), default=str, sort_keys=False) + "\n").encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise OpsctlError(f"cannot write the runbook audit log {path}: {exc.strerror}",
                          hint="set runbooks.audit_log in the config to a writable path") from None
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    finally:
        os.close(fd)


class RunLock:
    """One run of a runbook per host at a time (a lock file next to the audit log); dry runs need none."""

    def __init__(self, audit_log: str | Path, book_id: str, host: str):
        safe_host = re.sub(r"[^A-Za-z0-9_.-]", "_", host)
        self.path = Path(audit_log).parent / f".runbook-{book_id}-{safe_host}.lock"
        self.what = f"runbook {book_id} on {host}"
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            raise OpsctlError(f"cannot create the runbook lock {self.path}: {exc.strerror}",
                              hint="set runbooks.audit_log in the config to a writable path") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip()
            os.close(fd)
            raise LockedError(f"{self.what} is already running ({holder or 'another process'})",
                              hint="wait for it to finish; each run is recorded in the audit log") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, user {audit_user()}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def ensure_audit_writable(path: str | Path) -> None:
    """Fail before anything runs when the audit log cannot be written (a run must never go unrecorded)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600))
    except OSError as exc:
        raise OpsctlError(f"cannot write the runbook audit log {path}: {exc.strerror}",
                          hint="set runbooks.audit_log in the config to a writable path") from None


def audit_user() -> str:
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user
