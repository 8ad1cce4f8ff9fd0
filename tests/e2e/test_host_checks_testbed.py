"""Host checks on the real OpenStack testbed: its daemons run as `python3 .../nova-compute --config-file ...`
and under gunicorn (`gunicorn: master [placement]`); the operator's catalog overrides in config make the
expected-service list fit this deployment. Killing nova-compute turns host.processes CRITICAL naming the
host and the service, with the nova-compute runbook; it is OK again after the repair."""

from __future__ import annotations

import time

from opsctl.checks import host as host_checks
from opsctl.components import CATALOG, apply_overrides
from opsctl.config import parse
from opsctl.inventory import from_config
from opsctl.results import Status
from opsctl.runner import Selection, run_checks

ROLES = ["controller", "compute", "storage"]
OFF = {"roles": []}
# What an operator writes for this deployment: gunicorn names its APIs after the app, the neutron agents
# are one heartbeat script, and there is no novncproxy, cinder-backup, swift or memcached.
TESTBED_COMPONENTS = {
    "placement": {"services": {"placement-api": {"processes": ["placement-api", "placement"]}}},
    "glance": {"services": {"glance-api": {"processes": ["glance-api", "glance"]}}},
    "neutron": {"services": {"neutron-openvswitch-agent": {"processes": ["fake_neutron_agents"]}}},
    "nova": {"services": {"nova-novncproxy": OFF}},
    "cinder": {"services": {"cinder-backup": OFF}},
    "swift": {"services": {s: OFF for s in ("swift-proxy-server", "swift-object-server", "swift-container-server",
                                            "swift-account-server")}},
    "memcached": {"services": {"memcached": OFF}},
}
CHECKS = [host_checks.processes, host_checks.ports, host_checks.open_files, host_checks.systemd_units]


def _run():
    cfg = parse({"inventory": {"hosts": {"minios": {"local": True, "roles": ROLES}}}, "components": TESTBED_COMPONENTS})
    inv = from_config({"minios": {"local": True, "roles": ROLES}})
    catalog = apply_overrides(CATALOG, cfg.component_overrides())
    return run_checks(CHECKS, inv, cfg, catalog, Selection()).results


def _services(results, check):
    return {next(iter(r.metrics)).split(":", 1)[1]: r for r in results if r.check == check and r.metrics}


def test_testbed_services_found_then_nova_compute_killed_and_repaired(testbed_faults):
    results = _run()
    procs, ports = _services(results, "host.processes"), _services(results, "host.ports")
    assert {"keystone", "nova-api", "nova-compute", "nova-conductor", "placement-api", "glance-api", "cinder-volume",
            "neutron-openvswitch-agent", "mariadb", "rabbitmq-server"} <= set(procs)
    assert all(r.status == Status.OK for r in procs.values()), [r.summary for r in procs.values() if r.status != Status.OK]
    assert {"keystone", "nova-api", "placement-api", "glance-api", "cinder-api", "neutron-server", "mariadb",
            "rabbitmq-server"} <= set(ports)
    assert all(r.status == Status.OK for r in ports.values()), [r.summary for r in ports.values() if r.status != Status.OK]
    units, = [r for r in results if r.check == "host.systemd_units"]
    assert units.status == Status.OK and "systemd is not running" in units.summary
    # the testbed starts RabbitMQ with 20000 open files; the catalog minimum is 65536: a real finding
    nofile = _services(results, "host.open_files")
    assert nofile["rabbitmq-server"].status == Status.WARNING and "below the minimum 65536" in nofile["rabbitmq-server"].summary
    assert nofile["nova-compute"].status == Status.OK

    testbed_faults.kill("nova-compute")
    t0 = time.monotonic()
    down = _services(_run(), "host.processes")["nova-compute"]
    assert time.monotonic() - t0 < 10
    assert down.status == Status.CRITICAL and down.host == "minios"
    assert down.summary.startswith("nova-compute is NOT running on minios")
    assert down.runbook == "nova-compute-down" and "nova-compute" in down.remediation

    testbed_faults.up()
    deadline = time.monotonic() + 30
    while True:
        again = _services(_run(), "host.processes")["nova-compute"]
        if again.status == Status.OK or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert again.status == Status.OK, again.summary
