"""`opsctl exporter` as a process against real servers: two replay clouds (no real cloud of this size can run
here: tests/exporter_replay.py replays responses recorded from the real testbed), a real MariaDB, a real
RabbitMQ (management API) and a real backup store. The scrape passes `promtool check metrics` with no
lint warning; a failing service marks only its own collector; no secret reaches the exposition.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from exporter_replay import ReplayCloud  # noqa: E402
from servers import free_port, wait_for  # noqa: E402

DB_PASSWORD_ENV = "OPSCTL_TEST_EXPORTER_DB_PW"


def scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read()


def series(body: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(body: bytes, name: str, **labels: str) -> float | None:
    return series(body).get((name, tuple(sorted(labels.items()))))


def write_backup(store: Path, when: datetime) -> None:
    """A real complete backup in a real store (the backup package's Store), one database dump item."""
    from opsctl.backup.store import Item, Store

    st = Store(store)
    with st.lock():
        manifest, work = st.begin(now=when)
        (work / "nova.sql").write_bytes(b"-- dump\n" * 100)
        manifest.items.append(Item("mysql-dump", "nova", "nova", "nova.sql", "none", 800, "", 1.5))
        manifest.finished, manifest.duration = when.isoformat(), 1.5
        st.commit(manifest, work)


def declare_queue(management_url: str, name: str) -> None:
    """A queue on the test broker, through its management API (so the broker has one to report)."""
    import base64

    req = urllib.request.Request(f"{management_url}/api/queues/%2F/{name}", data=b'{"durable": false}', method="PUT",
                                 headers={"content-type": "application/json",
                                          "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture(scope="module")
def exporter(tmp_path_factory, mariadb, rabbitmq):
    base = tmp_path_factory.mktemp("exporter")
    east = ReplayCloud(hypervisors=50, servers=2500, volumes=120, images=1100).start()
    west = ReplayCloud(hypervisors=5, servers=10, volumes=5, images=3, fail={"volume"},
                       fail_paths={"compute /servers/detail"}).start()
    clouds = {"clouds": {}}
    for name, cloud in (("east", east), ("west", west)):
        cloud.clouds_yaml(base / f"{name}.yaml", name)
        clouds["clouds"].update(yaml.safe_load((base / f"{name}.yaml").read_text())["clouds"])
    (base / "clouds.yaml").write_text(yaml.safe_dump(clouds))
    write_backup(base / "store", datetime.now(timezone.utc))
    rabbitmq.wait_management()
    declare_queue(rabbitmq.management_url, "opsctl-exporter-test")
    port = free_port()
    cfg = {
        "cloud": {"clouds": ["east", "west"], "api_timeout": 10},
        "database": {"socket": mariadb.socket, "user": "root", "password": {"env": DB_PASSWORD_ENV}},
        "rabbitmq": {"management_url": rabbitmq.management_url, "user": "guest", "password": {"env": "OPSCTL_TEST_RMQ_PW"}},
        "backup": {"store": str(base / "store")},
        "exporter": {"refresh_interval": 2, "collector_timeout": 20, "disabled_collectors": ["checks"]},
    }
    (base / "opsctl.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(base / "clouds.yaml"), DB_PASSWORD_ENV: mariadb.password,
           "OPSCTL_TEST_RMQ_PW": "guest"}
    env.pop("OS_CLOUD", None)
    log = open(base / "exporter.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "opsctl", "--config", str(base / "opsctl.yaml"), "exporter",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)

    def all_ran() -> bool:
        body = scrape(port)
        runs = [v for (n, _), v in series(body).items() if n == "opsctl_collector_runs_total"]
        return len(runs) >= 14 and all(v >= 1 for v in runs)

    try:
        wait_for(all_ran, 90, "exporter collectors", interval=0.5)
        yield port, mariadb, east, west
    finally:
        proc.terminate()
        proc.wait(20)
        east.stop()
        west.stop()


def test_scrape_passes_promtool_lint_with_no_warning(exporter):
    port = exporter[0]
    body = scrape(port)
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == b"" and out.stderr.strip() == b""


def test_openstack_metrics_of_every_cloud(exporter):
    port = exporter[0]
    body = scrape(port)
    assert get(body, "openstack_nova_total_vms", cloud="east") == 2500  # three pages of servers
    assert get(body, "openstack_glance_images", cloud="east") == 1100  # two pages of images
    assert get(body, "openstack_nova_hypervisors", cloud="east") == 50
    assert get(body, "openstack_nova_servers", cloud="east", status="ERROR") == 25
    assert get(body, "openstack_nova_agent_state", cloud="east", hostname="compute-00007", service="nova-compute",
               zone="nova", admin_state="enabled") == 1
    assert get(body, "openstack_nova_vcpus_used", cloud="east", hostname="compute-00007", availability_zone="nova",
               aggregates="") == 20
    assert get(body, "openstack_placement_resource_inventory", cloud="east", hostname="compute-00001",
               resourcetype="VCPU") is not None
    assert get(body, "openstack_cinder_volumes", cloud="east", status="error") == 12
    assert get(body, "opsctl_openstack_api_request_duration_seconds_count", cloud="east", service="compute") >= 4
    for svc in ("identity", "nova", "neutron", "cinder", "glance", "placement"):
        assert get(body, f"openstack_{svc}_up", cloud="east") == 1


def test_a_failing_api_marks_only_its_collector(exporter):
    port = exporter[0]
    body = scrape(port)
    assert get(body, "openstack_cinder_up", cloud="west") == 0
    assert get(body, "opsctl_collector_up", collector="cinder", cloud="west") == 0
    assert get(body, "opsctl_collector_errors_total", collector="cinder", cloud="west") >= 1
    assert get(body, "opsctl_collector_up", collector="glance", cloud="west") == 1
    assert get(body, "openstack_glance_images", cloud="west") == 3


def test_a_failing_call_does_not_hide_what_the_other_calls_of_the_service_found(exporter):
    body = scrape(exporter[0])
    # west's server list answers 500: its service states and hypervisors are still exported
    assert get(body, "openstack_nova_agent_state", cloud="west", hostname="compute-00001", service="nova-compute",
               zone="nova", admin_state="enabled") == 1
    assert get(body, "openstack_nova_hypervisors", cloud="west") == 5
    assert get(body, "openstack_nova_total_vms", cloud="west") is None
    assert get(body, "openstack_nova_up", cloud="west") == 0
    assert get(body, "opsctl_collector_up", collector="nova", cloud="west") == 0
    assert get(body, "opsctl_collector_up", collector="cinder", cloud="east") == 1


def test_infrastructure_and_backup_metrics(exporter):
    port = exporter[0]
    body = scrape(port)
    assert get(body, "opsctl_mysql_up", server="localhost") == 1
    assert get(body, "opsctl_galera_enabled", server="localhost") == 0  # a plain MariaDB
    assert get(body, "opsctl_rabbitmq_up") == 1
    assert get(body, "opsctl_rabbitmq_queue_messages", vhost="/", queue="opsctl-exporter-test") == 0
    assert get(body, "opsctl_rabbitmq_nodes_running") == 1
    assert get(body, "opsctl_backups") == 1
    ts = get(body, "opsctl_backup_last_success_timestamp_seconds", target="nova/nova", component="nova", type="mysql-dump")
    assert ts is not None and abs(time.time() - ts) < 600


def test_no_secret_in_the_exposition(exporter):
    port, mariadb = exporter[0], exporter[1]
    body = scrape(port)
    for secret in (mariadb.password, "replay-password", "replay-token"):
        assert secret.encode() not in body


def test_scrape_is_served_from_the_cache(exporter):
    port = exporter[0]
    scrape(port)
    t0 = time.monotonic()
    for _ in range(20):
        scrape(port)
    assert (time.monotonic() - t0) / 20 < 0.25  # a collection of the east cloud takes seconds


def test_alerts_and_dashboard_only_use_exported_metrics(exporter):
    """Every metric named in alerts.yml and dashboard.json is in a real scrape (or needs what this setup lacks)."""
    import json
    import re

    root = Path(__file__).resolve().parents[2]
    alerts = yaml.safe_load((root / "exporters" / "alerts.yml").read_text())
    exprs = [r["expr"] for g in alerts["groups"] for r in g["rules"]]
    dash = json.loads((root / "exporters" / "dashboard.json").read_text())
    exprs += [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    used = {n for e in exprs for n in re.findall(r"\b((?:openstack|opsctl)_[a-z0-9_]+)", e)}
    used = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in used}
    exported = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name, _ in series(scrape(exporter[0]))}
    # not in this setup: Galera (a plain MariaDB here), check results and host disks (checks collector off):
    # tests/unit/test_exporter_collectors.py covers those families
    elsewhere = {n for n in used if n.startswith(("opsctl_galera_", "opsctl_check_", "opsctl_host_"))}
    assert used - elsewhere <= exported, sorted(used - elsewhere - exported)
    # the up-metric regex in the alerts names these
    assert {f"openstack_{s}_up" for s in ("identity", "nova", "neutron", "cinder", "glance", "placement")} <= exported
