"""Exporter collectors: check results, backup manifests (real backup store), Galera, alert rules, dashboard."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from opsctl.exporters.cache import _One
from opsctl.exporters.collectors.backup import collect_backups
from opsctl.exporters.collectors.checks import results_families
from opsctl.exporters.collectors.infra import galera_families, rabbitmq_families
from opsctl.exporters.prometheus import CollectorError
from opsctl.results import Result, Status
from prometheus_client.exposition import generate_latest

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "exporters" / "alerts.yml"
DASHBOARD = ROOT / "exporters" / "dashboard.json"


def exposition(families) -> bytes:
    return generate_latest(_One(families))


def samples(families) -> dict:
    out = {}
    for fam in text_string_to_metric_families(exposition(families).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def lint(body: bytes) -> None:
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out


def test_check_results_one_series_per_check_and_host_worst_wins():
    results = [
        Result("host.disk_space", "c1", Status.OK, "/ ok", metrics={"disk_used_pct:/": 40.0}),
        Result("host.disk_space", "c1", Status.CRITICAL, "/var full", metrics={"disk_used_pct:/var": 95.5}),
        Result("nova.compute_services_up", "minios", Status.WARNING, "x", duration=1.5, metrics={"down": 1}),
        Result("mysql.reachable", "db", Status.UNKNOWN, "?"),
    ]
    fams = results_families(results)
    s = samples(fams)
    assert s[("opsctl_check_status", (("check", "host.disk_space"), ("component", "host"), ("host", "c1")))] == 2
    assert s[("opsctl_check_status", (("check", "mysql.reachable"), ("component", "mysql"), ("host", "db")))] == 3
    assert s[("opsctl_check_duration_seconds", (("check", "nova.compute_services_up"), ("component", "nova"),
                                                ("host", "minios")))] == 1.5
    assert s[("opsctl_host_disk_used_ratio", (("host", "c1"), ("mountpoint", "/var")))] == pytest.approx(0.955)
    assert s[("opsctl_check_metric", (("check", "host.disk_space"), ("component", "host"), ("host", "c1"),
                                      ("item", "/"), ("metric", "disk_used_pct")))] == 40.0
    lint(exposition(fams))


def _write_backup(store, when: datetime, items):
    from opsctl.backup.store import Item, Store

    st = Store(store)
    with st.lock():
        manifest, work = st.begin(now=when)
        for comp, name, kind, size, dur in items:
            (work / f"{name}.bin").write_bytes(b"x" * size)
            manifest.items.append(Item(kind, comp, name, f"{name}.bin", "none", size, "", dur))
        manifest.finished = when.isoformat()
        manifest.duration = sum(i[4] for i in items)
        st.commit(manifest, work)


def test_backup_freshness_per_target_from_a_real_store(tmp_path):
    store = tmp_path / "store"
    old = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
    new = old + timedelta(days=1)
    _write_backup(store, old, [("nova", "nova", "mysql-dump", 100, 2.0), ("keystone", "config", "files", 10, 0.5)])
    _write_backup(store, new, [("nova", "nova", "mysql-dump", 120, 3.0)])
    (store / "20261123T000000Z").mkdir()  # a killed run: no manifest, not a backup
    fams = collect_backups(str(store))
    s = samples(fams)
    key = lambda t, c, k: (("component", c), ("target", t), ("type", k))  # noqa: E731
    assert s[("opsctl_backup_last_success_timestamp_seconds", key("nova/nova", "nova", "mysql-dump"))] == new.timestamp()
    assert s[("opsctl_backup_last_success_timestamp_seconds", key("keystone/config", "keystone", "files"))] == old.timestamp()
    assert s[("opsctl_backup_size_bytes", key("nova/nova", "nova", "mysql-dump"))] == 120
    assert s[("opsctl_backup_duration_seconds", key("nova/nova", "nova", "mysql-dump"))] == 3.0
    assert s[("opsctl_backups", ())] == 2
    assert s[("opsctl_backup_latest_timestamp_seconds", ())] == new.timestamp()
    lint(exposition(fams))


def test_missing_backup_store_is_a_collector_error_with_zero_backups(tmp_path):
    with pytest.raises(CollectorError) as err:
        collect_backups(str(tmp_path / "nope"))
    assert samples(err.value.families)[("opsctl_backups", ())] == 0


def test_galera_states():
    synced = {"wsrep_cluster_status": "Primary", "wsrep_local_state": "4", "wsrep_local_state_comment": "Synced",
              "wsrep_ready": "ON", "wsrep_connected": "ON", "wsrep_cluster_size": "3", "Threads_connected": "12"}
    s = samples(galera_families("db1", synced, {"wsrep_on": "ON", "max_connections": "500"}))
    assert s[("opsctl_galera_synced", (("server", "db1"),))] == 1
    assert s[("opsctl_galera_cluster_size", (("server", "db1"),))] == 3
    assert s[("opsctl_mysql_max_connections", (("server", "db1"),))] == 500
    donor = dict(synced, wsrep_local_state="2", wsrep_local_state_comment="Donor/Desynced", wsrep_cluster_status="non-Primary")
    s = samples(galera_families("db1", donor, {"wsrep_on": "ON"}))
    assert s[("opsctl_galera_synced", (("server", "db1"),))] == 0
    assert s[("opsctl_galera_primary", (("server", "db1"),))] == 0
    s = samples(galera_families("db1", {"Threads_connected": "3"}, {"wsrep_on": "OFF"}))
    assert s[("opsctl_galera_enabled", (("server", "db1"),))] == 0
    assert ("opsctl_galera_synced", (("server", "db1"),)) not in s
    lint(exposition(galera_families("db1", synced, {"wsrep_on": "ON"})))


def test_rabbitmq_queue_families():
    from opsctl.checks.rabbitmq import ClusterState, Queue

    state = ClusterState("rabbit@a", ["rabbit@a"], ["rabbit@a", "rabbit@b"], ["memory alarm on rabbit@a"])
    fams = rabbitmq_families([Queue("/", "conductor", 5000, 0)], state)
    s = samples(fams)
    assert s[("opsctl_rabbitmq_nodes_running", ())] == 1 and s[("opsctl_rabbitmq_nodes_known", ())] == 2
    assert s[("opsctl_rabbitmq_alarms", ())] == 1
    assert s[("opsctl_rabbitmq_queue_messages", (("queue", "conductor"), ("vhost", "/")))] == 5000
    assert s[("opsctl_rabbitmq_messages", ())] == 5000
    lint(exposition(fams))


# ------------------------------------------------------------------------------------------------ rules
def test_alert_rules_pass_promtool():
    out = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_every_alert_runbook_exists_and_rules_ship_as_package_data():
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    runbooks = {p.stem for p in (ROOT / "runbooks").glob("*.yaml")}
    for rule in rules:
        rb = rule.get("labels", {}).get("runbook")
        assert rb is None or rb in runbooks, f"{rule['alert']}: runbook {rb} does not exist"
    shipped = resources.files("opsctl.exporters")
    assert shipped.joinpath("alerts.yml").is_file() and shipped.joinpath("dashboard.json").is_file()


RULE_TESTS = """
rule_files: [{alerts}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'openstack_nova_agent_state{{cloud="c",hostname="cmp1",service="nova-compute",zone="nova",admin_state="enabled"}}'
        values: '1 1 0 0 0 0 1'
      - series: 'opsctl_backup_last_success_timestamp_seconds{{target="nova/nova",component="nova",type="mysql-dump"}}'
        values: '0x3000'
      - series: 'opsctl_host_disk_used_ratio{{host="c1",mountpoint="/var"}}'
        values: '0.6+0.001x400'
    alert_rule_test:
      - eval_time: 4m
        alertname: NovaComputeDown
        exp_alerts:
          - exp_labels: {{severity: critical, runbook: nova-compute-down, cloud: c, hostname: cmp1,
                         service: nova-compute, zone: nova, admin_state: enabled}}
            exp_annotations:
              summary: "nova-compute on cmp1 (c) is down"
              description: "Nova reports nova-compute on cmp1 in zone nova as down for 2 minutes: no new instance lands there and its instances cannot be managed."
      - eval_time: 7m
        alertname: NovaComputeDown
        exp_alerts: []
      - eval_time: 100m
        alertname: BackupTooOld
        exp_alerts: []
      - eval_time: 40h
        alertname: BackupTooOld
        exp_alerts:
          - exp_labels: {{severity: warning, runbook: backup-too-old, target: nova/nova, component: nova, type: mysql-dump}}
            exp_annotations:
              summary: "Newest backup of nova/nova is 1d 16h 0m 0s old"
              description: "No complete backup of nova/nova (mysql-dump) for more than 36 hours: check 'opsctl backup list' and the backup cron job."
      - eval_time: 6h
        alertname: HostDiskFillingUp
        exp_alerts:
          - exp_labels: {{severity: warning, runbook: disk-full, host: c1, mountpoint: /var}}
            exp_annotations:
              summary: "/var on c1 will be full within 24 hours"
              description: "At the growth rate of the last 6 hours the filesystem would be 240% used in 24 hours."
"""


def test_alert_rules_fire_on_the_exported_series(tmp_path):
    """promtool test rules: a compute going down fires and clears; a disk growing 0.1%/min fires."""
    spec = tmp_path / "tests.yml"
    spec.write_text(RULE_TESTS.format(alerts=json.dumps(str(ALERTS))))
    out = subprocess.run(["promtool", "test", "rules", str(spec)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_is_grafana_json_using_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["panels"] and dash["templating"]["list"]
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) > 20
    names = {n for e in exprs for n in re.findall(r"\b((?:openstack|opsctl)_[a-z0-9_]+)", e)}
    assert {"openstack_nova_agent_state", "opsctl_openstack_api_request_duration_seconds_bucket",
            "opsctl_backup_last_success_timestamp_seconds"} <= names


def test_a_duplicate_label_set_keeps_one_sample():
    from opsctl.exporters.collectors._families import Families

    fam = Families({"cloud": "c"})
    for value in (1, 0):  # e.g. the same host and binary reported by two cells
        fam.gauge("openstack_nova_agent_state", "state", {"hostname": "h", "service": "nova-compute"}, value)
    fams = fam.families()
    assert len(fams[0].samples) == 1 and fams[0].samples[0].value == 0
    lint(exposition(fams))
