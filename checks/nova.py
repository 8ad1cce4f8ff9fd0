"""Nova: API latency, compute services up/disabled, hypervisors, instances in ERROR or stuck in a task."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from opsctl.checkdef import CheckContext, check
from opsctl.checks._api import (
    DAILY, age_seconds, api_probe_check, connection, count_status, disabled_results, fetch,
    human_age, names_list, raw_get, services_up_results, utcnow, with_latency,
)
from opsctl.results import Result

API = api_probe_check("nova", "compute", lambda conn: raw_get(conn.compute, "/"))


@check("nova.compute_services_up", needs=("cloud",), scope="cloud", runbook="nova-compute-down", profiles=DAILY,
       remediation="Start the service on the named host and read its log; nova-compute also needs RabbitMQ and "
                   "nova-conductor. A service stays 'down' until it reports again (service_down_time).")
def compute_services_up(ctx: CheckContext) -> Iterable[Result]:
    """Every enabled Nova service (compute, conductor, scheduler) reports as up."""
    services, seconds = fetch("nova services", connection(ctx).compute.services)
    yield from with_latency(evaluate_services_up(ctx, services), seconds)


def evaluate_services_up(ctx: CheckContext, services: Iterable[Any], now: Any = None) -> Iterator[Result]:
    return services_up_results(ctx, services, now or utcnow(), key_binary="nova-compute",
                               key_runbook="nova-compute-down", noun="nova")


@check("nova.services_disabled", needs=("cloud",), scope="cloud", runbook="nova-service-disabled", profiles=DAILY,
       remediation="If the maintenance is over: openstack compute service set --enable HOST BINARY. An 'AUTO:' reason "
                   "means Nova disabled it itself (repeated build failures or a lost hypervisor connection).")
def services_disabled(ctx: CheckContext) -> Iterable[Result]:
    """Nova services disabled, with the host, zone and disabled reason."""
    services, seconds = fetch("nova services", connection(ctx).compute.services)
    yield from with_latency(disabled_results(ctx, services, utcnow(), "nova"), seconds)


@check("nova.hypervisors", needs=("cloud",), scope="cloud", runbook="nova-compute-down", profiles=DAILY,
       remediation="A hypervisor 'down' means its nova-compute stopped reporting: check the service, libvirt and "
                   "RabbitMQ on that host.")
def hypervisors(ctx: CheckContext) -> Iterable[Result]:
    """Every hypervisor is up and enabled."""
    items, seconds = fetch("hypervisors", connection(ctx).compute.hypervisors, details=True)
    yield from with_latency(evaluate_hypervisors(ctx, items), seconds)


def evaluate_hypervisors(ctx: CheckContext, items: Iterable[Any]) -> Iterator[Result]:
    items = list(items)
    if not items:
        yield ctx.ok("no hypervisors registered")
        return
    for hv in sorted(items, key=lambda h: h.name or ""):
        host = (hv.service_details or {}).get("host") or hv.name
        kind = f" ({hv.hypervisor_type})" if hv.hypervisor_type else ""
        metrics = {"up": int(hv.state == "up"), "enabled": int(hv.status == "enabled")}
        text = f"hypervisor {hv.name}{kind} state {hv.state}, status {hv.status}"
        if hv.state != "up":
            yield ctx.critical(text + ": its nova-compute is not reporting", host=host, metrics=metrics)
        elif hv.status != "enabled":
            reason = (hv.service_details or {}).get("disabled_reason")
            yield ctx.warning(text + (f" ({reason})" if reason else ""), host=host, metrics=metrics,
                              runbook="nova-service-disabled")
        else:
            yield ctx.ok(text, host=host, metrics=metrics)


def _server_line(s: Any, now: Any) -> str:
    bits = [f"id {s.id}"]
    if getattr(s, "compute_host", None):
        bits.append(f"host {s.compute_host}")
    if getattr(s, "task_state", None):
        bits.append(f"task {s.task_state} for {human_age(age_seconds(s.updated_at, now))}")
    fault = getattr(s, "fault", None) or {}
    if isinstance(fault, dict) and fault.get("message"):
        bits.append(f"fault: {fault['message']}")
    return f"{s.name} ({', '.join(bits)})"


@check("nova.instances_error", needs=("cloud",), scope="cloud", runbook="instance-error", profiles=DAILY,
       thresholds={"warning": 1, "critical": None},
       remediation="Read the instance fault (openstack server show ID) and nova-compute log on its host; then "
                   "rebuild, reset-state --active or delete it with the owner.")
def instances_error(ctx: CheckContext) -> Iterable[Result]:
    """Instances in ERROR state, all projects (none is OK: an empty cloud is not a failure)."""
    servers, seconds = fetch("servers", connection(ctx).compute.servers, details=True, all_projects=True, status="ERROR")
    yield from with_latency(evaluate_instances_error(ctx, servers), seconds)


def evaluate_instances_error(ctx: CheckContext, servers: Iterable[Any], now: Any = None) -> Iterator[Result]:
    now = now or utcnow()
    bad = [s for s in servers if (s.status or "").upper() == "ERROR"]
    metrics = {"instances_error": len(bad)}
    if not bad:
        yield ctx.ok("no instance in ERROR", metrics=metrics)
        return
    lines = [_server_line(s, now) for s in bad]
    yield ctx.result(count_status(len(bad), ctx.thresholds), f"{len(bad)} instance(s) in ERROR: {names_list(lines, 3)}",
                     metrics=metrics, details="\n".join(lines))


@check("nova.instances_stuck", needs=("cloud",), scope="cloud", runbook="instance-stuck-task", profiles=DAILY,
       thresholds={"stuck_after_seconds": 3600, "warning": 1, "critical": None},
       remediation="Find why the task stalled (nova-compute/conductor logs on the instance's host); then "
                   "openstack server set --state active (or reset-state) and retry the operation.")
def instances_stuck(ctx: CheckContext) -> Iterable[Result]:
    """Instances whose task state (spawning, migrating, deleting...) has not changed for too long."""
    servers, seconds = fetch("servers", connection(ctx).compute.servers, details=True, all_projects=True)
    yield from with_latency(evaluate_instances_stuck(ctx, servers), seconds)


def evaluate_instances_stuck(ctx: CheckContext, servers: Iterable[Any], now: Any = None) -> Iterator[Result]:
    now = now or utcnow()
    limit = float(ctx.thresholds.get("stuck_after_seconds", 3600))
    servers = list(servers)
    stuck = [s for s in servers if s.task_state and (age_seconds(s.updated_at, now) or 0) >= limit]
    busy = sum(1 for s in servers if s.task_state)
    metrics = {"instances": len(servers), "instances_in_task": busy, "instances_stuck": len(stuck)}
    if not stuck:
        yield ctx.ok(f"no instance stuck in a task state for more than {human_age(limit)} "
                     f"({len(servers)} instance(s), {busy} in a task)", metrics=metrics)
        return
    lines = [_server_line(s, now) for s in stuck]
    yield ctx.result(count_status(len(stuck), ctx.thresholds),
                     f"{len(stuck)} instance(s) stuck in a task state for more than {human_age(limit)}: {names_list(lines, 3)}",
                     metrics=metrics, details="\n".join(lines))


CHECKS = [API, compute_services_up, services_disabled, hypervisors, instances_error, instances_stuck]
