"""Runbooks against the real testbed: break a service, `opsctl check` names the runbook, the runbook repairs it.

The testbed has no systemd, so the config points the catalog's restart command for the broken services at the
testbed's own idempotent start script (tests/testbed/up.sh in FAST mode), as an operator would point it at
`docker restart ...` for a containerised cloud. Everything else is the real product through the real CLI.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OPSCTL = [sys.executable, "-m", "opsctl"]
FIX_LINE = re.compile(r"fix: opsctl runbook run (?P<id>[a-z0-9-]+)(?: --host (?P<host>\S+))?")


def write_config(tmp_path: Path, testbed) -> Path:
    base = testbed.base
    up = ["env", f"OPSCTL_TESTBED={base}", "OPSCTL_TESTBED_FAST=1", "SKIP_SMOKE=1", "bash", str(REPO / "tests/testbed/up.sh")]
    rabbit_env = ["env", f"HOME={base}/data/rabbitmq/home", "RABBITMQ_NODENAME=rabbit@localhost", "ERL_EPMD_ADDRESS=127.0.0.1",
                  "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"]
    cfg = {
        "inventory": {"hosts": {"minios": {"local": True, "roles": ["controller", "compute", "network", "storage"]}}},
        "cloud": {"clouds": ["testbed"], "api_timeout": 10},
        "database": {"host": "127.0.0.1", "port": 3306, "user": "os", "password": {"env": "OPSCTL_TEST_DB_PASSWORD"}},
        "rabbitmq": {"user": "guest", "password": {"env": "OPSCTL_TEST_RABBIT_PASSWORD"}, "timeout": 10,
                     "rabbitmqctl": [*rabbit_env, "/usr/lib/rabbitmq/bin/rabbitmqctl"]},
        "components": {
            "nova": {"services": {"nova-compute": {"restart": up, "logs": [f"{base}/logs/nova/nova-compute*.log"]}}},
            "rabbitmq": {"services": {"rabbitmq-server": {"restart": up, "logs": [f"{base}/logs/rabbitmq/*.log"]}}},
        },
        "runbooks": {"audit_log": str(tmp_path / "audit" / "runbooks.log"),
                     "openstack_cli": [str(base / "venv" / "bin" / "openstack")]},
    }
    path = tmp_path / "opsctl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def opsctl(args, config: Path, testbed, timeout: float) -> subprocess.CompletedProcess:
    env = {**testbed.env(), "OPSCTL_CONFIG": str(config), "OPSCTL_TEST_DB_PASSWORD": "secret",
           "OPSCTL_TEST_RABBIT_PASSWORD": "guest", "COLUMNS": "200"}
    return subprocess.run([*OPSCTL, *args], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def wait_for_status(args, config, testbed, want: int, limit: float) -> subprocess.CompletedProcess:
    """Re-run `opsctl check ...` until it exits `want` (bounded)."""
    deadline = time.monotonic() + limit
    while True:
        res = opsctl(["check", *args], config, testbed, timeout=120)
        if res.returncode == want or time.monotonic() > deadline:
            return res
        time.sleep(2)


def fix_command(check_output: str, runbook: str) -> list[str]:
    for m in FIX_LINE.finditer(check_output):
        if m.group("id") == runbook:
            return ["runbook", "run", runbook] + (["--host", m.group("host")] if m.group("host") else [])
    raise AssertionError(f"`opsctl check` did not print the fix for {runbook}:\n{check_output}")


def audit_records(config: Path) -> list[dict]:
    path = Path(yaml.safe_load(config.read_text())["runbooks"]["audit_log"])
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.fault
def test_rabbitmq_stopped_is_repaired_by_its_runbook(testbed_faults, tmp_path):
    testbed = testbed_faults
    config = write_config(tmp_path, testbed)
    check_args = ["--check", "rabbitmq.node_running"]
    assert wait_for_status(check_args, config, testbed, 0, 60).returncode == 0, "RabbitMQ not healthy before the test"

    testbed.kill("rabbitmq.beam")
    testbed.kill("rabbitmq")
    broken = wait_for_status(check_args, config, testbed, 2, 60)
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "CRITICAL" in broken.stdout
    command = fix_command(broken.stdout, "rabbitmq-down")

    t0 = time.monotonic()
    run = opsctl([*command, "--yes"], config, testbed, timeout=420)
    took = time.monotonic() - t0
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "REPAIRED" in out and "OK" in out, out
    assert testbed.pid("rabbitmq.beam") is not None
    rec = audit_records(config)[-1]
    assert rec["runbook"] == "rabbitmq-down" and rec["result"] == "repaired" and rec["exit_code"] == 0
    assert any(s["id"] == "restart" and s["outcome"] == "done" for s in rec["steps"])
    assert "guest" not in json.dumps(rec["verify"])  # no credentials in the audit
    print(out)
    print(f"rabbitmq-down repaired in {took:.1f}s")

    healed = opsctl(["check", *check_args], config, testbed, timeout=120)
    assert healed.returncode == 0, healed.stdout


@pytest.mark.fault
def test_nova_compute_killed_is_repaired_by_its_runbook(testbed_faults, tmp_path):
    testbed = testbed_faults
    config = write_config(tmp_path, testbed)
    check_args = ["--check", "nova.compute_services_up"]
    # A previous RabbitMQ outage keeps nova-compute 'down' for ~93 s; start from a healthy bed.
    before = wait_for_status(check_args, config, testbed, 0, 150)
    assert before.returncode == 0, "nova-compute not up before the test:\n" + before.stdout

    testbed.kill("nova-compute")
    broken = wait_for_status(check_args, config, testbed, 2, 60)  # service_down_time=10: 'down' after 8-10 s
    assert broken.returncode == 2, broken.stdout + broken.stderr
    assert "CRITICAL" in broken.stdout
    command = fix_command(broken.stdout, "nova-compute-down")

    t0 = time.monotonic()
    run = opsctl([*command, "--yes"], config, testbed, timeout=420)
    took = time.monotonic() - t0
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert "REPAIRED" in out, out
    assert testbed.pid("nova-compute") is not None
    # the diagnostics ran and saw the problem before the repair
    rec = audit_records(config)[-1]
    steps = {s["id"]: s for s in rec["steps"]}
    assert steps["process"]["outcome"] == "unexpected"  # pgrep found no nova-compute
    assert steps["restart"]["outcome"] == "done" and steps["restart"]["argv"][-1].endswith("up.sh")
    assert rec["result"] == "repaired" and rec["host"] == "minios"
    print(out)
    print(f"nova-compute-down repaired in {took:.1f}s")

    healed = opsctl(["check", *check_args], config, testbed, timeout=120)
    assert healed.returncode == 0, healed.stdout


def test_runbook_dry_run_on_the_testbed_changes_nothing(testbed, tmp_path):
    """Dry run against the healthy bed: diagnostics run for real, actions are only shown, exit is the check's."""
    # Not under the fault lock (it changes nothing), so other tests may break the bed meanwhile: assert on what
    # this run did (from its audit record), not on daemon pids.
    config = write_config(tmp_path, testbed)
    res = opsctl(["runbook", "run", "nova-compute-down", "--dry-run"], config, testbed, timeout=180)
    out = res.stdout + res.stderr
    assert "dry run: not run" in out and "up.sh" in out, out
    assert res.returncode in (0, 2), out  # the check's status
    rec = audit_records(config)[-1]
    assert rec["result"] == "dry-run" and rec["dry_run"] is True
    steps = {s["id"]: s for s in rec["steps"]}
    assert steps["restart"]["outcome"] == "dry-run" and "rc" not in steps["restart"]  # shown, never executed
    assert steps["process"]["outcome"] in ("passed", "unexpected") and "rc" in steps["process"]  # diagnostics ran


@pytest.mark.fault
def test_disabled_compute_service_is_enabled_by_its_runbook(testbed_faults, tmp_path):
    """Real openstack CLI commands from the runbook: list with the disabled reason, then enable."""
    testbed = testbed_faults
    config = write_config(tmp_path, testbed)
    osc = [str(testbed.base / "venv" / "bin" / "openstack"), "--os-cloud", "testbed"]
    env = testbed.env()
    subprocess.run([*osc, "compute", "service", "set", "--disable", "--disable-reason", "opsctl e2e: disabled on purpose",
                    "minios", "nova-compute"], env=env, check=True, capture_output=True, timeout=120)
    try:
        check_args = ["--check", "nova.services_disabled"]
        broken = wait_for_status(check_args, config, testbed, 1, 30)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        command = fix_command(broken.stdout, "nova-service-disabled")
        run = opsctl([*command, "--yes"], config, testbed, timeout=300)
        out = run.stdout + run.stderr
        print(out)
        assert run.returncode == 0, out
        assert "opsctl e2e: disabled on purpose" in out  # the reason diagnostic showed it
        listed = subprocess.run([*osc, "compute", "service", "list", "--service", "nova-compute", "-f", "value", "-c", "Status"],
                                env=env, capture_output=True, text=True, timeout=120)
        assert listed.stdout.strip() == "enabled"
        rec = audit_records(config)[-1]
        assert rec["result"] == "repaired" and [s["outcome"] for s in rec["steps"]] == ["passed", "passed", "done"]
    finally:
        subprocess.run([*osc, "compute", "service", "set", "--enable", "minios", "nova-compute"], env=env,
                       capture_output=True, timeout=120)


@pytest.mark.fault
def test_compute_maintenance_moves_instances_away_and_back_into_service(testbed_faults, tmp_path):
    """compute-maintenance on a second, temporary compute node (a real nova-compute with the fake virt driver):
    disabled, its instance live-migrated to the other node by the real scheduler, enabled again, re-check OK."""
    testbed = testbed_faults
    base, env = testbed.base, testbed.env()
    venv = base / "venv" / "bin"
    osc = [str(venv / "openstack"), "--os-cloud", "testbed"]

    def os_cli(*args, check=True, timeout=180):
        return subprocess.run([*osc, *args], env=env, capture_output=True, text=True, timeout=timeout, check=check)

    conf = (base / "etc" / "nova" / "nova-cpu.conf").read_text()
    assert "\nhost = minios\n" in conf
    conf = conf.replace("\nhost = minios\n", "\nhost = compute2\n")
    conf = re.sub(r"\nstate_path = .*", f"\nstate_path = {tmp_path / 'nova2'}", conf)
    conf = re.sub(r"\ninstances_path = .*", f"\ninstances_path = {tmp_path / 'nova2' / 'instances'}", conf)
    (tmp_path / "nova2" / "instances").mkdir(parents=True)
    (tmp_path / "nova-cpu2.conf").write_text(conf + "\n[DEFAULT]\nlog_file = nova-compute2.log\n")
    with open(tmp_path / "nova-compute2.out", "wb") as out:
        proc = subprocess.Popen([str(venv / "nova-compute"), "--config-file", str(tmp_path / "nova-cpu2.conf")],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = "opsctl-maint-e2e"
    try:
        deadline = time.monotonic() + 90
        while os_cli("compute", "service", "list", "--host", "compute2", "-f", "value", "-c", "State").stdout.strip() != "up":
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "nova-compute2.out").read_text()[-3000:]
            time.sleep(1)
        subprocess.run([str(venv / "nova-manage"), "--config-file", str(base / "etc" / "nova" / "nova.conf"),
                        "cell_v2", "discover_hosts"], env=env, check=True, capture_output=True, timeout=120)
        os_cli("server", "create", "--flavor", "m1.tiny", "--image", "tiny", "--nic", "none",
               "--availability-zone", "nova:compute2", "--wait", server, timeout=300)
        sid = os_cli("server", "show", server, "-f", "value", "-c", "id").stdout.strip()
        assert os_cli("server", "show", server, "-f", "value", "-c", "OS-EXT-SRV-ATTR:host").stdout.strip() == "compute2"

        config = write_config(tmp_path, testbed)
        cfg = yaml.safe_load(config.read_text())
        cfg["inventory"]["hosts"]["compute2"] = {"local": True, "roles": ["compute"]}
        config.write_text(yaml.safe_dump(cfg))
        run = opsctl(["runbook", "run", "compute-maintenance", "--host", "compute2", "--yes"], config, testbed, timeout=900)
        text = run.stdout + run.stderr
        print(text)
        assert run.returncode == 0, text
        assert os_cli("server", "show", server, "-f", "value", "-c", "OS-EXT-SRV-ATTR:host").stdout.strip() == "minios"
        assert os_cli("server", "show", server, "-f", "value", "-c", "status").stdout.strip() == "ACTIVE"
        state = os_cli("compute", "service", "list", "--host", "compute2", "-f", "value", "-c", "Status", "-c", "State")
        assert state.stdout.split() == ["enabled", "up"]
        rec = audit_records(config)[-1]
        steps = {s["id"]: s for s in rec["steps"]}
        assert rec["result"] == "repaired", rec
        assert steps["disable"]["outcome"] == "done" and steps["enable"]["outcome"] == "done"
        assert sid in json.dumps(steps["migrate"]) and steps["empty"]["outcome"] == "passed"
    finally:
        os_cli("server", "delete", "--wait", server, check=False, timeout=300)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        ids = os_cli("compute", "service", "list", "--host", "compute2", "-f", "value", "-c", "ID", check=False).stdout.split()
        for sid_ in ids:
            os_cli("compute", "service", "delete", sid_, check=False)
