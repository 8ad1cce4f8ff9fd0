"""Neutron: API latency, agents alive and admin-up per host and type, ports in binding_failed, IP exhaustion."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from opsctl.checkdef import CheckContext, check
from opsctl.checks._api import (
    DAILY, WEEKLY, age_seconds, api_probe_check, connection, count_status, fetch, group_by_host, human_age,
    names_list, raw_get, utcnow, with_latency,
)
from opsctl.results import Result, Status, threshold_status

API = api_probe_check("neutron", "network", lambda conn: raw_get(conn.network, "/"))


def _agent_name(a: Any) -> str:
    return f"{a.agent_type or a.binary} ({a.binary})" if a.agent_type and a.binary else (a.agent_type or a.binary or a.id)


@check("neutron.agents_alive", needs=("cloud",), scope="cloud", runbook="neutron-agent-dead", profiles=DAILY,
       remediation="Restart the named agent on its host and read its log; agents report over RabbitMQ, so check "
                   "the broker too. An agent counts as dead after agent_down_time without a heartbeat.")
def agents_alive(ctx: CheckContext) -> Iterable[Result]:
    """Every Neutron agent is sending heartbeats (alive), per host and agent type."""
    agents, seconds = fetch("neutron agents", connection(ctx).network.agents)
    yield from with_latency(evaluate_agents_alive(ctx, agents), seconds)


def evaluate_agents_alive(ctx: CheckContext, agents: Iterable[Any], now: Any = None) -> Iterator[Result]:
    now = now or utcnow()
    agents = list(agents)
    if not agents:
        yield ctx.ok("no neutron agents registered (ML2/OVN or an agentless backend)")
        return
    for host, group in group_by_host(agents).items():
        dead = [a for a in group if not a.is_alive]
        metrics = {"agents": len(group), "agents_dead": len(dead)}
        if not dead:
            yield ctx.ok(f"{len(group)} agent(s) alive on {host}: {names_list(sorted(a.agent_type or a.binary for a in group), 8)}",
                         host=host, metrics=metrics)
            continue
        lines = [f"{_agent_name(a)} on {a.host} dead (last heartbeat {human_age(age_seconds(a.last_heartbeat_at, now))} ago"
                 f"{', admin down' if not a.is_admin_state_up else ''})" for a in dead]
        # an agent an operator set admin-down is expected to be gone: warn, don't page
        status = Status.CRITICAL if any(a.is_admin_state_up for a in dead) else Status.WARNING
        yield ctx.result(status, "; ".join(lines), host=host, metrics=metrics, details="\n".join(lines))


@check("neutron.agents_admin_up", needs=("cloud",), scope="cloud", runbook="neutron-agent-dead", profiles=DAILY,
       remediation="If the maintenance is over: openstack network agent set --enable AGENT_ID.")
def agents_admin_up(ctx: CheckContext) -> Iterable[Result]:
    """Neutron agents that are administratively down, per host."""
    agents, seconds = fetch("neutron agents", connection(ctx).network.agents)
    yield from with_latency(evaluate_agents_admin_up(ctx, agents), seconds)


def evaluate_agents_admin_up(ctx: CheckContext, agents: Iterable[Any]) -> Iterator[Result]:
    agents = list(agents)
    if not agents:
        yield ctx.ok("no neutron agents registered")
        return
    for host, group in group_by_host(agents).items():
        down = [a for a in group if not a.is_admin_state_up]
        metrics = {"agents_admin_down": len(down)}
        if down:
            yield ctx.warning("admin down: " + "; ".join(f"{_agent_name(a)} on {a.host}" for a in down), host=host, metrics=metrics)
        else:
            yield ctx.ok(f"all {len(group)} agent(s) on {host} admin up", host=host, metrics=metrics)


PORT_FIELDS = ["id", "binding:vif_type", "binding:host_id", "device_owner", "device_id", "network_id"]


@check("neutron.ports_binding_failed", needs=("cloud",), scope="cloud", runbook="neutron-port-binding-failed",
       profiles=DAILY, thresholds={"warning": 1, "critical": None},
       remediation="A port fails to bind when no live agent of the right type runs on the host (binding:host_id): "
                   "check the L2 agent there and the mechanism drivers, then rebind or recreate the port.")
def ports_binding_failed(ctx: CheckContext) -> Iterable[Result]:
    """Ports whose binding failed (binding:vif_type binding_failed)."""
    # Neutron refuses binding:vif_type as a filter: list the few fields needed and filter here
    ports, seconds = fetch("ports", connection(ctx).network.ports, fields=PORT_FIELDS)
    yield from with_latency(evaluate_ports_binding_failed(ctx, ports), seconds)


def evaluate_ports_binding_failed(ctx: CheckContext, ports: Iterable[Any]) -> Iterator[Result]:
    failed = [p for p in ports if p.binding_vif_type == "binding_failed"]
    metrics = {"ports_binding_failed": len(failed)}
    if not failed:
        yield ctx.ok("no port in binding_failed", metrics=metrics)
        return
    lines = [f"port {p.id} on host {p.binding_host_id or '?'} (device {p.device_owner or '-'} {p.device_id or ''})".strip()
             for p in failed]
    hosts = sorted({p.binding_host_id or "?" for p in failed})
    yield ctx.result(count_status(len(failed), ctx.thresholds),
                     f"{len(failed)} port(s) in binding_failed on host(s) {names_list(hosts)}", metrics=metrics,
                     details="\n".join(lines))


@check("neutron.network_ip_availability", needs=("cloud",), scope="cloud", runbook="network-ip-exhaustion",
       profiles=WEEKLY, thresholds={"warning": 80, "critical": 90},
       remediation="Add a subnet or an allocation pool to the network, or release unused ports/floating IPs.")
def network_ip_availability(ctx: CheckContext) -> Iterable[Result]:
    """Networks whose IPv4 subnets are running out of addresses (used/total percent)."""
    items, seconds = fetch("network IP availability", connection(ctx).network.network_ip_availabilities)
    yield from with_latency(evaluate_ip_availability(ctx, items), seconds)


def _ipv4_usage(net: Any) -> tuple[int, int]:
    """(used, total) over the network's IPv4 subnets; IPv6 subnets are too large to run out."""
    subnets = net.subnet_ip_availability or []
    v4 = [s for s in subnets if s.get("ip_version") == 4]
    if not subnets:
        return int(net.used_ips or 0), int(net.total_ips or 0)
    return sum(int(s.get("used_ips") or 0) for s in v4), sum(int(s.get("total_ips") or 0) for s in v4)


def evaluate_ip_availability(ctx: CheckContext, items: Iterable[Any]) -> Iterator[Result]:
    rows = []
    for net in items:
        used, total = _ipv4_usage(net)
        if total > 0:
            rows.append((100.0 * used / total, net.network_name or net.network_id, used, total))
    rows.sort(reverse=True)
    warn, crit = ctx.thresholds.get("warning"), ctx.thresholds.get("critical")
    if not rows:
        yield ctx.ok("no network with IPv4 subnets", metrics={"networks": 0})
        return
    worst_pct = rows[0][0]
    full = [(pct, name, used, total) for pct, name, used, total in rows if threshold_status(pct, warn, crit) != Status.OK]
    metrics = {"networks": len(rows), "max_used_percent": round(worst_pct, 1), "networks_over_threshold": len(full)}
    details = "\n".join(f"{name}: {used}/{total} IPv4 addresses used ({pct:.0f}%)" for pct, name, used, total in rows)
    if not full:
        yield ctx.ok(f"{len(rows)} network(s), fullest {rows[0][1]} at {worst_pct:.0f}% of IPv4 addresses used",
                     metrics=metrics, details=details)
        return
    text = names_list([f"{name} {used}/{total} ({pct:.0f}%)" for pct, name, used, total in full], 4)
    yield ctx.result(threshold_status(worst_pct, warn, crit), f"networks running out of IPv4 addresses: {text}",
                     metrics=metrics, details=details)


CHECKS = [API, agents_alive, agents_admin_up, ports_binding_failed, network_ip_availability]
