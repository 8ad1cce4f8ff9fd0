"""memcached: every configured server answers `stats`; connections against maxconns."""

from __future__ import annotations

import socket
import time
from typing import Iterable, Mapping

from opsctl.checkdef import CheckContext, check
from opsctl.errors import UnavailableError
from opsctl.results import Result, Status, threshold_status, worst

DAILY = ("daily", "weekly")
MAX_REPLY = 1 << 20


def split_server(server: str) -> tuple[str, int]:
    """'host:port', '[v6]:port', 'host' (port 11211)."""
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        return host, int(rest.lstrip(":") or 11211)
    if server.count(":") == 1:
        host, port = server.split(":")
        return host, int(port)
    return server, 11211


def stats(server: str, timeout: float, command: str = "stats") -> dict[str, str]:
    """Send a stats command over the text protocol; UnavailableError with the reason."""
    host, port = split_server(server)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(command.encode() + b"\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_REPLY or data.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                    break
    except socket.timeout:
        raise UnavailableError(f"memcached {server} did not answer within {timeout:g}s") from None
    except OSError as exc:
        raise UnavailableError(f"memcached {server} unreachable: {exc.strerror or type(exc).__name__}") from None
    if not data.endswith(b"END\r\n"):
        raise UnavailableError(f"memcached {server}: unexpected reply to {command!r}: {data[:80]!r}")
    return parse_stats(data.decode(errors="replace"))


def parse_stats(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] == "STAT":
            values[parts[1]] = parts[2]
    return values


@check("memcached.stats", needs=("memcached",), scope="global", runbook="memcached-down", profiles=DAILY,
       thresholds={"warning": 80, "critical": 90},
       remediation="Start memcached on the named server; Keystone token validation and the dashboards slow down "
                   "or fail without it. Near maxconns: raise -c (MAXCONN).")
def memcached_stats(ctx: CheckContext) -> Iterable[Result]:
    """Every memcached server answers `stats`; current connections against maxconns."""
    cfg = ctx.config.memcached
    if not cfg.servers:
        yield ctx.ok("no memcached server configured (memcached.servers is empty)")
    for server in cfg.servers:
        host = split_server(server)[0]
        t0 = time.monotonic()
        try:
            values = stats(server, cfg.timeout)
            settings = stats(server, cfg.timeout, "stats settings")
        except UnavailableError as exc:
            yield ctx.critical(exc.message, host=host, metrics={"up": 0})
            continue
        yield evaluate_stats(ctx, server, values, settings, time.monotonic() - t0)


def evaluate_stats(ctx: CheckContext, server: str, values: Mapping[str, str], settings: Mapping[str, str],
                   seconds: float) -> Result:
    def num(d: Mapping[str, str], key: str) -> float:
        try:
            return float(d.get(key, 0))
        except ValueError:
            return 0.0

    conns, maxconns = num(values, "curr_connections"), num(settings, "maxconns")
    pct = 100.0 * conns / maxconns if maxconns else 0.0
    hits, misses = num(values, "get_hits"), num(values, "get_misses")
    metrics = {"up": 1, "latency_seconds": round(seconds, 4), "curr_connections": conns, "max_connections": maxconns,
               "connections_percent": round(pct, 1), "evictions": num(values, "evictions"),
               "uptime_seconds": num(values, "uptime"), "bytes": num(values, "bytes"),
               "limit_maxbytes": num(values, "limit_maxbytes"),
               "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else 0.0}
    status = worst([Status.OK, threshold_status(pct, ctx.thresholds.get("warning"), ctx.thresholds.get("critical"))])
    version = values.get("version", "?")
    text = f"memcached {version} at {server}: {conns:.0f}/{maxconns:.0f} connections ({pct:.0f}%), up {num(values, 'uptime'):.0f}s"
    return ctx.result(status, text, host=split_server(server)[0], metrics=metrics)


CHECKS = [memcached_stats]
