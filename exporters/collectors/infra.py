"""Infrastructure collectors: MariaDB/Galera state (config `database`) and RabbitMQ queues (config `rabbitmq`).

The database is reached with the mysql check module's bounded connection helper; RabbitMQ through its
management API when `rabbitmq.management_url` is set, else `rabbitmqctl` (argv prefix from config).
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.request
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
def _management_queues(cfg: RabbitSection) -> list[dict[str, Any]]:
    url = cfg.management_url.rstrip("/") + "/api/queues?columns=name,vhost,messages,messages_ready," \
                                           "messages_unacknowledged,consumers"
    req = urllib.request.Request(url)
    password = cfg.password.resolve("rabbitmq.password") if cfg.password else "guest"
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{cfg.user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=cfg.timeout) as resp:  # noqa: S310 - configured URL
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        raise CollectorError(f"RabbitMQ management API: HTTP {exc.code}") from None
    except (OSError, ValueError) as exc:
        raise CollectorError(f"RabbitMQ management API unreachable: {type(exc).__name__}: {mask(str(exc))}") from None


def _ctl_json(cfg: RabbitSection, args: list[str]) -> Any:
    argv = [*cfg.rabbitmqctl, *args]
    try:
        out = subprocess.run(argv, capture_output=True, timeout=cfg.timeout, check=False)
    except FileNotFoundError:
        raise CollectorError(f"{cfg.rabbitmqctl[0]} not found", ) from None
    except subprocess.TimeoutExpired:
        raise CollectorError(f"rabbitmqctl timed out after {cfg.timeout:g}s") from None
    if out.returncode != 0:
        last = (out.stderr or out.stdout).decode(errors="replace").strip().splitlines()
        raise CollectorError(f"rabbitmqctl {args[0]} failed (rc {out.returncode}): {mask(last[-1] if last else '')}")
    text = out.stdout.decode(errors="replace").strip()
    return json.loads(text) if text else []


def _ctl_queues(cfg: RabbitSection) -> list[dict[str, Any]]:
    vhosts = [v["name"] for v in _ctl_json(cfg, ["list_vhosts", "-q", "--formatter", "json", "name"])]
    queues = []
    for vhost in vhosts:
        for q in _ctl_json(cfg, ["list_queues", "-q", "--formatter", "json", "-p", vhost, "name", "messages",
                                 "messages_ready", "messages_unacknowledged", "consumers"]):
            queues.append({**q, "vhost": vhost})
    return queues


def rabbitmq_families(queues: list[dict[str, Any]]) -> list:
    fam = Families()
    fam.gauge("opsctl_rabbitmq_up", "1 if RabbitMQ answered", value=1)
    fam.gauge("opsctl_rabbitmq_queues", "Queues on the broker", value=len(queues))
    total = 0.0
    for q in queues:
        labels = {"vhost": q.get("vhost"), "queue": q.get("name")}
        messages = float(q.get("messages") or 0)
        total += messages
        fam.gauge("opsctl_rabbitmq_queue_messages", "Messages in the queue (ready + unacknowledged)", labels, messages)
        fam.gauge("opsctl_rabbitmq_queue_messages_ready", "Messages ready for delivery", labels,
                  float(q.get("messages_ready") or 0))
        fam.gauge("opsctl_rabbitmq_queue_messages_unacked", "Messages delivered, not yet acknowledged", labels,
                  float(q.get("messages_unacknowledged") or 0))
        fam.gauge("opsctl_rabbitmq_queue_consumers", "Consumers of the queue", labels, float(q.get("consumers") or 0))
    fam.gauge("opsctl_rabbitmq_messages", "Messages in all queues", value=total)
    return fam.families()


def collect_rabbitmq(cfg: RabbitSection) -> list:
    try:
        queues = _management_queues(cfg) if cfg.management_url else _ctl_queues(cfg)
    except CollectorError as exc:
        down = Families()
        down.gauge("opsctl_rabbitmq_up", "1 if RabbitMQ answered", value=0)
        raise CollectorError(str(exc), down.families()) from None
    return rabbitmq_families(queues)


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
