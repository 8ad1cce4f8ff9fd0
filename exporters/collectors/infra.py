"""Infrastructure collectors: MariaDB/Galera state (config `database`) and RabbitMQ queues (config `rabbitmq`).

Both reuse the check modules' bounded helpers: `checks.mysql.connect`/`query_pairs` for the database,
`checks.rabbitmq.list_queues`/`cluster_state` for RabbitMQ (management API when
`rabbitmq.management_url` is set, else `rabbitmqctl` with the configured argv prefix).
"""

from __future__ import annotations

from typing import Any, Mapping

from opsctl.config import DatabaseSection, RabbitSection
from opsctl.exporters.collectors._families import Families
from opsctl.exporters.prometheus import CollectorError, ExporterContext, Source
from opsctl.secrets import mask

WSREP_STATES = {"1": "Joining", "2": "Donor/Desynced", "3": "Joined", "4": "Synced"}


# ------------------------------------------------------------------------------------------------ galera
def _db_query(cfg: DatabaseSection) -> tuple[dict[str, str], dict[str, str]]:
    from opsctl.checks.mysql import connect, query_pairs  # the mysql check's bounded connect

    conn = connect(cfg)
    try:
        status = query_pairs(conn, "SHOW GLOBAL STATUS WHERE Variable_name LIKE 'wsrep%' OR Variable_name IN "
                                   "('Threads_connected', 'Uptime', 'Max_used_connections')")
        variables = query_pairs(conn, "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('wsrep_on', 'max_connections')")
    finally:
        conn.close()
    return status, variables


def galera_families(server: str, status: Mapping[str, str], variables: Mapping[str, str]) -> list:
    fam = Families({"server": server})
    fam.gauge("opsctl_mysql_up", "1 if the database answered", value=1)
    for name, key, doc in (("opsctl_mysql_threads_connected", "Threads_connected", "Open client connections"),
                           ("opsctl_mysql_max_connections", "max_connections", "max_connections setting"),
                           ("opsctl_mysql_uptime_seconds", "Uptime", "Server uptime")):
        value = status.get(key, variables.get(key))
        if value not in (None, ""):
            fam.gauge(name, doc, value=float(value))
    enabled = variables.get("wsrep_on", "OFF").upper() == "ON" and "wsrep_cluster_status" in status
    fam.gauge("opsctl_galera_enabled", "1 if the server is a Galera node (wsrep_on)", value=int(enabled))
    if enabled:
        state = status.get("wsrep_local_state", "")
        comment = status.get("wsrep_local_state_comment", WSREP_STATES.get(state, ""))
        fam.gauge("opsctl_galera_cluster_size", "wsrep_cluster_size", value=float(status.get("wsrep_cluster_size") or 0))
        fam.gauge("opsctl_galera_primary", "1 if the node is in the Primary component (has quorum)",
                  value=int(status.get("wsrep_cluster_status") == "Primary"))
        fam.gauge("opsctl_galera_synced", "1 if wsrep_local_state is Synced", value=int(comment == "Synced"))
        fam.gauge("opsctl_galera_local_state", "wsrep_local_state (1 Joining, 2 Donor, 3 Joined, 4 Synced)",
                  value=float(state or 0))
        fam.gauge("opsctl_galera_ready", "1 if wsrep_ready is ON", value=int(status.get("wsrep_ready", "").upper() == "ON"))
        fam.gauge("opsctl_galera_connected", "1 if wsrep_connected is ON",
                  value=int(status.get("wsrep_connected", "").upper() == "ON"))
        for key in ("wsrep_local_recv_queue_avg", "wsrep_flow_control_paused"):
            if status.get(key) not in (None, ""):
                fam.gauge(f"opsctl_{key.replace('wsrep_', 'galera_')}", key, value=float(status[key]))
    return fam.families()


def collect_galera(cfg: DatabaseSection) -> list:
    from opsctl.checks.mysql import server_label

    server = server_label(cfg)
    try:
        status, variables = _db_query(cfg)
    except Exception as exc:  # noqa: BLE001 - UnavailableError or a query failure
        down = Families({"server": server})
        down.gauge("opsctl_mysql_up", "1 if the database answered", value=0)
        raise CollectorError(mask(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"), down.families()) from None
    return galera_families(server, status, variables)


# ------------------------------------------------------------------------------------------------ rabbitmq
def rabbitmq_families(queues: list[Any], state: Any | None = None) -> list:
    """Queue depth and consumers per queue (checks.rabbitmq.Queue), node/alarm/partition state if known."""
    fam = Families()
    fam.gauge("opsctl_rabbitmq_up", "1 if RabbitMQ answered", value=1)
    fam.gauge("opsctl_rabbitmq_queues", "Queues on the broker", value=len(queues))
    total = 0.0
    for q in queues:
        labels = {"vhost": q.vhost, "queue": q.name}
        total += q.messages
        fam.gauge("opsctl_rabbitmq_queue_messages", "Messages in the queue (ready + unacknowledged)", labels, q.messages)
        fam.gauge("opsctl_rabbitmq_queue_consumers", "Consumers of the queue", labels, q.consumers)
    fam.gauge("opsctl_rabbitmq_messages", "Messages in all queues", value=total)
    if state is not None:
        fam.gauge("opsctl_rabbitmq_nodes_running", "Cluster nodes running", value=len(state.running_nodes))
        fam.gauge("opsctl_rabbitmq_nodes_known", "Cluster nodes configured", value=len(state.known_nodes))
        fam.gauge("opsctl_rabbitmq_alarms", "Resource alarms in effect (memory, disk)", value=len(state.alarms))
        fam.gauge("opsctl_rabbitmq_partitioned_nodes", "Nodes reporting a network partition", value=len(state.partitions))
    return fam.families()


def collect_rabbitmq(cfg: RabbitSection) -> list:
    from opsctl.checks.rabbitmq import cluster_state, list_queues  # the rabbitmq checks' bounded helpers

    try:
        queues = list_queues(cfg)
        state = cluster_state(cfg)
    except Exception as exc:  # noqa: BLE001 - UnavailableError/OpsctlError or a parse failure
        down = Families()
        down.gauge("opsctl_rabbitmq_up", "1 if RabbitMQ answered", value=0)
        raise CollectorError(mask(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"), down.families()) from None
    return rabbitmq_families(queues, state)


def sources(ctx: ExporterContext) -> list[Source]:
    exp = ctx.config.exporter
    out = []
    if "galera" not in exp.disabled_collectors:
        out.append(Source("galera", lambda: collect_galera(ctx.config.database), interval=exp.refresh_interval,
                          timeout=exp.collector_timeout))
    if "rabbitmq" not in exp.disabled_collectors:
        out.append(Source("rabbitmq", lambda: collect_rabbitmq(ctx.config.rabbitmq), interval=exp.refresh_interval,
                          timeout=exp.collector_timeout))
    return out
