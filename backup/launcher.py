"""A throwaway MariaDB server on a temporary directory and a free port (for `backup verify`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from opsctl.backup.mysql import MySQLTarget
from opsctl.backup.proc import child_env, require
from opsctl.errors import UnavailableError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayMariaDB:
    """mariadb-install-db + mariadbd on a temp dir, root over the socket; removed on exit."""

    def __init__(self, parent: str | None = None, buffer_pool: str = "256M", extra_args: tuple[str, ...] = ()):
        self.parent = parent
        self.extra_args = tuple(extra_args)
        self.buffer_pool = buffer_pool
        self.base: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def socket(self) -> str:
        return str(self.base / "mysqld.sock")

    @property
    def target(self) -> MySQLTarget:
        return MySQLTarget(socket=self.socket, user="root", password=None)

    def start(self, timeout: float = 60) -> "ThrowawayMariaDB":
        server = require("mariadbd", "mysqld")
        install = require("mariadb-install-db", "mysql_install_db")
        self.base = Path(tempfile.mkdtemp(prefix="opsctl-verify-", dir=self.parent))
        data = self.base / "data"
        data.mkdir()
        user = ["--user=root"] if os.geteuid() == 0 else []
        done = subprocess.run([install, "--no-defaults", *user, f"--datadir={data}", "--auth-root-authentication-method=normal",
                               "--skip-test-db"], capture_output=True, text=True, env=child_env())
        if done.returncode != 0:
            self.cleanup()
            raise UnavailableError(f"mariadb-install-db failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [server, "--no-defaults", *user, f"--datadir={data}", f"--socket={self.socket}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--pid-file={self.base / 'mysqld.pid'}", f"--log-error={self.base / 'mysqld.err'}",
             f"--innodb-buffer-pool-size={self.buffer_pool}", "--innodb-flush-log-at-trx-commit=0", "--skip-innodb-doublewrite",
             "--innodb-log-file-size=256M", "--skip-log-bin", "--skip-name-resolve", "--performance-schema=OFF",
             "--max-allowed-packet=1G", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=child_env())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.base / "mysqld.err").read_text(errors="replace").strip().splitlines()[-1:]
                self.cleanup()
                raise UnavailableError(f"throwaway mariadbd exited at start: {err}")
            if os.path.exists(self.socket):
                try:
                    self.target.connect().close()
                    return self
                except UnavailableError:
                    pass
            time.sleep(0.1)
        self.cleanup()
        raise UnavailableError("throwaway mariadbd did not start in time")

    def cleanup(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "ThrowawayMariaDB":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()
