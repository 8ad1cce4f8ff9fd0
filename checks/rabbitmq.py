"""RabbitMQ: node running, alarms, partitions, queues with messages and no consumers, queue depth.

Data comes from the management API when `rabbitmq.management_url` is set, else from rabbitmqctl
(`rabbitmq.rabbitmqctl` argv prefix, run on the local host).
"""

from __future__ import annotations

import fnmatch
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from opsctl.checkdef import CheckContext, check
from opsctl.config import RabbitSection
from opsctl.errors import OpsctlError, UnavailableError
from opsctl.hosts import CommandNotFound, CommandTimeout, LocalHost
from opsctl.results import Result, Status, threshold_status

DAILY = ("daily", "weekly")


@dataclass
class ClusterState:
    """What the node-level checks need, from either source."""

    node: str
    running_nodes: list[str]
    known_nodes: list[str]
    alarms: list[str] = field(default_factory=list)  # 'memory alarm on rabbit@a'
    partitions: dict[str, list[str]] = field(default_factory=dict)  # node -> nodes it cannot see


@dataclass(frozen=True)
class Queue:
    vhost: str
    name: str
    messages: int
    consumers: int

    @property
    def label(self) -> str:
        return self.name if self.vhost == "/" else f"{self.vhost}:{self.name}"


# ------------------------------------------------------------------------------------ rabbitmqctl
def node_name(cfg: RabbitSection) -> str:
    """The node rabbitmqctl talks to: `-n NODE`, RABBITMQ_NODENAME=... in the argv prefix, else rabbit@<host>."""
    argv = list(cfg.rabbitmqctl)
    for i, arg in enumerate(argv):
        if arg in ("-n", "--node") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--node="):
            return arg.split("=", 1)[1]
        if arg.startswith("RABBITMQ_NODENAME="):
            return arg.split("=", 1)[1]
    if cfg.management_url:
        from urllib.parse import urlsplit

        return f"rabbit@{urlsplit(cfg.management_url).hostname or 'localhost'}"
    return f"rabbit@{socket.gethostname().split('.')[0]}"


def host_of(node: str) -> str:
    return node.split("@", 1)[1] if "@" in node else node


def ctl_json(cfg: RabbitSection, *args: str) -> Any:
    """Run `rabbitmqctl ARGS --formatter json`; UnavailableError naming the node and the reason."""
    argv = [*cfg.rabbitmqctl, *args, "--formatter", "json"]
    node = node_name(cfg)
    try:
        out = LocalHost().run(argv, timeout=cfg.timeout)
    except CommandTimeout:
        raise UnavailableError(f"RabbitMQ node {node}: rabbitmqctl {args[0]} did not answer within {cfg.timeout:g}s") from None
    except CommandNotFound:
        raise OpsctlError(f"rabbitmqctl not found: {cfg.rabbitmqctl[0]}",
                          hint="set rabbitmq.rabbitmqctl (argv prefix) or rabbitmq.management_url") from None
    if out.rc != 0:
        raise UnavailableError(f"RabbitMQ node {node} not running or unreachable: {ctl_error(out.stderr or out.stdout)}")
    try:
        return json.loads(out.stdout or "null")
    except json.JSONDecodeError:
        raise OpsctlError(f"rabbitmqctl {args[0]}: output is not JSON: {out.stdout[:120]!r}") from None


def ctl_error(text: str) -> str:
    """The useful lines of a rabbitmqctl failure: 'Error: ...' and the diagnostic about the node."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    picked = [ln for ln in lines if ln.startswith("Error")][:1]
    diagnostics = lines[lines.index("DIAGNOSTICS") + 1:] if "DIAGNOSTICS" in lines else []
    picked += [ln.lstrip("* ") for ln in diagnostics if ln.startswith("*")][:1]
    return " / ".join(picked) or (lines[0] if lines else "no output")


def _alarm_text(alarm: Any) -> str:
    if isinstance(alarm, Mapping):
        what = alarm.get("resource") or alarm.get("type") or "alarm"
        node = alarm.get("node")
        return f"{what} alarm" + (f" on {node}" if node else "")
    return str(alarm)


def state_from_ctl(cluster: Mapping[str, Any], node: str) -> ClusterState:
    known = list(dict.fromkeys([*(cluster.get("disk_nodes") or []), *(cluster.get("ram_nodes") or [])]))
    partitions = cluster.get("partitions") or {}
    if isinstance(partitions, list):  # older formatters: [[node, [nodes]]]
        partitions = {p[0]: list(p[1]) for p in partitions if len(p) == 2}
    return ClusterState(node=node, running_nodes=list(cluster.get("running_nodes") or []), known_nodes=known,
                        alarms=[_alarm_text(a) for a in cluster.get("alarms") or []],
                        partitions={str(k): list(v) for k, v in partitions.items() if v})


def queues_from_ctl(cfg: RabbitSection) -> list[Queue]:
    queues = []
    for vhost in ctl_json(cfg, "list_vhosts", "name") or []:
        name = vhost["name"] if isinstance(vhost, Mapping) else str(vhost)
        for q in ctl_json(cfg, "list_queues", "-p", name, "name", "messages", "consumers") or []:
            queues.append(Queue(name, q["name"], int(q.get("messages") or 0), int(q.get("consumers") or 0)))
    return queues


# ------------------------------------------------------------------------------------ management API
def mgmt_get(cfg: RabbitSection, path: str) -> Any:
    import requests

    password = cfg.password.resolve("rabbitmq.password") if cfg.password else ("guest" if cfg.user == "guest" else "")
    url = cfg.management_url.rstrip("/") + path
    try:
        resp = requests.get(url, auth=(cfg.user, password), timeout=cfg.timeout)
    except requests.RequestException as exc:
        raise UnavailableError(f"RabbitMQ management API {cfg.management_url} unreachable: {type(exc).__name__}") from None
    if resp.status_code == 401:
        raise OpsctlError(f"RabbitMQ management API refused user {cfg.user!r} (HTTP 401)",
                          hint="check rabbitmq.user / rabbitmq.password (the user needs the monitoring tag)")
    if resp.status_code >= 400:
        raise UnavailableError(f"RabbitMQ management API {path} answered HTTP {resp.status_code}")
    return resp.json()


def state_from_mgmt(nodes: Sequence[Mapping[str, Any]], node: str) -> ClusterState:
    alarms = []
    for n in nodes:
        if n.get("mem_alarm"):
            alarms.append(f"memory alarm on {n['name']}")
        if n.get("disk_free_alarm"):
            alarms.append(f"disk_free alarm on {n['name']}")
    return ClusterState(
        node=nodes[0]["name"] if nodes and not node else node,
        running_nodes=[n["name"] for n in nodes if n.get("running")], known_nodes=[n["name"] for n in nodes],
        alarms=alarms, partitions={n["name"]: list(n["partitions"]) for n in nodes if n.get("partitions")},
    )


def queues_from_mgmt(items: Sequence[Mapping[str, Any]]) -> list[Queue]:
    return [Queue(q.get("vhost", "/"), q["name"], int(q.get("messages") or 0), int(q.get("consumers") or 0)) for q in items]


# ------------------------------------------------------------------------------------ sources
def cluster_state(cfg: RabbitSection) -> ClusterState:
    node = node_name(cfg)
    if cfg.management_url:
        return state_from_mgmt(mgmt_get(cfg, "/api/nodes"), node)
    return state_from_ctl(ctl_json(cfg, "cluster_status"), node)


def list_queues(cfg: RabbitSection) -> list[Queue]:
    if cfg.management_url:
        return queues_from_mgmt(mgmt_get(cfg, "/api/queues?columns=name,vhost,messages,consumers"))
    return queues_from_ctl(cfg)


# ------------------------------------------------------------------------------------ checks
@check("rabbitmq.node_running", needs=("rabbitmq",), scope="global", runbook="rabbitmq-down", profiles=DAILY,
       remediation="Start rabbitmq-server on the named node and read its log; every OpenStack service loses RPC "
                   "without it (nova-compute stays 'down' until its next heartbeat gets through).")
def node_running(ctx: CheckContext) -> Iterable[Result]:
    """The RabbitMQ node answers and every cluster member is running."""
    cfg = ctx.config.rabbitmq
    node = node_name(cfg)
    try:
        state = cluster_state(cfg)
    except UnavailableError as exc:
        yield ctx.critical(exc.message, host=host_of(node), metrics={"up": 0})
        return
    yield evaluate_nodes(ctx, state)


def evaluate_nodes(ctx: CheckContext, state: ClusterState) -> Result:
    stopped = [n for n in state.known_nodes if n not in state.running_nodes]
    metrics = {"up": 1, "nodes": len(state.known_nodes), "nodes_running": len(state.running_nodes)}
    host = host_of(state.node)
    if stopped:
        return ctx.critical(f"RabbitMQ cluster nodes not running: {', '.join(stopped)} "
                            f"({len(state.running_nodes)}/{len(state.known_nodes)} running)", host=host, metrics=metrics)
    return ctx.ok(f"RabbitMQ {state.node} running, {len(state.running_nodes)} node(s) in the cluster running",
                  host=host, metrics=metrics)


@check("rabbitmq.alarms", needs=("rabbitmq",), scope="global", runbook="rabbitmq-alarm", profiles=DAILY,
       remediation="A memory or disk alarm blocks every publisher: free disk space / memory on the node, find "
                   "the queues that grow (rabbitmq.queue_depth) and their missing consumers.")
def alarms(ctx: CheckContext) -> Iterable[Result]:
    """No memory, disk or file descriptor alarm is raised in the cluster."""
    state = cluster_state(ctx.config.rabbitmq)
    yield evaluate_alarms(ctx, state)


def evaluate_alarms(ctx: CheckContext, state: ClusterState) -> Result:
    metrics = {"alarms": len(state.alarms)}
    if state.alarms:
        return ctx.critical("alarms raised (publishers are blocked): " + "; ".join(state.alarms),
                            host=host_of(state.node), metrics=metrics)
    return ctx.ok("no resource alarm", host=host_of(state.node), metrics=metrics)


@check("rabbitmq.partitions", needs=("rabbitmq",), scope="global", runbook="rabbitmq-partitioned", profiles=DAILY,
       remediation="A network partition splits the cluster: follow the runbook (pick the surviving side, restart "
                   "the nodes of the other side) and check cluster_partition_handling.")
def partitions(ctx: CheckContext) -> Iterable[Result]:
    """No network partition between cluster nodes."""
    yield evaluate_partitions(ctx, cluster_state(ctx.config.rabbitmq))


def evaluate_partitions(ctx: CheckContext, state: ClusterState) -> Result:
    metrics = {"partitioned_nodes": len(state.partitions)}
    if state.partitions:
        text = "; ".join(f"{n} cannot see {', '.join(others)}" for n, others in sorted(state.partitions.items()))
        return ctx.critical(f"network partition: {text}", host=host_of(state.node), metrics=metrics)
    return ctx.ok("no network partition", host=host_of(state.node), metrics=metrics)


@check("rabbitmq.queues_no_consumers", needs=("rabbitmq",), scope="global", runbook="rabbitmq-queue-backlog",
       profiles=DAILY, thresholds={"warning": 1, "critical": None, "min_messages": 1, "ignore": []},
       remediation="Messages pile up in a queue nobody reads: start the service that consumes it (queue names "
                   "carry the service and host, e.g. compute.HOST), or delete a leftover reply/fanout queue.")
def queues_no_consumers(ctx: CheckContext) -> Iterable[Result]:
    """Queues holding messages with no consumer (ignore: fnmatch patterns of queue names)."""
    cfg = ctx.config.rabbitmq
    yield evaluate_no_consumers(ctx, list_queues(cfg), host_of(node_name(cfg)))


def _ignored(q: Queue, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(q.name, p) or fnmatch.fnmatchcase(q.label, p) for p in patterns)


def evaluate_no_consumers(ctx: CheckContext, queues: Iterable[Queue], host: str) -> Result:
    queues = [q for q in queues if not _ignored(q, ctx.thresholds.get("ignore") or [])]
    floor = int(ctx.thresholds.get("min_messages", 1))
    orphans = sorted((q for q in queues if q.consumers == 0 and q.messages >= floor), key=lambda q: -q.messages)
    metrics = {"queues": len(queues), "queues_without_consumers": len(orphans),
               "messages_without_consumers": sum(q.messages for q in orphans)}
    if not orphans:
        return ctx.ok(f"{len(queues)} queue(s), none with messages and no consumer", host=host, metrics=metrics)
    listed = ", ".join(f"{q.label} ({q.messages} msg)" for q in orphans[:5]) + (
        f" (+{len(orphans) - 5} more)" if len(orphans) > 5 else "")
    status = threshold_status(len(orphans), ctx.thresholds.get("warning"), ctx.thresholds.get("critical"))
    return ctx.result(status, f"{len(orphans)} queue(s) with messages and no consumer: {listed}", host=host,
                      metrics=metrics, details="\n".join(f"{q.label}: {q.messages}" for q in orphans))


@check("rabbitmq.queue_depth", needs=("rabbitmq",), scope="global", runbook="rabbitmq-queue-backlog",
       profiles=DAILY, thresholds={"warning": 1000, "critical": 10000, "ignore": []},
       remediation="A deep queue means its consumers are too slow or stuck: check the consuming service (name in "
                   "the queue), its logs and its worker count.")
def queue_depth(ctx: CheckContext) -> Iterable[Result]:
    """The deepest queue's message count against the thresholds."""
    cfg = ctx.config.rabbitmq
    yield evaluate_depth(ctx, list_queues(cfg), host_of(node_name(cfg)))


def evaluate_depth(ctx: CheckContext, queues: Iterable[Queue], host: str) -> Result:
    queues = sorted((q for q in queues if not _ignored(q, ctx.thresholds.get("ignore") or [])), key=lambda q: -q.messages)
    warn, crit = ctx.thresholds.get("warning"), ctx.thresholds.get("critical")
    deep = [q for q in queues if threshold_status(q.messages, warn, crit) != Status.OK]
    top = queues[0].messages if queues else 0
    metrics = {"queues": len(queues), "max_queue_messages": top, "messages_total": sum(q.messages for q in queues),
               "queues_over_threshold": len(deep)}
    if not deep:
        where = f" ({queues[0].label})" if queues and top else ""
        return ctx.ok(f"{len(queues)} queue(s), deepest {top} message(s){where}", host=host, metrics=metrics)
    listed = ", ".join(f"{q.label} ({q.messages} msg, {q.consumers} consumer(s))" for q in deep[:5])
    return ctx.result(threshold_status(top, warn, crit), f"deep queues: {listed}", host=host, metrics=metrics,
                      details="\n".join(f"{q.label}: {q.messages}" for q in deep))


CHECKS = [node_running, alarms, partitions, queues_no_consumers, queue_depth]
