"""Helpers shared by the backup tests: a config file for a store + database, running the CLI as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

CLI = [sys.executable, "-c", "import sys; from opsctl.cli.main import main; sys.exit(main())"]
PW_ENV = "OPSCTL_BK_TEST_DBPW"


def write_config(path: Path, store: Path, db=None, overrides: dict | None = None, **backup) -> Path:
    cfg: dict = {"backup": {"store": str(store), **backup}}
    if db is not None:
        # the socket: tests/servers.MariaDB's root@127.0.0.1 has no password (install-db made it first)
        cfg["database"] = {"host": "127.0.0.1", "port": db.port, "user": "root", "password": {"env": PW_ENV}}
        if getattr(db, "socket", None):
            cfg["database"]["socket"] = db.socket
    if overrides:
        cfg["components"] = overrides
    path.write_text(yaml.safe_dump(cfg))
    return path


def env_for(db=None) -> dict[str, str]:
    env = dict(os.environ)
    if db is not None:
        env[PW_ENV] = db.password
    env.pop("OPSCTL_CONFIG", None)
    return env


def opsctl(config: Path, *args: str, db=None, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--config", str(config), *args], capture_output=True, text=True, env=env_for(db),
                          input=input, timeout=timeout)


def popen(config: Path, *args: str, db=None) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "--config", str(config), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env_for(db))
