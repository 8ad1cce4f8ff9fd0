"""Evaluation logic of the infrastructure checks (MariaDB/Galera, RabbitMQ, memcached).

No multi-node Galera cluster (lost quorum, missing members) or partitioned RabbitMQ cluster can run here, so
those states are given as the variables/JSON the servers print (names and values as documented by MariaDB Galera
and RabbitMQ 3.x); the real servers, including a one-node Galera, are exercised in
tests/integration/test_infra_checks.py.
"""

from __future__ import annotations

import pytest

from opsctl.checkdef import CheckContext
from opsctl.checks import memcached, mysql, rabbitmq
from opsctl.components import CATALOG
from opsctl.config import Config, parse
from opsctl.results import Status


def ctx_for(chk, config=None, **thresholds):
    return CheckContext(chk, "global", config or Config(), CATALOG, {**chk.thresholds, **thresholds})


GALERA_OK = {"wsrep_cluster_status": "Primary", "wsrep_local_state_comment": "Synced", "wsrep_ready": "ON",
             "wsrep_connected": "ON", "wsrep_cluster_size": "3"}


# ------------------------------------------------------------------------------------ galera
def test_non_galera_server_is_ok():
    r = mysql.evaluate_galera(ctx_for(mysql.galera), {}, {"wsrep_on": "OFF"}, None, "db1")
    assert r.status == Status.OK and "not a Galera node" in r.summary


def test_non_galera_server_when_a_cluster_is_expected_is_critical():
    r = mysql.evaluate_galera(ctx_for(mysql.galera), {}, {"wsrep_on": "OFF"}, 3, "db1")
    assert r.status == Status.CRITICAL


def test_healthy_galera():
    r = mysql.evaluate_galera(ctx_for(mysql.galera), GALERA_OK, {"wsrep_on": "ON"}, 3, "db1")
    assert r.status == Status.OK and r.metrics["cluster_size"] == 3 and "Primary, Synced, size 3/3" in r.summary


@pytest.mark.parametrize("change,status,text", [
    ({"wsrep_cluster_status": "non-Primary"}, Status.CRITICAL, "not Primary"),
    ({"wsrep_local_state_comment": "Donor/Desynced"}, Status.WARNING, "Donor/Desynced"),
    ({"wsrep_local_state_comment": "Joining"}, Status.CRITICAL, "Joining"),
    ({"wsrep_ready": "OFF"}, Status.CRITICAL, "wsrep_ready OFF"),
    ({"wsrep_connected": "OFF"}, Status.CRITICAL, "wsrep_connected OFF"),
    ({"wsrep_cluster_size": "2"}, Status.WARNING, "cluster size 2, expected 3"),
    ({"wsrep_cluster_size": "1"}, Status.CRITICAL, "cluster size 1, expected 3"),
])
def test_galera_failures(change, status, text):
    r = mysql.evaluate_galera(ctx_for(mysql.galera), {**GALERA_OK, **change}, {"wsrep_on": "ON"}, 3, "db1")
    assert r.status == status and text in r.summary and r.runbook == "galera-not-synced"


def test_galera_size_without_expectation_is_only_a_metric():
    r = mysql.evaluate_galera(ctx_for(mysql.galera), {**GALERA_OK, "wsrep_cluster_size": "2"}, {"wsrep_on": "ON"}, None, "db")
    assert r.status == Status.OK and r.metrics["cluster_size"] == 2


# ------------------------------------------------------------------------------------ connections
@pytest.mark.parametrize("used,status", [(10, Status.OK), (160, Status.WARNING), (190, Status.CRITICAL)])
def test_connections_thresholds(used, status):
    r = mysql.evaluate_connections(ctx_for(mysql.connections), {"Threads_connected": str(used), "Max_used_connections": "195"},
                                   {"max_connections": "200"}, "db1")
    assert r.status == status and f"{used}/200" in r.summary and r.metrics["max_used_connections"] == 195


# ------------------------------------------------------------------------------------ rabbitmq
REAL_CTL_FAILURE = """Error: unable to perform an operation on node 'rabbit@nohost'. Please see diagnostics information and suggestions below.

Most common reasons for this are:

 * Target node is unreachable (e.g. due to hostname resolution, TCP connection or firewall issues)
 * CLI tool fails to authenticate with the server (e.g. due to CLI tool's Erlang cookie not matching that of the server)
 * Target node is not running

DIAGNOSTICS
===========

attempted to contact: [rabbit@nohost]

rabbit@nohost:
  * unable to connect to epmd (port 4369) on nohost: nxdomain (non-existing domain)
"""


def test_ctl_error_keeps_the_error_and_the_diagnostic():
    text = rabbitmq.ctl_error(REAL_CTL_FAILURE)
    assert text.startswith("Error: unable to perform an operation on node 'rabbit@nohost'")
    assert "unable to connect to epmd (port 4369) on nohost" in text


@pytest.mark.parametrize("argv,node", [
    (["rabbitmqctl", "-n", "rabbit@ctl1"], "rabbit@ctl1"),
    (["env", "RABBITMQ_NODENAME=rabbit@localhost", "/usr/lib/rabbitmq/bin/rabbitmqctl"], "rabbit@localhost"),
    (["docker", "exec", "rabbitmq", "rabbitmqctl", "--node=rabbit@c2"], "rabbit@c2"),
])
def test_node_name_from_the_argv_prefix(argv, node):
    cfg = parse({"rabbitmq": {"rabbitmqctl": argv}}).rabbitmq
    assert rabbitmq.node_name(cfg) == node


CLUSTER = {"alarms": [], "disk_nodes": ["rabbit@a", "rabbit@b", "rabbit@c"], "ram_nodes": [], "partitions": {},
           "running_nodes": ["rabbit@a", "rabbit@b", "rabbit@c"]}


def test_cluster_status_healthy():
    state = rabbitmq.state_from_ctl(CLUSTER, "rabbit@a")
    assert rabbitmq.evaluate_nodes(ctx_for(rabbitmq.node_running), state).status == Status.OK
    assert rabbitmq.evaluate_alarms(ctx_for(rabbitmq.alarms), state).status == Status.OK
    assert rabbitmq.evaluate_partitions(ctx_for(rabbitmq.partitions), state).status == Status.OK


def test_cluster_member_stopped_partition_and_alarm():
    cluster = {**CLUSTER, "running_nodes": ["rabbit@a", "rabbit@b"],
               "partitions": {"rabbit@a": ["rabbit@b"], "rabbit@b": ["rabbit@a"]},
               "alarms": [{"node": "rabbit@b", "resource": "disk", "type": "resource_limit"}]}
    state = rabbitmq.state_from_ctl(cluster, "rabbit@a")
    nodes = rabbitmq.evaluate_nodes(ctx_for(rabbitmq.node_running), state)
    assert nodes.status == Status.CRITICAL and "rabbit@c" in nodes.summary and nodes.host == "a"
    alarm = rabbitmq.evaluate_alarms(ctx_for(rabbitmq.alarms), state)
    assert alarm.status == Status.CRITICAL and "disk alarm on rabbit@b" in alarm.summary and alarm.runbook == "rabbitmq-alarm"
    part = rabbitmq.evaluate_partitions(ctx_for(rabbitmq.partitions), state)
    assert part.status == Status.CRITICAL and "rabbit@a cannot see rabbit@b" in part.summary


def test_management_api_nodes():
    nodes = [{"name": "rabbit@a", "running": True, "mem_alarm": True, "disk_free_alarm": False, "partitions": []},
             {"name": "rabbit@b", "running": False, "mem_alarm": False, "disk_free_alarm": False, "partitions": []}]
    state = rabbitmq.state_from_mgmt(nodes, "rabbit@a")
    assert rabbitmq.evaluate_nodes(ctx_for(rabbitmq.node_running), state).status == Status.CRITICAL
    assert "memory alarm on rabbit@a" in rabbitmq.evaluate_alarms(ctx_for(rabbitmq.alarms), state).summary


QUEUES = [rabbitmq.Queue("/", "conductor", 0, 1), rabbitmq.Queue("/", "compute.cmp7", 42, 0),
          rabbitmq.Queue("/nova", "scheduler", 5000, 2), rabbitmq.Queue("/", "reply_abc", 3, 0)]


def test_queues_without_consumers_named_and_ignorable():
    r = rabbitmq.evaluate_no_consumers(ctx_for(rabbitmq.queues_no_consumers), QUEUES, "a")
    assert r.status == Status.WARNING and "compute.cmp7 (42 msg)" in r.summary and "reply_abc" in r.summary
    r = rabbitmq.evaluate_no_consumers(ctx_for(rabbitmq.queues_no_consumers, ignore=["reply_*"]), QUEUES, "a")
    assert "reply_abc" not in r.summary and r.metrics["queues_without_consumers"] == 1
    assert rabbitmq.evaluate_no_consumers(ctx_for(rabbitmq.queues_no_consumers), [], "a").status == Status.OK


def test_queue_depth_thresholds():
    r = rabbitmq.evaluate_depth(ctx_for(rabbitmq.queue_depth), QUEUES, "a")
    assert r.status == Status.WARNING and "/nova:scheduler (5000 msg, 2 consumer(s))" in r.summary
    assert rabbitmq.evaluate_depth(ctx_for(rabbitmq.queue_depth, critical=4000), QUEUES, "a").status == Status.CRITICAL
    assert rabbitmq.evaluate_depth(ctx_for(rabbitmq.queue_depth), [], "a").status == Status.OK


# ------------------------------------------------------------------------------------ memcached
def test_memcached_stats_parsing_and_thresholds():
    stats = memcached.parse_stats("STAT pid 1\r\nSTAT version 1.6.18\r\nSTAT curr_connections 900\r\nSTAT uptime 5\r\nEND\r\n")
    settings = memcached.parse_stats("STAT maxconns 1024\r\nEND\r\n")
    r = memcached.evaluate_stats(ctx_for(memcached.memcached_stats), "mc1:11211", stats, settings, 0.01)
    assert r.status == Status.WARNING and "900/1024" in r.summary and r.host == "mc1"


@pytest.mark.parametrize("server,parsed", [("h:1", ("h", 1)), ("h", ("h", 11211)), ("[::1]:5", ("::1", 5))])
def test_memcached_server_spelling(server, parsed):
    assert memcached.split_server(server) == parsed


def test_infra_check_ids_and_runbooks():
    table = {"mysql.reachable": "mariadb-down", "mysql.connections": "mariadb-connections", "mysql.galera": "galera-not-synced",
             "rabbitmq.node_running": "rabbitmq-down", "rabbitmq.alarms": "rabbitmq-alarm",
             "rabbitmq.partitions": "rabbitmq-partitioned", "rabbitmq.queues_no_consumers": "rabbitmq-queue-backlog",
             "rabbitmq.queue_depth": "rabbitmq-queue-backlog", "memcached.stats": "memcached-down"}
    checks = {c.id: c for m in (mysql, rabbitmq, memcached) for c in m.CHECKS}
    assert {k: c.runbook for k, c in checks.items()} == table
    assert all(c.scope == "global" for c in checks.values())
