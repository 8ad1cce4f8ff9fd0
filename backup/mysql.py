"""Logical MySQL/MariaDB backups: one `mariadb-dump --single-transaction` per database, streamed through
compression; Galera-aware node choice; table checksums and row counts recorded at dump time."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pymysql

from opsctl.backup.compression import Codec
from opsctl.backup.proc import Stage, StreamResult, require, stream_from_file, stream_to_file
from opsctl.errors import DataError, UnavailableError

log = logging.getLogger(__name__)
SYSTEM_DATABASES = {"mysql", "information_schema", "performance_schema", "sys"}


@dataclass(frozen=True)
class MySQLTarget:
    """Where and how to connect. The password is never shown (repr) nor put in argv/env."""

    host: str = "127.0.0.1"
    port: int = 3306
    socket: str | None = None
    user: str = "root"
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0

    @property
    def label(self) -> str:
        return self.socket if self.socket else f"{self.host}:{self.port}"

    def defaults_file(self) -> str:
        """A [client] option file, handed to mariadb tools through /dev/fd/N."""
        lines = ["[client]", f"user={self.user}"]
        if self.password is not None:
            escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'password="{escaped}"')
        if self.socket:
            lines.append(f"socket={self.socket}")
        else:
            lines += [f"host={self.host}", f"port={self.port}", "protocol=TCP"]
        return "\n".join(lines) + "\n"

    def mariabackup_file(self) -> str:
        """Option file for mariabackup (it reads its own group; connection options go on argv)."""
        lines = ["[mariabackup]", f"user={self.user}"]
        if self.password is not None:
            escaped = self.password.replace("\\", "\\\\").replace('"', '\\"')
            lines.append(f'password="{escaped}"')
        return "\n".join(lines) + "\n"

    def connection_args(self) -> list[str]:
        return [f"--socket={self.socket}"] if self.socket else [f"--host={self.host}", f"--port={self.port}"]

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        kwargs: dict[str, Any] = dict(user=self.user, password=self.password or "", database=database,
                                      connect_timeout=self.connect_timeout, autocommit=True, charset="utf8mb4")
        if self.socket:
            kwargs["unix_socket"] = self.socket
        else:
            kwargs.update(host=self.host, port=self.port)
        try:
            return pymysql.connect(**kwargs)
        except pymysql.err.OperationalError as exc:
            raise UnavailableError(f"cannot connect to MySQL at {self.label}: {exc.args[-1]}",
                                   hint="check the database section of the config and that the server runs") from None


def target_from_config(section, host: str | None = None, port: int | None = None) -> MySQLTarget:
    """The `database` config section (optionally another Galera node) as a MySQLTarget."""
    password = section.password.resolve("database.password") if section.password else None
    if host is not None:
        return MySQLTarget(host, port or section.port, None, section.user, password, section.connect_timeout)
    return MySQLTarget(section.host, section.port, section.socket, section.user, password, section.connect_timeout)


# ----------------------------------------------------------------------------- galera
@dataclass(frozen=True)
class GaleraState:
    enabled: bool
    state: str = ""  # wsrep_local_state_comment: Synced, Donor/Desynced, Joining...
    cluster_status: str = ""  # Primary / non-Primary
    cluster_size: int = 0
    ready: bool = False

    @property
    def usable(self) -> bool:
        return not self.enabled or (self.state == "Synced" and self.cluster_status == "Primary" and self.ready)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def galera_state(conn) -> GaleraState:
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep%'")
        status = {k: v for k, v in cur.fetchall()}
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")
        on = dict(cur.fetchall()).get("wsrep_on", "OFF")
    if on != "ON" or not status:
        return GaleraState(False)
    return GaleraState(True, status.get("wsrep_local_state_comment", ""), status.get("wsrep_cluster_status", ""),
                       int(status.get("wsrep_cluster_size", 0) or 0), status.get("wsrep_ready", "OFF") == "ON")


def choose_node(candidates: list[tuple[MySQLTarget, GaleraState | Exception]], writer: MySQLTarget) -> tuple[MySQLTarget, GaleraState]:
    """Prefer a Synced node that is not the writer (the one clients use); the writer only if none is."""
    usable = [(t, s) for t, s in candidates if isinstance(s, GaleraState) and s.usable]
    for target, state in usable:
        if target.label != writer.label:
            return target, state
    if usable:
        return usable[0]
    reasons = "; ".join(f"{t.label}: {s if isinstance(s, Exception) else 'wsrep state ' + (s.state or '?') + '/' + (s.cluster_status or '?')}"
                        for t, s in candidates)
    raise UnavailableError(f"no usable database node to back up from ({reasons})",
                           hint="a Galera node must be Synced in the Primary component; see runbook galera-not-synced")


def probe(target: MySQLTarget) -> GaleraState:
    conn = target.connect()
    try:
        return galera_state(conn)
    finally:
        conn.close()


# ----------------------------------------------------------------------------- catalog of databases
def list_databases(target: MySQLTarget) -> list[str]:
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return sorted(r[0] for r in cur.fetchall())
    finally:
        conn.close()


def table_stats(conn, database: str, snapshot: bool = True) -> dict[str, dict[str, Any]]:
    """Row count and CHECKSUM TABLE per base table, read in one consistent snapshot when `snapshot`."""
    stats: dict[str, dict[str, Any]] = {}
    with conn.cursor() as cur:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema=%s AND table_type='BASE TABLE' "
                    "ORDER BY table_name", (database,))
        tables = [r[0] for r in cur.fetchall()]
        if snapshot:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            for t in tables:
                q = f"`{database.replace('`', '``')}`.`{t.replace('`', '``')}`"
                cur.execute(f"SELECT COUNT(*) FROM {q}")
                rows = cur.fetchone()[0]
                cur.execute(f"CHECKSUM TABLE {q}")
                checksum = cur.fetchone()[1]
                stats[t] = {"rows": int(rows), "checksum": None if checksum is None else int(checksum)}
        finally:
            if snapshot:
                cur.execute("COMMIT")
    return stats


# ----------------------------------------------------------------------------- dump / load
DUMP_OPTIONS = ["--single-transaction", "--skip-lock-tables", "--quick", "--routines", "--triggers", "--events",
                "--hex-blob", "--default-character-set=utf8mb4", "--max-allowed-packet=1G"]


def dump_tool() -> str:
    return require("mariadb-dump", "mysqldump")


def client_tool() -> str:
    return require("mariadb", "mysql")


def dump_stages(target: MySQLTarget, database: str, codec: Codec) -> list[Stage]:
    dump = Stage([dump_tool(), "--defaults-extra-file={fd}", *DUMP_OPTIONS, "--databases", database],
                 secret=target.defaults_file())
    comp = codec.compress()
    return [dump] + ([comp] if comp else [])


def load_stages(target: MySQLTarget, codec: Codec) -> list[Stage]:
    client = Stage([client_tool(), "--defaults-extra-file={fd}", "--default-character-set=utf8mb4",
                    "--max-allowed-packet=1G", "--batch"], secret=target.defaults_file())
    dec = codec.decompress()
    return ([dec] if dec else []) + [client]


@dataclass
class DumpOutcome:
    result: StreamResult
    tables: dict[str, dict[str, Any]]
    galera_before: GaleraState
    galera_after: GaleraState
    duration: float
    warnings: list[str]


def dump_database(target: MySQLTarget, database: str, codec: Codec, dest, checksums: bool = True,
                  progress: Callable[[int], None] | None = None) -> DumpOutcome:
    """Dump one database to `dest`; checksums read in a snapshot taken before the dump and again after it.

    A table whose checksum is the same before and after is marked `stable`: the dump must hold exactly
    those rows, so `verify` can compare it. Tables written to during the dump are marked not stable."""
    t0 = time.monotonic()
    conn = target.connect()
    warnings: list[str] = []
    try:
        before_state = galera_state(conn)
        if not before_state.usable:
            raise UnavailableError(f"{target.label} is not a usable Galera node ({before_state.state}/{before_state.cluster_status})",
                                   hint="back up from a Synced node; see runbook galera-not-synced")
        before: dict[str, dict[str, Any]] = {}
        errors: list[BaseException] = []
        thread = None
        if checksums:
            # the snapshot starts before the dump's own snapshot; read it while the dump runs
            cconn = target.connect()
            with cconn.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

            def read_before():
                try:
                    before.update(table_stats(cconn, database, snapshot=False))
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)
                finally:
                    cconn.close()

            thread = threading.Thread(target=read_before, daemon=True)
            thread.start()
        result = stream_to_file(dump_stages(target, database, codec), dest, progress)
        if thread:
            thread.join()
            if errors:
                raise errors[0]
        tables = before
        if checksums:
            after = table_stats(conn, database, snapshot=False)
            for name, info in tables.items():
                info["stable"] = after.get(name) == {"rows": info["rows"], "checksum": info["checksum"]}
        after_state = galera_state(conn)
        if before_state.enabled and not after_state.usable:
            warnings.append(f"{target.label}: Galera state changed to {after_state.state}/{after_state.cluster_status} during the dump")
        warnings.extend(result.warnings)
        return DumpOutcome(result, tables, before_state, after_state, time.monotonic() - t0, warnings)
    finally:
        conn.close()


def database_exists(target: MySQLTarget, database: str) -> bool:
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name=%s", (database,))
            return cur.fetchone()[0] > 0
    finally:
        conn.close()


def drop_database(target: MySQLTarget, database: str) -> None:
    conn = target.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database.replace('`', '``')}`")
    finally:
        conn.close()


def load_dump(target: MySQLTarget, path, codec: Codec, progress=None) -> list[str]:
    """Pipe a stored dump (decompressed) into the server; the dump creates its database itself."""
    return stream_from_file(path, load_stages(target, codec), progress)


def compare_stats(recorded: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(mismatches, not comparable) between recorded table stats and those of a restored copy."""
    bad, skipped = [], []
    for table, info in sorted(recorded.items()):
        got = actual.get(table)
        if got is None:
            bad.append(f"{table}: missing after restore")
            continue
        if not info.get("stable", True):
            skipped.append(table)
            continue
        if got["rows"] != info["rows"]:
            bad.append(f"{table}: {got['rows']} rows, {info['rows']} recorded")
        elif got["checksum"] != info["checksum"]:
            bad.append(f"{table}: checksum {got['checksum']} != {info['checksum']} recorded")
    for table in sorted(set(actual) - set(recorded)):
        bad.append(f"{table}: not in the backup's table list")
    return bad, skipped


def check_dump_nonempty(path) -> None:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty dump")
