"""Infrastructure checks against real servers: MariaDB, RabbitMQ (rabbitmqctl and management API), memcached.

Each check runs through the real runner (run_checks) with a parsed config, as `opsctl check` does.
Servers that a test kills are its own throwaway instances, never the shared session fixtures.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pymysql
import pytest

import servers
from opsctl.checks import memcached as mc_checks
from opsctl.checks import mysql as mysql_checks
from opsctl.checks import rabbitmq as rmq_checks
from opsctl.components import CATALOG
from opsctl.config import parse
from opsctl.inventory import Inventory
from opsctl.results import Status
from opsctl.runner import Selection, run_checks

ALL = [*mysql_checks.CHECKS, *rmq_checks.CHECKS, *mc_checks.CHECKS]


def run(config: dict, pattern: str):
    report = run_checks(ALL, Inventory((), "test"), parse(config), CATALOG, Selection(checks=(pattern,)), clouds=[])
    return {r.check: r for r in report.results}, report


MON_USER, MON_PASSWORD = "opsctl_mon", "mon-pw-4711"


def add_monitor_user(db) -> None:
    """A TCP monitoring account (mariadb-install-db leaves root@127.0.0.1 without the fixture's password)."""
    db.sql(f"CREATE USER IF NOT EXISTS '{MON_USER}'@'127.0.0.1' IDENTIFIED BY '{MON_PASSWORD}'; "
           f"GRANT PROCESS, REPLICATION CLIENT ON *.* TO '{MON_USER}'@'127.0.0.1'; FLUSH PRIVILEGES;")


@pytest.fixture(scope="module")
def db(mariadb):
    add_monitor_user(mariadb)
    return mariadb


def db_config(db, monkeypatch, **extra):
    monkeypatch.setenv("OPSCTL_TEST_DB_PASSWORD", MON_PASSWORD)
    return {"database": {"host": "127.0.0.1", "port": db.port, "user": MON_USER,
                         "password": {"env": "OPSCTL_TEST_DB_PASSWORD"}, "connect_timeout": 3, **extra}}


# ------------------------------------------------------------------------------------ MariaDB
def test_mariadb_reachable_connections_and_not_galera(db, monkeypatch):
    results, report = run(db_config(db, monkeypatch), "mysql.*")
    assert report.status == Status.OK, [r.summary for r in report.results]
    assert "answered in" in results["mysql.reachable"].summary and results["mysql.reachable"].host == "127.0.0.1"
    conns = results["mysql.connections"]
    assert conns.metrics["max_connections"] == 200 and conns.metrics["connections"] >= 1
    assert "not a Galera node" in results["mysql.galera"].summary


def test_mariadb_over_the_socket(mariadb):
    cfg = {"database": {"socket": mariadb.socket, "user": "root", "password": {"file": _pw_file(mariadb)}}}
    results, _ = run(cfg, "mysql.reachable")
    assert results["mysql.reachable"].status == Status.OK and "socket" in results["mysql.reachable"].summary


def _pw_file(db) -> str:
    path = servers.tempdir("dbpw") / "pw"
    path.write_text(db.password + "\n")
    return str(path)


def test_mariadb_connection_thresholds_with_real_connections(db, monkeypatch):
    cfg = db_config(db, monkeypatch)
    held = [pymysql.connect(host="127.0.0.1", port=db.port, user=MON_USER, password=MON_PASSWORD) for _ in range(25)]
    try:
        cfg["checks"] = {"thresholds": {"mysql.connections": {"warning": 5, "critical": 12}}}  # 26+/200 = 13%
        results, _ = run(cfg, "mysql.connections")
        r = results["mysql.connections"]
        assert r.status == Status.CRITICAL and r.runbook == "mariadb-connections" and r.metrics["connections"] >= 26
        cfg["checks"] = {"thresholds": {"mysql.connections": {"warning": 5, "critical": 50}}}
        assert run(cfg, "mysql.connections")[0]["mysql.connections"].status == Status.WARNING
    finally:
        for c in held:
            c.close()


def test_mariadb_wrong_password_is_critical_and_masked(db, monkeypatch):
    monkeypatch.setenv("OPSCTL_TEST_DB_BADPW", "not-the-password-xyz")
    cfg = {"database": {"host": "127.0.0.1", "port": db.port, "user": MON_USER,
                        "password": {"env": "OPSCTL_TEST_DB_BADPW"}}}
    results, _ = run(cfg, "mysql.*")
    r = results["mysql.reachable"]
    assert r.status == Status.CRITICAL and "Access denied" in r.summary and r.runbook == "mariadb-down"
    # the other two cannot tell: UNKNOWN with the reason, not a traceback
    assert results["mysql.galera"].status == Status.UNKNOWN and "unreachable" in results["mysql.galera"].summary
    assert all("not-the-password-xyz" not in json.dumps(x.to_dict()) for x in results.values())


def test_killed_mariadb_is_critical_with_the_reason(monkeypatch):
    db = servers.MariaDB(servers.tempdir("apichk-mariadb")).start()
    try:
        add_monitor_user(db)
        cfg = db_config(db, monkeypatch)
        assert run(cfg, "mysql.reachable")[0]["mysql.reachable"].status == Status.OK
        db.kill()
        t0 = time.monotonic()
        r = run(cfg, "mysql.reachable")[0]["mysql.reachable"]
        assert time.monotonic() - t0 < 10
        assert r.status == Status.CRITICAL and f"127.0.0.1:{db.port} unreachable" in r.summary
        assert "Can't connect" in r.summary or "Connection refused" in r.summary
    finally:
        db.cleanup()


# ------------------------------------------------------------------------------------ RabbitMQ
def _mgmt(rmq, method: str, path: str, body: dict | None = None):
    req = urllib.request.Request(rmq.management_url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


@pytest.fixture
def orphan_queue(rabbitmq):
    """A real queue holding 7 messages and no consumer (created and filled through the management API)."""
    rabbitmq.wait_management()
    name = f"opsctl-test-orphan-{time.monotonic_ns()}"
    _mgmt(rabbitmq, "PUT", f"/api/queues/%2F/{name}", {"durable": False, "auto_delete": False})
    for i in range(7):
        out = _mgmt(rabbitmq, "POST", "/api/exchanges/%2F/amq.default/publish",
                    {"properties": {}, "routing_key": name, "payload": f"m{i}", "payload_encoding": "string"})
        assert out["routed"]
    yield name
    _mgmt(rabbitmq, "DELETE", f"/api/queues/%2F/{name}")


def _wait_queue_counted(rabbitmq, name, count, timeout=30):
    # the management API aggregates message counts every few seconds: poll, bounded
    servers.wait_for(lambda: _mgmt(rabbitmq, "GET", f"/api/queues/%2F/{name}").get("messages") == count, timeout,
                     "queue message count in the management API", interval=0.5)


def test_rabbitmq_via_rabbitmqctl_all_ok(rabbitmq):
    results, report = run({"rabbitmq": {"rabbitmqctl": rabbitmq.ctl}}, "rabbitmq.*")
    assert report.status == Status.OK, [r.summary for r in report.results]
    assert rabbitmq.nodename in results["rabbitmq.node_running"].summary


def test_rabbitmq_orphan_queue_via_rabbitmqctl(rabbitmq, orphan_queue):
    cfg = {"rabbitmq": {"rabbitmqctl": rabbitmq.ctl},
           "checks": {"thresholds": {"rabbitmq.queue_depth": {"warning": 5, "critical": 100}}}}
    results, _ = run(cfg, "rabbitmq.queue*")
    nc = results["rabbitmq.queues_no_consumers"]
    assert nc.status == Status.WARNING and f"{orphan_queue} (7 msg)" in nc.summary and nc.runbook == "rabbitmq-queue-backlog"
    depth = results["rabbitmq.queue_depth"]
    assert depth.status == Status.WARNING and f"{orphan_queue} (7 msg, 0 consumer(s))" in depth.summary
    cfg["checks"]["thresholds"]["rabbitmq.queues_no_consumers"] = {"ignore": ["opsctl-test-orphan-*"]}
    assert run(cfg, "rabbitmq.queues_no_consumers")[0]["rabbitmq.queues_no_consumers"].status == Status.OK


def test_rabbitmq_orphan_queue_via_management_api(rabbitmq, orphan_queue):
    _wait_queue_counted(rabbitmq, orphan_queue, 7)
    cfg = {"rabbitmq": {"management_url": rabbitmq.management_url}}
    results, _ = run(cfg, "rabbitmq.*")
    assert results["rabbitmq.node_running"].status == Status.OK
    assert results["rabbitmq.alarms"].status == Status.OK and results["rabbitmq.partitions"].status == Status.OK
    nc = results["rabbitmq.queues_no_consumers"]
    assert nc.status == Status.WARNING and f"{orphan_queue} (7 msg)" in nc.summary


def test_rabbitmq_management_api_wrong_password_is_a_clear_error(rabbitmq, monkeypatch):
    monkeypatch.setenv("OPSCTL_TEST_RMQ_PW", "wrong-pw-123")
    cfg = {"rabbitmq": {"management_url": rabbitmq.management_url, "password": {"env": "OPSCTL_TEST_RMQ_PW"}}}
    results, _ = run(cfg, "rabbitmq.alarms")
    r = results["rabbitmq.alarms"]
    assert r.status == Status.UNKNOWN and "HTTP 401" in r.summary and "wrong-pw-123" not in r.summary


def test_stopped_rabbitmq_node_is_critical_naming_the_node():
    rmq = servers.RabbitMQ(servers.tempdir("apichk-rabbit")).start()
    try:
        cfg = {"rabbitmq": {"rabbitmqctl": rmq.ctl, "timeout": 20}}
        assert run(cfg, "rabbitmq.node_running")[0]["rabbitmq.node_running"].status == Status.OK
        rmq.stop()
        t0 = time.monotonic()
        results, _ = run(cfg, "rabbitmq.*")
        assert time.monotonic() - t0 < 30
        r = results["rabbitmq.node_running"]
        assert r.status == Status.CRITICAL and rmq.nodename in r.summary and r.runbook == "rabbitmq-down"
        assert "not running or unreachable" in r.summary and "Traceback" not in r.summary + r.details
        assert results["rabbitmq.queue_depth"].status == Status.UNKNOWN
        cfg = {"rabbitmq": {"management_url": rmq.management_url, "timeout": 3}}
        r = run(cfg, "rabbitmq.node_running")[0]["rabbitmq.node_running"]
        assert r.status == Status.CRITICAL and "unreachable" in r.summary
    finally:
        rmq.cleanup()


# ------------------------------------------------------------------------------------ memcached
def test_memcached_stats_real_server(memcached):
    results, _ = run({"memcached": {"servers": [f"127.0.0.1:{memcached.port}"]}}, "memcached.stats")
    r = results["memcached.stats"]
    assert r.status == Status.OK and r.metrics["max_connections"] >= 1024 and r.metrics["up"] == 1


def test_stopped_memcached_is_critical():
    mc = servers.Memcached().start()
    port = mc.port
    mc.cleanup()
    report = run({"memcached": {"servers": [f"127.0.0.1:{port}"], "timeout": 1}}, "memcached.stats")[1]
    [r] = report.results
    assert r.status == Status.CRITICAL and f"127.0.0.1:{port} unreachable: Connection refused" in r.summary


def test_cli_json_for_infra_checks(db, memcached, tmp_path, monkeypatch):
    """The real CLI: exit code and JSON schema for a mix of healthy and dead infrastructure."""
    monkeypatch.setenv("OPSCTL_TEST_DB_PASSWORD", MON_PASSWORD)
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(json.dumps({
        "inventory": {"hosts": {}},
        "database": {"host": "127.0.0.1", "port": db.port, "user": MON_USER, "password": {"env": "OPSCTL_TEST_DB_PASSWORD"}},
        "memcached": {"servers": [f"127.0.0.1:{memcached.port}", f"127.0.0.1:{servers.free_port()}"], "timeout": 1},
    }))
    out = subprocess.run([sys.executable, "-m", "opsctl", "--config", str(cfg), "check", "--check", "mysql.*",
                          "--check", "memcached.*", "--format", "json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    doc = json.loads(out.stdout)
    by = {(r["check"], r["status"]) for r in doc["results"]}
    assert ("mysql.reachable", "OK") in by and ("memcached.stats", "CRITICAL") in by and ("memcached.stats", "OK") in by
    assert MON_PASSWORD not in out.stdout + out.stderr


# ------------------------------------------------------------------------------------ Galera (real, one node)
@pytest.fixture(scope="module")
def galera_node():
    """A real MariaDB Galera node (galera-4 provider), bootstrapped as a one-node Primary component."""
    if not Path("/usr/lib/galera/libgalera_smm.so").exists():
        pytest.fail("galera-4 is not installed (tests/run.sh installs it)")
    gport = servers.free_port()
    db = servers.MariaDB(servers.tempdir("apichk-galera"), extra_args=(
        "--wsrep-on=ON", "--wsrep-provider=/usr/lib/galera/libgalera_smm.so", "--wsrep-cluster-address=gcomm://",
        "--wsrep-new-cluster", "--wsrep-cluster-name=opsctltest", "--wsrep-node-address=127.0.0.1",
        f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{gport};base_port={gport}",
        "--binlog-format=ROW", "--innodb-autoinc-lock-mode=2")).start()
    add_monitor_user(db)
    yield db
    db.cleanup()


def test_galera_node_synced_and_cluster_size_against_expected(galera_node, monkeypatch):
    r = run(db_config(galera_node, monkeypatch, galera_expected_size=1), "mysql.galera")[0]["mysql.galera"]
    assert r.status == Status.OK and "Galera Primary, Synced, size 1/1" in r.summary and r.metrics["primary"] == 1
    r = run(db_config(galera_node, monkeypatch, galera_expected_size=3), "mysql.galera")[0]["mysql.galera"]
    assert r.status == Status.CRITICAL and "cluster size 1, expected 3" in r.summary and r.runbook == "galera-not-synced"


def test_galera_desynced_node_warns(galera_node, monkeypatch):
    galera_node.sql("SET GLOBAL wsrep_desync=ON")
    try:
        r = run(db_config(galera_node, monkeypatch, galera_expected_size=1), "mysql.galera")[0]["mysql.galera"]
        assert r.status == Status.WARNING and "Donor/Desynced" in r.summary
    finally:
        galera_node.sql("SET GLOBAL wsrep_desync=OFF")
