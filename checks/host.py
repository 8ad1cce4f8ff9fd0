"""Host checks, the same locally (psutil) and remotely (commands and /proc over SSH).

Capacity: load, memory, swap, disk space and inodes per filesystem. Time: chrony / systemd time sync.
Services: which daemons a host must run comes from the catalog (services whose roles intersect the
host's roles; operators override the catalog in config `components:`, and skip services per check with
the `skip_services` threshold); for each: a process, its listening ports, its systemd unit where systemd
runs, and the open-files limit of the key daemons.
"""

from __future__ import annotations

import fnmatch
import shlex
from typing import Iterator

from opsctl.checkdef import CheckContext, check
from opsctl.checks import _hostfacts as facts
from opsctl.checks._hostparse import Proc, unit_name
from opsctl.components import Component, Service
from opsctl.results import Result, Status, threshold_status

IGNORED_FSTYPES = ("tmpfs", "devtmpfs", "squashfs", "overlay", "proc", "sysfs", "cgroup", "cgroup2", "nsfs", "devpts",
                   "mqueue", "debugfs", "tracefs", "securityfs", "pstore", "bpf", "configfs", "fusectl", "autofs",
                   "binfmt_misc", "hugetlbfs", "rpc_pipefs", "efivarfs", "ramfs", "nfsd", "fuse.lxcfs", "iso9660",
                   "selinuxfs", "fuse.gvfsd-fuse", "fuse.portal")

SERVICE_RUNBOOKS = {"nova-compute": "nova-compute-down", "cinder-volume": "cinder-volume-down",
                    "mariadb": "mariadb-down", "rabbitmq-server": "rabbitmq-down"}

STATUS_NAMES = {s.name: s for s in Status}


def service_runbook(service: str) -> str:
    """The runbook that repairs a service that is down (shared ids with the runbooks)."""
    if service in SERVICE_RUNBOOKS:
        return SERVICE_RUNBOOKS[service]
    if service.startswith("neutron-") and service.endswith("-agent"):
        return "neutron-agent-dead"
    return "service-down"


def expected_services(ctx: CheckContext) -> list[tuple[Component, Service]]:
    """Services this host must run: catalog services for its roles, of components deployed on it.

    A component is deployed on a host where one of its processes runs or one of its config dirs
    exists; an optional service (e.g. nova-novncproxy, the Neutron agents of one ML2 driver) is
    expected only where it runs or has run (its log files exist). Services the operator lists under
    `components:` in the config are always expected; `skip_services` patterns drop services.
    """
    skip = list(ctx.thresholds.get("skip_services") or ())
    found = []
    for component in ctx.catalog.values():
        candidates = [s for s in component.services_for(ctx.roles) if not any(fnmatch.fnmatchcase(s.name, p) for p in skip)]
        if not candidates:
            continue
        pinned = _configured_services(ctx, component)
        if not pinned and not _deployed(ctx, component):
            continue
        found.extend((component, s) for s in candidates if s.name in pinned or not s.optional or _has_run(ctx, s))
    return found


def _configured_services(ctx: CheckContext, component: Component) -> set[str]:
    override = ctx.config.components.get(component.name)
    return set(override.services) if override else set()


def _deployed(ctx: CheckContext, component: Component) -> bool:
    procs = facts.processes(ctx)
    if any(_matching(procs, s) for s in component.services):
        return True
    return any(facts.path_exists(ctx, d) for d in component.config_dirs)


def _has_run(ctx: CheckContext, svc: Service) -> bool:
    if _matching(facts.processes(ctx), svc):
        return True
    return any(facts.glob(ctx, pattern) for pattern in svc.logs)


def _service_remediation(svc: Service, what: str) -> str:
    logs = f"; read why in {', '.join(svc.logs)}" if svc.logs else ""
    return f"{what}: {shlex.join(svc.restart_argv())}{logs}"


def _nothing_expected(ctx: CheckContext, what: str) -> Result:
    roles = ", ".join(sorted(ctx.roles)) or "none"
    return ctx.ok(f"no services with {what} expected on {ctx.host_name} (roles: {roles})")


def _status_option(ctx: CheckContext, key: str, default: Status) -> Status:
    value = ctx.thresholds.get(key, default.name)
    return STATUS_NAMES.get(str(value).upper(), default)


# ===================================================================================== capacity
@check("host.load", thresholds={"warn_per_cpu": 2.0, "crit_per_cpu": 4.0}, runbook="host-overload",
       remediation="Find the busy processes (top -o %CPU, ps -eo pid,pcpu,args --sort=-pcpu | head); "
                   "a runaway daemon, a blocked disk (load with low CPU: iostat -x) or an overcommitted node.")
def load(ctx: CheckContext):
    """5-minute load average per CPU."""
    load1, load5, load15 = facts.loadavg(ctx)
    cpus = facts.cpu_count(ctx)
    per_cpu = load5 / cpus
    status = threshold_status(per_cpu, ctx.thresholds["warn_per_cpu"], ctx.thresholds["crit_per_cpu"])
    yield ctx.result(status, f"load {load1:.2f} {load5:.2f} {load15:.2f} on {cpus} CPUs ({per_cpu:.2f} per CPU, 5 min)",
                     metrics={"load1": load1, "load5": load5, "load15": load15, "cpus": cpus, "load5_per_cpu": round(per_cpu, 3)})


@check("host.memory", thresholds={"warn_pct": 90, "crit_pct": 95}, runbook="host-memory-pressure",
       remediation="Find the largest processes (ps -eo pid,rss,args --sort=-rss | head); look for leaks after "
                   "upgrades and for too many API workers on small controllers.")
def memory(ctx: CheckContext):
    """Memory in use (MemTotal - MemAvailable)."""
    info = facts.meminfo(ctx)
    total, available = info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
    pct = 100.0 * (total - available) / total if total else 0.0
    status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
    yield ctx.result(status, f"memory {pct:.1f}% used, {available / 2**30:.1f} GiB available of {total / 2**30:.1f} GiB",
                     metrics={"memory_used_pct": round(pct, 2), "memory_available_bytes": available})


@check("host.swap", thresholds={"warn_pct": 50, "crit_pct": 80}, runbook="host-memory-pressure",
       remediation="Swap use on a controller slows every API; find what grew (grep VmSwap /proc/*/status | sort -k2 -n).")
def swap(ctx: CheckContext):
    """Swap in use."""
    info = facts.meminfo(ctx)
    total, free = info.get("SwapTotal", 0), info.get("SwapFree", 0)
    if not total:
        yield ctx.ok("no swap configured", metrics={"swap_used_pct": 0.0})
        return
    pct = 100.0 * (total - free) / total
    status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
    yield ctx.result(status, f"swap {pct:.1f}% used of {total / 2**30:.1f} GiB", metrics={"swap_used_pct": round(pct, 2)})


def _watched_mounts(ctx: CheckContext):
    fstypes = set(ctx.thresholds.get("ignore_fstypes") or IGNORED_FSTYPES)
    ignore = list(ctx.thresholds.get("ignore_mounts") or ())
    for m in sorted(facts.mounts(ctx), key=lambda m: m.mountpoint):
        if m.fstype in fstypes or any(fnmatch.fnmatchcase(m.mountpoint, p) for p in ignore):
            continue
        yield m


_DISK_THRESHOLDS = {"warn_pct": 80, "crit_pct": 90, "ignore_fstypes": list(IGNORED_FSTYPES), "ignore_mounts": []}


@check("host.disk_space", thresholds=_DISK_THRESHOLDS, runbook="disk-full",
       remediation="Free space: rotate or remove old logs (/var/log), clean old images, instance snapshots and "
                   "backups, purge deleted-but-open files (lsof +L1), or grow the filesystem.")
def disk_space(ctx: CheckContext):
    """Space used per mounted filesystem (bind mounts counted once)."""
    for m in _watched_mounts(ctx):
        if not m.size:
            continue
        pct = 100.0 * m.used / m.size
        status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
        yield ctx.result(status, f"{m.mountpoint} {pct:.1f}% used ({(m.size - m.used) / 2**30:.1f} GiB free of "
                         f"{m.size / 2**30:.1f} GiB, {m.fstype} on {m.device})",
                         metrics={f"disk_used_pct:{m.mountpoint}": round(pct, 2)})


@check("host.disk_inodes", thresholds=_DISK_THRESHOLDS, runbook="disk-full",
       remediation="Many small files: find the directory (du --inodes -x / | sort -n | tail); clean session, "
                   "lock, cache and rotated log files.")
def disk_inodes(ctx: CheckContext):
    """Inodes used per mounted filesystem (bind mounts counted once)."""
    for m in _watched_mounts(ctx):
        if not m.inodes:
            continue
        pct = 100.0 * m.inodes_used / m.inodes
        status = threshold_status(pct, ctx.thresholds["warn_pct"], ctx.thresholds["crit_pct"])
        yield ctx.result(status, f"{m.mountpoint} inodes {pct:.1f}% used ({m.inodes - m.inodes_used} free of {m.inodes})",
                         metrics={f"inodes_used_pct:{m.mountpoint}": round(pct, 2)})


# ===================================================================================== time
@check("host.time_sync", thresholds={"warn_offset_s": 0.1, "crit_offset_s": 1.0, "max_stratum": 15,
                                     "no_daemon_status": "WARNING"}, runbook="time-sync",
       remediation="Start and enable the time daemon (chronyd or systemd-timesyncd), check its sources "
                   "(chronyc sources -v) and that UDP 123 reaches them; skewed clocks break Keystone tokens, "
                   "Galera and RabbitMQ clustering.")
def time_sync(ctx: CheckContext):
    """Clock synchronised (chronyc tracking, ntpq, or timedatectl) and its offset within thresholds."""
    try:
        ts = facts.time_sync(ctx)
    except facts.NoTimeDaemon as exc:
        status = _status_option(ctx, "no_daemon_status", Status.WARNING)
        yield ctx.result(status, f"no time synchronisation daemon runs on {ctx.host_name} ({exc})")
        return
    if not ts.synchronised:
        why = f"leap status {ts.leap!r}, reference {ts.reference or 'none'}" if ts.source != "timedatectl" else ts.reference
        yield ctx.critical(f"clock of {ctx.host_name} is NOT synchronised ({ts.source}: {why})",
                           metrics={"time_synchronised": 0})
        return
    metrics: dict[str, float] = {"time_synchronised": 1}
    status = Status.OK
    text = f"clock synchronised ({ts.source}"
    if ts.reference:
        text += f", reference {ts.reference}"
    if ts.stratum is not None:
        metrics["time_stratum"] = ts.stratum
        text += f", stratum {ts.stratum}"
        if ts.stratum > int(ctx.thresholds["max_stratum"]):
            status = Status.WARNING
    if ts.offset is not None:
        metrics["time_offset_seconds"] = ts.offset
        text += f", offset {ts.offset * 1000:.3f} ms"
        status = max(status, threshold_status(ts.offset, ctx.thresholds["warn_offset_s"], ctx.thresholds["crit_offset_s"]),
                     key=lambda s: s.severity)
    yield ctx.result(status, text + ")", metrics=metrics)


# ===================================================================================== services
def _matching(procs: list[Proc], svc: Service) -> list[Proc]:
    wanted = set(svc.processes)
    return [p for p in procs if p.tokens & wanted]


def _service_details(component: Component, svc: Service, extra: str = "") -> str:
    lines = [f"component: {component.name}", f"service: {svc.name}", f"roles: {', '.join(svc.roles)}",
             f"matched by: {', '.join(svc.processes) or '-'}"]
    return "\n".join(lines + ([extra] if extra else []))


_SERVICE_THRESHOLDS = {"skip_services": []}


@check("host.processes", thresholds=_SERVICE_THRESHOLDS, runbook="service-down",
       remediation="Start the service and read its log for why it stopped.")
def processes(ctx: CheckContext):
    """Every service the host's roles need has a running process (matched by name or command-line token)."""
    services = [(c, s) for c, s in expected_services(ctx) if s.processes]
    if not services:
        yield _nothing_expected(ctx, "processes")
        return
    procs = facts.processes(ctx)
    for component, svc in services:
        found = _matching(procs, svc)
        if not found:
            yield ctx.critical(
                f"{svc.name} is NOT running on {ctx.host_name}: no process matches {', '.join(svc.processes)}",
                runbook=service_runbook(svc.name), remediation=_service_remediation(svc, f"Start {svc.name}"),
                details=_service_details(component, svc), metrics={f"processes:{svc.name}": 0})
            continue
        pids = sorted(p.pid for p in found)
        shown = ", ".join(map(str, pids[:5])) + (" ..." if len(pids) > 5 else "")
        yield ctx.ok(f"{svc.name}: {len(found)} process(es) (pid {shown})", metrics={f"processes:{svc.name}": len(found)},
                     details=_service_details(component, svc))


@check("host.ports", thresholds=_SERVICE_THRESHOLDS, runbook="service-down",
       remediation="A service that runs but does not listen: read its log, check bind addresses in its config.")
def ports(ctx: CheckContext):
    """Every expected service's TCP ports are listening (ss -ltn / psutil)."""
    services = [(c, s) for c, s in expected_services(ctx) if s.ports]
    if not services:
        yield _nothing_expected(ctx, "ports")
        return
    listening = facts.listeners(ctx)
    for component, svc in services:
        missing = [p for p in svc.ports if p not in listening.ports]
        if missing:
            yield ctx.critical(
                f"{svc.name} on {ctx.host_name}: port {', '.join(map(str, missing))} NOT listening",
                runbook=service_runbook(svc.name),
                remediation=_service_remediation(svc, f"Restart {svc.name} and check it binds its port"),
                details=_service_details(component, svc), metrics={f"ports_missing:{svc.name}": len(missing)})
            continue
        addrs = sorted({f"[{a}]:{p}" if ":" in a else f"{a}:{p}" for a, p in listening.sockets if p in svc.ports})
        yield ctx.ok(f"{svc.name}: listening on {', '.join(addrs)}", metrics={f"ports_missing:{svc.name}": 0},
                     details=_service_details(component, svc))


_UNIT_STATUS = {"active": Status.OK, "reloading": Status.WARNING, "activating": Status.WARNING,
                "deactivating": Status.CRITICAL, "inactive": Status.CRITICAL, "failed": Status.CRITICAL}


@check("host.systemd_units", thresholds=_SERVICE_THRESHOLDS, runbook="service-down",
       remediation="Read the unit's journal (journalctl -u UNIT -n 100) and restart it.")
def systemd_units(ctx: CheckContext):
    """Systemd units of the expected services are active and enabled (skipped where systemd is not PID 1)."""
    services = [(c, s) for c, s in expected_services(ctx) if s.units]
    if not services:
        yield _nothing_expected(ctx, "systemd units")
        return
    if not facts.has_systemd(ctx):
        yield ctx.ok(f"systemd is not running on {ctx.host_name} (no /run/systemd/system): unit states not checked")
        return
    names = sorted({unit_name(u) for _, s in services for u in s.units})
    states = facts.unit_states(ctx, names)
    for component, svc in services:
        yield _unit_result(ctx, component, svc, states)


def _unit_result(ctx: CheckContext, component: Component, svc: Service, states) -> Result:
    candidates = [states.get(unit_name(u)) for u in svc.units]
    loaded = [s for s in candidates if s is not None and s.loaded]
    runbook = service_runbook(svc.name)
    if not loaded:
        masked = [s for s in candidates if s is not None and s.load == "masked"]
        status = Status.CRITICAL if masked else Status.WARNING
        what = f"unit {masked[0].id} is masked" if masked else f"no unit installed (tried {', '.join(svc.units)})"
        return ctx.result(status, f"{svc.name} on {ctx.host_name}: {what}", runbook=runbook,
                          remediation=f"Install/unmask the unit, or set components.{component.name}.services.{svc.name}.units "
                                      "in config to the unit this deployment uses (empty list: not managed by systemd).",
                          details=_service_details(component, svc))
    unit = loaded[0]
    status = _UNIT_STATUS.get(unit.active, Status.WARNING)
    text = f"{svc.name}: {unit.id} {unit.active} ({unit.sub})"
    if status == Status.OK and unit.file_state in ("disabled", "masked"):
        status, text = Status.WARNING, text + f", {unit.file_state}: will not start at boot"
    remediation = "" if status == Status.OK else _service_remediation(svc, f"journalctl -u {unit.id} -n 100, then restart")
    return ctx.result(status, text if status == Status.OK else f"{text} on {ctx.host_name}",
                      runbook=runbook if status != Status.OK else None, remediation=remediation,
                      details=_service_details(component, svc, f"unit file state: {unit.file_state or '-'}"))


@check("host.open_files", thresholds={"warn_usage_pct": 80, "crit_usage_pct": 90, "below_min_status": "WARNING",
                                      "max_pids": 2, "skip_services": []}, runbook="raise-nofile-limit",
       remediation="Raise the daemon's limit (systemd: LimitNOFILE= in a drop-in, then daemon-reload and restart; "
                   "otherwise limits.conf / ulimit -n in its start script).")
def open_files(ctx: CheckContext):
    """Open-files limit (/proc/<pid>/limits) of key daemons vs the catalog's nofile_min, and how much of it is used."""
    services = [(c, s) for c, s in expected_services(ctx) if s.nofile_min and s.processes]
    if not services:
        yield _nothing_expected(ctx, "an open files minimum")
        return
    procs = facts.processes(ctx)
    for component, svc in services:
        found = _matching(procs, svc)
        if not found:
            continue  # not running: host.processes reports it
        limits = facts.nofile(ctx, _main_pids(found, int(ctx.thresholds["max_pids"])))
        if not limits:
            continue  # exited meanwhile
        yield from _nofile_results(ctx, component, svc, limits)


def _main_pids(found: list[Proc], limit: int) -> list[int]:
    """Parents first (workers inherit their limits), then workers, at most `limit` pids."""
    pids = {p.pid for p in found}
    parents = sorted(p.pid for p in found if p.ppid not in pids)
    workers = sorted(pids - set(parents))
    return (parents + workers)[:max(limit, 1)]


def _nofile_results(ctx: CheckContext, component: Component, svc: Service, limits) -> Iterator[Result]:
    soft_pid = min(limits, key=lambda pid: limits[pid][0])
    soft = limits[soft_pid][0]
    usage = {pid: (fds / lim[0] * 100.0) for pid, lim in limits.items() if (fds := lim[2]) is not None and lim[0] not in (0, float("inf"))}
    busiest = max(usage, key=usage.get) if usage else None
    pct = usage[busiest] if busiest is not None else 0.0
    status = threshold_status(pct, ctx.thresholds["warn_usage_pct"], ctx.thresholds["crit_usage_pct"])
    soft_text = "unlimited" if soft == float("inf") else str(int(soft))
    text = f"{svc.name}: open files limit {soft_text} (pid {soft_pid}, minimum {svc.nofile_min})"
    if soft < svc.nofile_min:
        below = _status_option(ctx, "below_min_status", Status.WARNING)
        status = max(status, below, key=lambda s: s.severity)
        text = f"{svc.name} on {ctx.host_name}: open files limit {soft_text} is below the minimum {svc.nofile_min} (pid {soft_pid})"
    if busiest is not None:
        text += f", {limits[busiest][2]} open in pid {busiest} ({pct:.1f}% of its limit)"
    metrics = {f"nofile_soft:{svc.name}": soft if soft != float("inf") else -1, f"nofile_used_pct:{svc.name}": round(pct, 2)}
    yield ctx.result(status, text, metrics=metrics, details=_service_details(component, svc))


CHECKS = [load, memory, swap, disk_space, disk_inodes, time_sync, processes, ports, systemd_units, open_files]
