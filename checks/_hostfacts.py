"""Facts host checks read, gathered once per host and run: locally through psutil, remotely over the Host.

Several checks share a fact (memory and swap read /proc/meminfo; processes, ports and open files need
the process list), so each fact is gathered once per Host object and cached for that run (the runner
opens one Host per host per run). A failure to gather is cached too and re-raised to every check
that needs the fact, so each of them reports UNKNOWN with the same reason.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Callable

import psutil

from opsctl.checkdef import CheckContext
from opsctl.hosts import Host, LocalHost
from opsctl.checks._hostparse import (
    Listeners, Mount, Proc, TimeSync, UnitState, parse_chronyc_tracking, parse_df_output, parse_df_posix,
    parse_cpu_list, parse_limits, parse_loadavg, parse_meminfo, parse_ntpq_rv, parse_ps, parse_ss_listen,
    parse_systemctl_show, parse_timedatectl_show,
)

_cache: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


class _Slot:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None


def cached(host: Host, key: str, gather: Callable[[], Any]) -> Any:
    """gather() once per host object and key; concurrent callers wait for the first."""
    with _cache_lock:
        slots = _cache.setdefault(host, {})
        slot = slots.setdefault(key, _Slot())
    with slot.lock:
        if not slot.done:
            try:
                slot.value = gather()
            except Exception as exc:  # noqa: BLE001 - re-raised to every caller below
                slot.error = exc
            slot.done = True
    if slot.error is not None:
        raise slot.error
    return slot.value


def is_local(ctx: CheckContext) -> bool:
    return isinstance(ctx.host, LocalHost)


def _run(ctx: CheckContext, argv: list[str], ok_rcs: tuple[int, ...] = (0,)) -> str:
    res = ctx.host.run(argv, timeout=ctx.timeout)
    if res.rc not in ok_rcs:
        err = (res.stderr or res.stdout).strip().splitlines()
        raise RuntimeError(f"{ctx.host_name}: {argv[0]} exited {res.rc}: {err[0] if err else 'no output'}")
    return res.stdout


# ------------------------------------------------------------------------------------ files
def path_exists(ctx: CheckContext, path: str) -> bool:
    return cached(ctx.host, f"exists:{path}", lambda: ctx.host.exists(path))


def glob(ctx: CheckContext, pattern: str) -> list[str]:
    return cached(ctx.host, f"glob:{pattern}", lambda: ctx.host.glob(pattern))


# ------------------------------------------------------------------------------------ basics
def meminfo(ctx: CheckContext) -> dict[str, int]:
    return cached(ctx.host, "meminfo", lambda: parse_meminfo(_read_proc(ctx, "/proc/meminfo")))


def loadavg(ctx: CheckContext) -> tuple[float, float, float]:
    return parse_loadavg(_read_proc(ctx, "/proc/loadavg"))


def cpu_count(ctx: CheckContext) -> int:
    def gather() -> int:
        if is_local(ctx):
            return psutil.cpu_count() or 1  # online CPUs, as /sys/devices/system/cpu/online
        return max(parse_cpu_list(ctx.host.read_file("/sys/devices/system/cpu/online").decode()), 1)

    return cached(ctx.host, "cpus", gather)


def _read_proc(ctx: CheckContext, path: str) -> str:
    return ctx.host.read_file(path).decode()  # remotely over SFTP: no shell started


# ------------------------------------------------------------------------------------ mounts
def mounts(ctx: CheckContext) -> list[Mount]:
    """Mounted filesystems, one per device (bind mounts of the same filesystem counted once)."""
    return cached(ctx.host, "mounts", lambda: _local_mounts() if is_local(ctx) else _remote_mounts(ctx))


def _local_mounts() -> list[Mount]:
    by_dev: dict[int, Mount] = {}
    for part in psutil.disk_partitions(all=True):
        try:
            vfs = os.statvfs(part.mountpoint)
            dev = os.stat(part.mountpoint).st_dev
        except OSError:
            continue
        size = vfs.f_blocks * vfs.f_frsize
        used = (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize
        m = Mount(part.device, part.mountpoint, part.fstype, size, used, vfs.f_files, vfs.f_files - vfs.f_ffree)
        known = by_dev.get(dev)
        if known is None or len(m.mountpoint) < len(known.mountpoint):
            by_dev[dev] = m
    return list(by_dev.values())


def _remote_mounts(ctx: CheckContext) -> list[Mount]:
    res = ctx.host.run(["df", "-B1", "--output=source,fstype,size,used,itotal,iused,target"], timeout=ctx.timeout)
    if res.rc == 0 or (res.stdout.startswith("Filesystem") and len(res.stdout.splitlines()) > 1):
        found = parse_df_output(res.stdout)  # rc 1 with output: one mount unreadable, the rest is good
    else:  # df without --output (busybox, old coreutils)
        space = ctx.host.run(["df", "-P", "-T", "-B1"], timeout=ctx.timeout).stdout
        inodes = ctx.host.run(["df", "-P", "-i"], timeout=ctx.timeout).stdout
        found = parse_df_posix(space, inodes)
    return dedupe_mounts(found)


def dedupe_mounts(found: list[Mount]) -> list[Mount]:
    """One entry per filesystem: same device and same usage is a bind mount; the shortest path stays."""
    by_key: dict[tuple, Mount] = {}
    for m in found:
        key = (m.device, m.fstype, m.size, m.inodes) if m.device.startswith("/") else (m.device, m.mountpoint)
        known = by_key.get(key)
        if known is None or len(m.mountpoint) < len(known.mountpoint):
            by_key[key] = m
    return list(by_key.values())


# ------------------------------------------------------------------------------------ processes
def processes(ctx: CheckContext) -> list[Proc]:
    return cached(ctx.host, "processes", lambda: _local_processes() if is_local(ctx) else _remote_processes(ctx))


def _local_processes() -> list[Proc]:
    procs = []
    for p in psutil.process_iter(["pid", "ppid", "name", "cmdline"]):
        info = p.info
        cmdline = info.get("cmdline") or []
        if info["pid"] == 2 or info.get("ppid") == 2 or not cmdline:
            continue
        procs.append(Proc(info["pid"], info.get("ppid") or 0, info.get("name") or "", " ".join(cmdline)))
    return procs


def _remote_processes(ctx: CheckContext) -> list[Proc]:
    return [p for p in parse_ps(_run(ctx, ["ps", "-e", "-ww", "-o", "pid=,ppid=,comm:15=,args="])) if p.args]


# ------------------------------------------------------------------------------------ ports
def listeners(ctx: CheckContext) -> Listeners:
    return cached(ctx.host, "listeners", lambda: _local_listeners() if is_local(ctx) else _remote_listeners(ctx))


def _local_listeners() -> Listeners:
    result = Listeners()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            result.sockets.add((conn.laddr.ip.split("%", 1)[0], conn.laddr.port))
    return result


def _remote_listeners(ctx: CheckContext) -> Listeners:
    return parse_ss_listen(_run(ctx, ["ss", "-ltnH"]))


# ------------------------------------------------------------------------------------ open files
def nofile(ctx: CheckContext, pids: list[int]) -> dict[int, tuple[float, float, int | None]]:
    """pid -> (soft limit, hard limit, open descriptors or None if unreadable); vanished pids absent."""
    if not pids:
        return {}
    if is_local(ctx):
        out = {}
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                soft, hard = proc.rlimit(psutil.RLIMIT_NOFILE)
                try:
                    fds: int | None = proc.num_fds()
                except psutil.AccessDenied:
                    fds = None
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            inf = psutil.RLIM_INFINITY
            out[pid] = (float("inf") if soft == inf else float(soft), float("inf") if hard == inf else float(hard), fds)
        return out
    out = {}
    for pid in pids:  # over SFTP: /proc/<pid>/limits and a listing of /proc/<pid>/fd
        try:
            parsed = parse_limits(ctx.host.read_file(f"/proc/{pid}/limits").decode())
        except OSError:
            continue  # exited
        if parsed is None:
            continue
        try:
            fds: int | None = len(ctx.host.glob(f"/proc/{pid}/fd/*"))
        except OSError:
            fds = None
        out[pid] = (parsed[0], parsed[1], fds)
    return out


# ------------------------------------------------------------------------------------ time
class NoTimeDaemon(Exception):
    """No time synchronisation daemon runs; the message says what was looked for."""


TIME_DAEMONS = ("chronyd", "ntpd", "ntpsec", "systemd-timesyncd", "openntpd")


def time_sync(ctx: CheckContext) -> TimeSync:
    """Ask the daemon that runs: chronyd (chronyc tracking), ntpd (ntpq), else systemd (timedatectl show)."""
    running = {t for p in processes(ctx) for t in p.tokens} & set(TIME_DAEMONS)
    if "chronyd" in running:
        return parse_chronyc_tracking(_run(ctx, ["chronyc", "-n", "tracking"]))
    if running & {"ntpd", "ntpsec"}:
        return parse_ntpq_rv(_run(ctx, ["ntpq", "-n", "-c", "rv 0 leap,stratum,offset,refid"]))
    if has_systemd(ctx):
        text = _run(ctx, ["timedatectl", "show"])
        ts = parse_timedatectl_show(text)
        if not ts.synchronised and "NTP=yes" not in text.splitlines():
            raise NoTimeDaemon("no chronyd or ntpd process, and systemd reports no NTP service (timedatectl: NTP=no)")
        return ts
    raise NoTimeDaemon(f"no {', '.join(TIME_DAEMONS)} process, and systemd is not running")


# ------------------------------------------------------------------------------------ systemd
def has_systemd(ctx: CheckContext) -> bool:
    """sd_booted(): systemd is PID 1 when /run/systemd/system exists."""
    if is_local(ctx):
        return os.path.isdir("/run/systemd/system")
    return cached(ctx.host, "systemd", lambda: ctx.host.exists("/run/systemd/system"))


def unit_states(ctx: CheckContext, units: list[str]) -> dict[str, UnitState]:
    if not units:
        return {}
    text = _run(ctx, ["systemctl", "show", "-p", "Id,LoadState,ActiveState,SubState,UnitFileState", "--", *units])
    return parse_systemctl_show(text)


__all__ = ["cached", "cpu_count", "dedupe_mounts", "has_systemd", "is_local", "listeners", "loadavg", "meminfo",
           "mounts", "nofile", "processes", "time_sync", "unit_states", "NoTimeDaemon"]
