"""`opsctl exporter` against the REAL testbed, scraped by a real Prometheus (Debian package).

The exporter runs every collector (checks, the six OpenStack services, Galera, RabbitMQ, backups) on the
testbed; Prometheus loads the shipped alerts.yml and its HTTP API shows the series. Killing nova-compute
flips the exported service state to 0 within a bounded time, and repairing it flips it back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers import Prometheus, free_port, tempdir, wait_for  # noqa: E402

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"
COMPUTE = {"cloud": "testbed", "hostname": "minios", "service": "nova-compute"}


def scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read()


def samples(body: bytes, name: str, **labels: str) -> list[float]:
    out = []
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                out.append(s.value)
    return out


@pytest.fixture(scope="module")
def exporter_on_testbed(testbed):
    base = tempdir("exporter-e2e")
    (base / "store").mkdir()
    cfg = {
        "cloud": {"clouds": [testbed.cloud], "api_timeout": 30},
        "database": {"host": "127.0.0.1", "port": 3306, "user": "os", "password": {"env": "OPSCTL_E2E_DB_PW"}},
        "rabbitmq": {"rabbitmqctl": ["env", f"HOME={testbed.base}/data/rabbitmq/home", "RABBITMQ_NODENAME=rabbit@localhost",
                                     "ERL_EPMD_ADDRESS=127.0.0.1",
                                     "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}", RABBITMQCTL],
                     "timeout": 30},
        "backup": {"store": str(base / "store")},
        "exporter": {"refresh_interval": 3, "checks_interval": 15, "collector_timeout": 90},
    }
    (base / "opsctl.yaml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    env = {**testbed.env(), "OPSCTL_E2E_DB_PW": "secret"}
    log = open(base / "exporter.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "opsctl", "--config", str(base / "opsctl.yaml"), "exporter",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    prom = Prometheus(base / "prometheus", [f"127.0.0.1:{port}"], rule_files=[str(ROOT / "exporters" / "alerts.yml")])
    try:
        wait_for(lambda: samples(scrape(port), "openstack_nova_agent_state", **COMPUTE), 120, "exporter nova metrics",
                 interval=1)
        prom.start()
        yield port, prom, base
    finally:
        prom.cleanup()
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def test_prometheus_scrapes_the_exporter_on_the_real_testbed(exporter_on_testbed):
    port, prom, _ = exporter_on_testbed

    def has(expr: str) -> bool:
        return bool(prom.query(expr))

    wait_for(lambda: has('up{job="opsctl"} == 1'), 60, "prometheus scrape", interval=1)
    for expr in ('openstack_nova_agent_state{cloud="testbed",service="nova-compute",hostname="minios"}',
                 'openstack_neutron_agent_state{cloud="testbed"}', 'openstack_cinder_agent_state{cloud="testbed"}',
                 'openstack_placement_resource_usage{cloud="testbed",resourcetype="VCPU"}',
                 'openstack_glance_images{cloud="testbed"} >= 1', 'openstack_nova_up{cloud="testbed"} == 1',
                 'opsctl_openstack_api_request_duration_seconds_bucket{service="compute"}',
                 'opsctl_mysql_up == 1', 'opsctl_rabbitmq_up == 1', 'opsctl_rabbitmq_queue_messages',
                 'opsctl_collector_last_success_timestamp_seconds{collector="nova",cloud="testbed"} > 0'):
        wait_for(lambda: has(expr), 60, expr, interval=1)
    wait_for(lambda: has('opsctl_check_status{check="nova.compute_services_up"}'), 120, "check results", interval=2)
    with urllib.request.urlopen(f"{prom.url}/api/v1/rules", timeout=5) as resp:
        groups = json.load(resp)["data"]["groups"]
    assert {g["name"] for g in groups} >= {"opsctl-openstack-services", "opsctl-infrastructure", "opsctl-backup"}


def test_real_scrape_passes_promtool_without_warnings(exporter_on_testbed):
    port = exporter_on_testbed[0]
    body = scrape(port)
    out = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), out
    assert b"secret" not in body.replace(b"secrets", b"")  # the DB and Keystone passwords are 'secret'


@pytest.mark.fault
@pytest.mark.timeout(1800)  # includes waiting for the shared testbed's fault lock, held by other suites' faults
def test_killing_nova_compute_flips_the_exported_state_and_back(exporter_on_testbed, testbed_faults):
    port, prom, _ = exporter_on_testbed
    assert samples(scrape(port), "openstack_nova_agent_state", **COMPUTE) == [1.0]
    t0 = time.monotonic()
    testbed_faults.kill("nova-compute")
    wait_for(lambda: samples(scrape(port), "openstack_nova_agent_state", **COMPUTE) == [0.0], 90,
             "nova-compute exported as down", interval=1)
    down_after = time.monotonic() - t0
    wait_for(lambda: prom.query('openstack_nova_agent_state{service="nova-compute",hostname="minios"} == 0'), 30,
             "prometheus sees nova-compute down", interval=1)
    testbed_faults.up()
    wait_for(lambda: samples(scrape(port), "openstack_nova_agent_state", **COMPUTE) == [1.0], 120,
             "nova-compute exported as up again", interval=1)
    print(f"nova-compute exported as down {down_after:.1f}s after the kill")
