"""MariaDB/MySQL: reachable, connections vs max_connections, Galera cluster state (config section `database`)."""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

from opsctl.checkdef import CheckContext, check
from opsctl.config import DatabaseSection
from opsctl.errors import UnavailableError
from opsctl.results import Result, Status, threshold_status

DAILY = ("daily", "weekly")


def server_label(cfg: DatabaseSection) -> str:
    """How results name the server: its address, or 'localhost' for a socket."""
    return "localhost" if cfg.socket else cfg.host


def _where(cfg: DatabaseSection) -> str:
    return f"socket {cfg.socket}" if cfg.socket else f"{cfg.host}:{cfg.port}"


def connect(cfg: DatabaseSection) -> Any:
    """A PyMySQL connection with bounded connect/read/write timeouts; UnavailableError with the reason."""
    import pymysql

    timeout = cfg.connect_timeout
    kwargs: dict[str, Any] = {"user": cfg.user, "connect_timeout": timeout, "read_timeout": max(timeout, 10),
                              "write_timeout": max(timeout, 10), "autocommit": True}
    if cfg.socket:
        kwargs["unix_socket"] = cfg.socket
    else:
        kwargs.update(host=cfg.host, port=cfg.port)
    if cfg.password is not None:
        kwargs["password"] = cfg.password.resolve("database.password")
    try:
        return pymysql.connect(**kwargs)
    except (pymysql.MySQLError, OSError) as exc:
        raise UnavailableError(f"MariaDB at {_where(cfg)} unreachable: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return f"({args[0]}) {str(args[1]).splitlines()[0]}"
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")


def query_pairs(conn: Any, sql: str) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute(sql)
        return {str(k): "" if v is None else str(v) for k, v in cur.fetchall()}


@check("mysql.reachable", needs=("db",), scope="global", runbook="mariadb-down", profiles=DAILY,
       thresholds={"latency_warning": 1.0, "latency_critical": 3.0},
       remediation="Start MariaDB on the database host and read its error log (disk full, crashed tables, "
                   "Galera quorum lost); every OpenStack service fails without it.")
def reachable(ctx: CheckContext) -> Iterable[Result]:
    """The database server accepts a connection and answers a query in time."""
    cfg = ctx.config.database
    host = server_label(cfg)
    t0 = time.monotonic()
    try:
        conn = connect(cfg)
    except UnavailableError as exc:
        yield ctx.critical(exc.message, host=host, metrics={"up": 0})
        return
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = cur.fetchone()[0]
        status_vars = query_pairs(conn, "SHOW GLOBAL STATUS LIKE 'Uptime'")
    finally:
        conn.close()
    seconds = time.monotonic() - t0
    metrics = {"up": 1, "latency_seconds": round(seconds, 4), "uptime_seconds": float(status_vars.get("Uptime") or 0)}
    status = threshold_status(seconds, ctx.thresholds.get("latency_warning"), ctx.thresholds.get("latency_critical"))
    yield ctx.result(status, f"MariaDB {version} at {_where(cfg)} answered in {seconds:.2f}s", host=host, metrics=metrics)


@check("mysql.connections", needs=("db",), scope="global", runbook="mariadb-connections", profiles=DAILY,
       thresholds={"warning": 80, "critical": 90},
       remediation="Find who holds the connections (SHOW PROCESSLIST; per-service pool sizes: max_pool_size, "
                   "max_overflow, worker counts) and raise max_connections if the load is legitimate.")
def connections(ctx: CheckContext) -> Iterable[Result]:
    """Connections in use against max_connections (percent thresholds)."""
    cfg = ctx.config.database
    conn = connect(cfg)  # unreachable: UNKNOWN here, mysql.reachable is CRITICAL
    try:
        status_vars = query_pairs(conn, "SHOW GLOBAL STATUS WHERE Variable_name IN "
                                        "('Threads_connected', 'Max_used_connections', 'Aborted_connects')")
        variables = query_pairs(conn, "SHOW GLOBAL VARIABLES LIKE 'max_connections'")
    finally:
        conn.close()
    yield evaluate_connections(ctx, status_vars, variables, server_label(cfg))


def evaluate_connections(ctx: CheckContext, status_vars: Mapping[str, str], variables: Mapping[str, str],
                         host: str) -> Result:
    used = int(status_vars.get("Threads_connected") or 0)
    peak = int(status_vars.get("Max_used_connections") or 0)
    limit = int(variables.get("max_connections") or 0)
    pct = 100.0 * used / limit if limit else 0.0
    metrics = {"connections": used, "max_connections": limit, "max_used_connections": peak,
               "connections_percent": round(pct, 1)}
    if "Aborted_connects" in status_vars:
        metrics["aborted_connects"] = int(status_vars["Aborted_connects"] or 0)
    status = threshold_status(pct, ctx.thresholds.get("warning"), ctx.thresholds.get("critical"))
    return ctx.result(status, f"{used}/{limit} connections in use ({pct:.0f}%), peak {peak}", host=host, metrics=metrics)


@check("mysql.galera", needs=("db",), scope="global", runbook="galera-not-synced", profiles=DAILY,
       remediation="Check every Galera node's wsrep status and error log; a non-Primary component has lost quorum "
                   "(see the runbook before bootstrapping); a node not Synced is joining or desynced.")
def galera(ctx: CheckContext) -> Iterable[Result]:
    """Galera: Primary component, node Synced, wsrep ready/connected, cluster size as expected."""
    cfg = ctx.config.database
    conn = connect(cfg)  # unreachable: UNKNOWN here, mysql.reachable is CRITICAL
    try:
        status_vars = query_pairs(conn, "SHOW GLOBAL STATUS LIKE 'wsrep%'")
        variables = query_pairs(conn, "SHOW GLOBAL VARIABLES LIKE 'wsrep_on'")
    finally:
        conn.close()
    yield evaluate_galera(ctx, status_vars, variables, cfg.galera_expected_size, server_label(cfg))


def evaluate_galera(ctx: CheckContext, status_vars: Mapping[str, str], variables: Mapping[str, str],
                    expected: int | None, host: str) -> Result:
    if variables.get("wsrep_on", "OFF").upper() != "ON" or "wsrep_cluster_status" not in status_vars:
        if expected:
            return ctx.critical(f"not a Galera node (wsrep_on={variables.get('wsrep_on', 'absent')}) but "
                                f"database.galera_expected_size is {expected}", host=host)
        return ctx.ok("not a Galera node (wsrep off): nothing to check", host=host)
    cluster_status = status_vars.get("wsrep_cluster_status", "")
    state = status_vars.get("wsrep_local_state_comment", "")
    ready = status_vars.get("wsrep_ready", "").upper()
    connected = status_vars.get("wsrep_connected", "").upper()
    size = int(status_vars.get("wsrep_cluster_size") or 0)
    metrics = {"cluster_size": size, "primary": int(cluster_status == "Primary"), "synced": int(state == "Synced"),
               "ready": int(ready == "ON"), "connected": int(connected == "ON")}
    if expected:
        metrics["expected_size"] = expected
    problems: list[tuple[Status, str]] = []
    if cluster_status != "Primary":
        problems.append((Status.CRITICAL, f"cluster status {cluster_status or 'unknown'} (not Primary: quorum lost)"))
    if ready != "ON":
        problems.append((Status.CRITICAL, f"wsrep_ready {ready or 'unknown'}"))
    if connected != "ON":
        problems.append((Status.CRITICAL, f"wsrep_connected {connected or 'unknown'}"))
    if state != "Synced":
        # a donor or a desynced node serves again by itself; a joining/initialised one does not serve yet
        level = Status.WARNING if state in ("Donor/Desynced", "Donor", "Desynced") else Status.CRITICAL
        problems.append((level, f"local state {state or 'unknown'} (not Synced)"))
    if expected and size != expected:
        level = Status.CRITICAL if size < expected // 2 + 1 else Status.WARNING
        problems.append((level, f"cluster size {size}, expected {expected}"))
    text = f"Galera {cluster_status}, {state}, size {size}" + (f"/{expected}" if expected else "")
    if not problems:
        return ctx.ok(text + ", ready and connected", host=host, metrics=metrics)
    status = max((s for s, _ in problems), key=lambda s: s.severity)
    return ctx.result(status, "; ".join(p for _, p in problems), host=host, metrics=metrics, details=text)


CHECKS = [reachable, connections, galera]
