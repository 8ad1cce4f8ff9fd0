"""Host checks: load, memory, swap, disk space and inodes (local through psutil, remote through SSH)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

from opsctl.checkdef import CheckContext, check
from opsctl.hosts import LocalHost
from opsctl.results import Result, Status, threshold_status

IGNORED_FSTYPES = {"tmpfs", "devtmpfs", "squashfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2", "nsfs", "devpts",
                   "mqueue", "debugfs", "tracefs", "securityfs", "pstore", "bpf", "configfs", "fusectl", "autofs",
                   "binfmt_misc", "hugetlbfs", "rpc_pipefs", "efivarfs", "ramfs", "nfsd", "fuse.lxcfs"}


@dataclass(frozen=True)
class Mount:
    mountpoint: str
    fstype: str
    size: int
    used: int
    inodes: int
    inodes_used: int


def _is_local(ctx: CheckContext) -> bool:
    return isinstance(ctx.host, LocalHost)


def read_meminfo(ctx: CheckContext) -> dict[str, int]:
    """/proc/meminfo in bytes."""
    text = ctx.host.read_file("/proc/meminfo").decode()
    info = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    return info


def read_mounts(ctx: CheckContext) -> list[Mount]:
    """Real filesystems with space and inode usage."""
    if _is_local(ctx):
        mounts = []
        for part in psutil.disk_partitions(all=False):
            if part.fstype in IGNORED_FSTYPES:
                continue
            try:
                usage = psutil.disk_usage(part.mountpoint)
                vfs = os.statvfs(part.mountpoint)
            except OSError:
                continue
            mounts.append(Mount(part.mountpoint, part.fstype, usage.total, usage.used, vfs.f_files, vfs.f_files - vfs.f_ffree))
        return mounts
    space = ctx.host.run(["df", "-P", "-B1", "-T"], timeout=ctx.timeout)
    inodes = ctx.host.run(["df", "-P", "-i"], timeout=ctx.timeout)
    inode_map = {}
    for line in inodes.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) >= 6 and f[1].isdigit():
            inode_map[f[5]] = (int(f[1]), int(f[2]))
    mounts = []
    for line in space.stdout.splitlines()[1:]:
        f = line.split()
        if len(f) < 7 or not f[2].isdigit() or f[1] in IGNORED_FSTYPES:
            continue
        total_inodes, used_inodes = inode_map.get(f[6], (0, 0))
        mounts.append(Mount(f[6], f[1], int(f[2]), int(f[3]), total_inodes, used_inodes))
    return mounts


@check("host.load", thresholds={"warn_per_cpu": 2.0, "crit_per_cpu": 4.0},
       remediation="Find the busy processes (top -o %CPU); a runaway daemon or an overcommitted node.",
       runbook=None)
def load(ctx: CheckContext):
    """5-minute load average per CPU."""
    loadavg = ctx.host.read_file("/proc/loadavg").decode().split()
    cpus = psutil.cpu_count() if _is_local(ctx) else int(ctx.host.run(["nproc"], timeout=ctx.timeout).stdout.strip() or 1)
    load1, load5, load15 = (float(x) for x in loadavg[:3])
    per_cpu = load5 / max(cpus, 1)
    status = threshold_status(per_cpu, ctx.thresholds["warn_per_cpu"], ctx.thresholds["crit_per_cpu"])
    yield ctx.result(status, f"load {load1:.2f} {load5:.2f} {load15:.2f} on {cpus} CPUs ({per_cpu:.2f} per CPU, 5 min)",
                     metrics={"load1": load1, "load5": load5, "load15": load15, "cpus": cpus})


@check("host.memory", thresholds={"warn_pct": 90, "crit_pct": 95},
       remediation="Find the largest processes (ps aux --sort=-rss | head); check for leaks after upgrades.")
def memory(ctx: CheckContext):
    """Memory in use (MemTotal - MemAvailable)."""
    info = read_meminfo(ctx)
    total, available = info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
    pct = 100.0 * (total - available) / total if total else 0.0
    status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
    yield ctx.result(status, f"memory {pct:.1f}% used, {available / 2**30:.1f} GiB available of {total / 2**30:.1f} GiB",
                     metrics={"memory_used_pct": round(pct, 2), "memory_available_bytes": available})


@check("host.swap", thresholds={"warn_pct": 50, "crit_pct": 80},
       remediation="Swap use on a controller slows every API; find what grew (smem -rs swap).")
def swap(ctx: CheckContext):
    """Swap in use."""
    info = read_meminfo(ctx)
    total, free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
    if not total:
        yield ctx.ok("no swap configured", metrics={"swap_used_pct": 0.0})
        return
    pct = 100.0 * (total - free) / total
    status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
    yield ctx.result(status, f"swap {pct:.1f}% used of {total / 2**30:.1f} GiB", metrics={"swap_used_pct": round(pct, 2)})


@check("host.disk_space", thresholds={"warn_pct": 80, "crit_pct": 90}, runbook="disk-full",
       remediation="Free space: rotate or remove old logs, clean old images/backups, grow the filesystem.")
def disk_space(ctx: CheckContext):
    """Space used per mounted filesystem."""
    for m in read_mounts(ctx):
        if not m.size:
            continue
        pct = 100.0 * m.used / m.size
        status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
        yield ctx.result(status, f"{m.mountpoint} {pct:.1f}% used ({(m.size - m.used) / 2**30:.1f} GiB free of {m.size / 2**30:.1f} GiB)",
                         check_id="host.disk_space", metrics={f"disk_used_pct:{m.mountpoint}": round(pct, 2)})


@check("host.disk_inodes", thresholds={"warn_pct": 80, "crit_pct": 90}, runbook="disk-full",
       remediation="Many small files: find the directory (du --inodes -x / | sort -n | tail), clean session/lock/log files.")
def disk_inodes(ctx: CheckContext):
    """Inodes used per mounted filesystem."""
    for m in read_mounts(ctx):
        if not m.inodes:
            continue
        pct = 100.0 * m.inodes_used / m.inodes
        status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
        yield ctx.result(status, f"{m.mountpoint} inodes {pct:.1f}% used ({m.inodes - m.inodes_used} free)",
                         metrics={f"inodes_used_pct:{m.mountpoint}": round(pct, 2)})


CHECKS = [load, memory, swap, disk_space, disk_inodes]
