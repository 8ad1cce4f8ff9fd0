"""Host checks against real sshd hosts in network namespaces, a real chronyd and real daemons.

The netns hosts share this machine's PID namespace and filesystem but each has its own network stack,
so: processes, /proc and disks seen over SSH are this machine's (remote results must equal local ones),
while listening ports and chronyd's command port are per host.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import servers
from opsctl.checkdef import CheckContext
from opsctl.checks import host as host_checks
from opsctl.components import CATALOG, apply_overrides
from opsctl.config import parse
from opsctl.hosts import LocalHost
from opsctl.inventory import HostSpec, Inventory, from_config
from opsctl.results import Status
from opsctl.runner import Selection, run_checks

UNUSED_ADDRESS = "198.18.0.250"  # on the test bridge's subnet, nothing answers there
AGENT = "opsctl-hck-agent"  # a real daemon of a made-up component, started and killed by these tests
HOST_CHECKS = [c for c in host_checks.CHECKS]


@pytest.fixture(scope="module")
def hck_hosts():
    names, first = ["ctl", "cmp", "net", "bare"], 150
    for i in range(len(names)):  # a previous run's MAC for the same address would blackhole SSH for ~20 s
        subprocess.run(["ip", "neigh", "flush", "to", f"{servers.SUBNET}.{first + i}"], capture_output=True)
    hosts = servers.SSHHosts(servers.tempdir("hck"), names, prefix="hck", first_octet=first)
    try:
        hosts.start()
        yield hosts
    finally:
        hosts.cleanup()


class Agent:
    """A small TCP daemon run inside one host's network namespace, with a low open-files limit."""

    def __init__(self, base: Path, netns: str, port: int, nofile: int = 1024):
        self.script = base / AGENT
        self.script.write_text(textwrap.dedent("""\
            import socket, sys, time
            s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
            while True:
                time.sleep(1)
        """))
        self.argv = ["ip", "netns", "exec", netns, sys.executable, str(self.script), str(port)]
        self.port, self.netns, self.nofile, self.proc = port, netns, nofile, None

    def start(self) -> "Agent":
        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

        self.proc = subprocess.Popen(self.argv, preexec_fn=limit)
        servers.wait_for(lambda: _listening(self.netns, self.port), 10, f"{AGENT} listening")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def _listening(netns: str, port: int) -> bool:
    out = subprocess.run(["ip", "netns", "exec", netns, "ss", "-ltnH"], capture_output=True, text=True).stdout
    return f":{port} " in out


AGENT_COMPONENT = {"services": {"hck-agent": {"roles": ["compute"], "processes": [AGENT], "ports": [7411],
                                              "units": ["hck-agent"], "nofile_min": 4096}}}
# compute hosts here expect only the test agent (the testbed's nova-compute is not ours to rely on)
COMPUTE_ONLY_AGENT = {"hcktest": AGENT_COMPONENT,
                      "nova": {"services": {"nova-compute": {"roles": []}}},
                      "neutron": {"services": {"neutron-openvswitch-agent": {"roles": []}}}}


@pytest.fixture
def agent(hck_hosts, tmp_path):
    a = Agent(tmp_path, hck_hosts.hosts["cmp"].netns, 7411).start()
    yield a
    a.stop()


def _config(hck_hosts, *, components=None, thresholds=None, extra_hosts=None):
    section = hck_hosts.inventory({"ctl": ["controller"], "cmp": ["compute"], "net": ["network"], "bare": []})
    section["defaults"]["ssh"]["connect_timeout"] = 3
    section["hosts"].update(extra_hosts or {})
    return {"inventory": section, "components": components or {}, "checks": {"thresholds": thresholds or {}}}


def _run(cfg_data, hosts=(), checks=HOST_CHECKS):
    cfg = parse(cfg_data)
    inv = from_config({n: e.model_dump(exclude_none=True) for n, e in cfg.inventory.hosts.items()},
                      cfg.inventory.defaults.model_dump(exclude_none=True))
    catalog = apply_overrides(CATALOG, cfg.component_overrides())
    return run_checks(checks, inv, cfg, catalog, Selection(hosts=tuple(hosts)))


def _by_key(results):
    """(check, metric names) -> result: one key per mount / service / host-wide assertion."""
    return {(r.check, tuple(sorted(r.metrics))): r for r in results}


# --------------------------------------------------------------------------------------------- tests
def test_absent_process_is_critical_naming_host_and_service(hck_hosts, tmp_path):
    a = Agent(tmp_path, hck_hosts.hosts["cmp"].netns, 7412)
    components = {"hcktest": {"services": {"hck-agent": {**AGENT_COMPONENT["services"]["hck-agent"], "ports": [7412]}}},
                  **{k: v for k, v in COMPUTE_ONLY_AGENT.items() if k != "hcktest"}}
    cfg = _config(hck_hosts, components=components)
    checks = [c for c in HOST_CHECKS if c.id in ("host.processes", "host.ports", "host.open_files")]
    a.start()
    try:
        up = [r for r in _run(cfg, ["cmp"], checks).results]
        by_check = {r.check: r for r in up}
        assert by_check["host.processes"].status == Status.OK and "hck-agent: 1 process" in by_check["host.processes"].summary
        assert by_check["host.ports"].status == Status.OK and ":7412" in by_check["host.ports"].summary
        # its open-files limit (1024) is below the catalog minimum (4096): WARNING with the fix
        nofile = by_check["host.open_files"]
        assert nofile.status == Status.WARNING and "below the minimum 4096" in nofile.summary and "cmp" in nofile.summary
        assert nofile.runbook == "raise-nofile-limit" and "LimitNOFILE" in nofile.remediation
    finally:
        a.stop()
    down = {r.check: r for r in _run(cfg, ["cmp"], checks).results}
    proc = down["host.processes"]
    assert proc.status == Status.CRITICAL and proc.host == "cmp"
    assert "hck-agent is NOT running on cmp" in proc.summary
    assert proc.runbook == "service-down" and "systemctl restart hck-agent" in proc.remediation
    assert down["host.ports"].status == Status.CRITICAL and "7412 NOT listening" in down["host.ports"].summary
    assert "host.open_files" not in down  # nothing to measure; host.processes already reports it


def test_catalog_services_of_the_real_testbed_match_remotely(hck_hosts):
    """nova-compute here runs as `python3 .../nova-compute --config-file ...`: matched by its command-line token."""
    pidfile = Path("/tmp/minios/pids/nova-compute.pid")
    if not pidfile.exists():
        pytest.skip("the testbed is not running here")
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
    except OSError:
        pytest.skip("nova-compute is not running now (a fault test may hold it down)")
    cfg = _config(hck_hosts)
    results = _run(cfg, ["cmp"], [host_checks.processes]).results
    nova = [r for r in results if "processes:nova-compute" in r.metrics]
    assert nova and nova[0].status == Status.OK and str(pid) in nova[0].summary


def test_remote_results_equal_local_results(hck_hosts, agent):
    """Over SSH (commands, SFTP) and locally (psutil) the same machine gives the same statuses."""
    cfg_data = _config(hck_hosts, components={"hcktest": AGENT_COMPONENT})
    cfg = parse(cfg_data)
    catalog = apply_overrides(CATALOG, cfg.component_overrides())
    roles = ["controller", "compute"]
    remote_inv = from_config({"cmp": {**cfg_data["inventory"]["hosts"]["cmp"], "roles": roles}},
                             cfg_data["inventory"]["defaults"])
    local_inv = Inventory((HostSpec("cmp", frozenset(roles)),), "test")
    same_netns = [c for c in HOST_CHECKS if c.id != "host.ports"]  # ports are per network namespace
    for attempt in range(3):  # processes of other tests may come and go between the two snapshots
        remote = _by_key(run_checks(same_netns, remote_inv, cfg, catalog).results)
        local = _by_key(run_checks(same_netns, local_inv, cfg, catalog).results)
        diff = _differences(remote, local)
        if not diff:
            break
        time.sleep(1)
    assert not diff, diff
    assert any(k[0] == "host.processes" for k in remote) and any(k[0] == "host.disk_space" for k in remote)
    assert remote[("host.open_files", ("nofile_soft:hck-agent", "nofile_used_pct:hck-agent"))].status == Status.WARNING


def _differences(remote, local):
    diff = []
    if set(remote) != set(local):
        return [f"keys only remote: {set(remote) - set(local)}; only local: {set(local) - set(remote)}"]
    for key, r in remote.items():
        lr = local[key]
        if key[0] == "host.load":  # the load moves between two reads; the CPU count must not
            if r.metrics["cpus"] != lr.metrics["cpus"]:
                diff.append((key, r.summary, lr.summary))
        elif key[0] in ("host.memory", "host.disk_space", "host.disk_inodes"):
            (name, value), = r.metrics.items() if len(r.metrics) == 1 else [(k, v) for k, v in r.metrics.items() if k.endswith("pct")]
            if abs(value - lr.metrics[name]) > 2:
                diff.append((key, r.summary, lr.summary))
        elif r.status != lr.status:
            diff.append((key, r.summary, lr.summary))
    return diff


class CommandsOnly:
    """This machine through the remote code path (commands and file reads, no psutil): not a LocalHost."""

    def __init__(self) -> None:
        self._host = LocalHost("cmds")
        self.name = "cmds"

    def __getattr__(self, name):
        return getattr(self._host, name)


def _direct(check, host, roles, catalog, thresholds=None):
    ctx = CheckContext(check, "h", parse({}), catalog, {**check.thresholds, **(thresholds or {})}, host=host,
                       spec=HostSpec("h", frozenset(roles)), timeout=20)
    return _by_key(check.func(ctx))


def test_ports_and_mounts_by_commands_equal_psutil():
    """ss / df / ps parsed from commands give what psutil gives, in the same network namespace."""
    # process_api (this box's agent), the testbed's epmd and MariaDB: long-lived listeners
    catalog = apply_overrides(CATALOG, {"hcktest": {"services": {"listeners": {"roles": ["controller"], "ports": [2024, 4369, 3306]}}}})
    local, cmds = LocalHost("h"), CommandsOnly()
    for check in (host_checks.ports, host_checks.disk_space, host_checks.disk_inodes, host_checks.processes):
        a, b = _direct(check, local, ["controller"], catalog), _direct(check, cmds, ["controller"], catalog)
        assert set(a) == set(b), check.id
        if check is host_checks.ports:
            assert {k: r.summary for k, r in a.items()} == {k: r.summary for k, r in b.items()}
        else:
            assert {k: r.status for k, r in a.items()} == {k: r.status for k, r in b.items()}, check.id
    mounts = [r.summary.split()[0] for r in _direct(host_checks.disk_space, cmds, [], catalog).values()]
    assert "/" in mounts and "/run/netns" not in mounts  # the netns bind mount of / is the same filesystem


def test_thresholds_from_config_are_applied(hck_hosts):
    cfg = _config(hck_hosts, thresholds={"host.disk_space": {"warn_pct": 0.001, "crit_pct": 100},
                                         "host.memory": {"warn_pct": 0, "crit_pct": 0.001},
                                         "host.load": {"warn_per_cpu": 1000, "crit_per_cpu": 2000}})
    checks = [c for c in HOST_CHECKS if c.id in ("host.disk_space", "host.memory", "host.load")]
    results = _run(cfg, ["net"], checks).results
    disk = [r for r in results if r.check == "host.disk_space"]
    assert disk and all(r.status == Status.WARNING for r in disk if r.metrics[next(iter(r.metrics))] > 0.001)
    assert all(r.runbook == "disk-full" for r in disk if r.status != Status.OK)
    memory, = [r for r in results if r.check == "host.memory"]
    assert memory.status == Status.CRITICAL and memory.runbook == "host-memory-pressure"
    load, = [r for r in results if r.check == "host.load"]
    assert load.status == Status.OK


def test_unreachable_host_is_unknown_and_the_others_go_on(hck_hosts):
    cfg = _config(hck_hosts, extra_hosts={"ghost": {"address": UNUSED_ADDRESS, "roles": ["compute"]}})
    cfg["inventory"]["defaults"]["ssh"]["connect_timeout"] = 2
    t0 = time.monotonic()
    report = _run(cfg)
    elapsed = time.monotonic() - t0
    ghost = [r for r in report.results if r.host == "ghost"]
    assert {r.check for r in ghost} == {c.id for c in HOST_CHECKS}
    assert all(r.status == Status.UNKNOWN and "cannot connect" in r.summary for r in ghost)
    for name in ("ctl", "cmp", "net", "bare"):
        mine = [r for r in report.results if r.host == name]
        assert {r.check for r in mine} == {c.id for c in HOST_CHECKS}, name
        assert not any("cannot connect" in r.summary for r in mine)
    assert elapsed < 45


def test_role_less_host_and_no_systemd_are_not_failures(hck_hosts):
    results = _run(_config(hck_hosts), ["bare"]).results
    service_checks = {r.check: r for r in results if r.check in ("host.processes", "host.ports", "host.open_files")}
    assert set(service_checks) == {"host.processes", "host.ports", "host.open_files"}
    for r in service_checks.values():
        assert r.status == Status.OK and "no services" in r.summary and "roles: none" in r.summary
    units = _run(_config(hck_hosts), ["ctl"], [host_checks.systemd_units]).results
    assert [(r.status, "systemd is not running on ctl" in r.summary) for r in units] == [(Status.OK, True)]


# ------------------------------------------------------------------------------------------- chrony
class Chrony:
    """chronyd in network namespaces: a server, a client that syncs from it, a client that cannot."""

    def __init__(self, hosts: servers.SSHHosts):
        self.hosts, self.base = hosts, hosts.base / "chrony"
        self.base.mkdir(mode=0o700, exist_ok=True)
        self.pidfiles: list[Path] = []

    def _start(self, name: str, conf: str) -> None:
        path = self.base / f"{name}.conf"
        pidfile = self.base / f"{name}.pid"
        path.write_text(conf + f"pidfile {pidfile}\n")
        subprocess.run(["ip", "netns", "exec", self.hosts.hosts[name].netns, "chronyd", "-x", "-u", "root", "-f", str(path),
                        "-l", str(self.base / f"{name}.log")], check=True, timeout=20)
        self.pidfiles.append(pidfile)

    def start(self) -> "Chrony":
        server = self.hosts.hosts["ctl"].address
        self._start("ctl", f"local stratum 8\nallow 198.18.0.0/24\nbindaddress {server}\ncmdport 0\nbindcmdaddress /\n")
        client = "bindcmdaddress 127.0.0.1\nbindcmdaddress /\ncmdallow 127.0.0.1\n"
        self._start("cmp", f"server {server} iburst minpoll 0 maxpoll 0\n" + client)
        self._start("net", f"server {UNUSED_ADDRESS} iburst minpoll 0 maxpoll 0\n" + client)
        return self

    def stop(self) -> None:
        for pidfile in self.pidfiles:
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def _chronyd_running() -> bool:
    import psutil

    return any(p.info["name"] in ("chronyd", "ntpd", "systemd-timesyncd") for p in psutil.process_iter(["name"]))


def test_no_time_daemon_is_a_warning_with_the_reason():
    if _chronyd_running():
        pytest.skip("a time daemon runs on this machine")
    res = list(_direct(host_checks.time_sync, LocalHost("h"), [], CATALOG).values())
    assert [r.status for r in res] == [Status.WARNING]
    assert "no time synchronisation daemon runs on h" in res[0].summary and "systemd is not running" in res[0].summary
    res = list(_direct(host_checks.time_sync, LocalHost("h"), [], CATALOG, {"no_daemon_status": "UNKNOWN"}).values())
    assert [r.status for r in res] == [Status.UNKNOWN] and res[0].runbook == "time-sync"


@pytest.mark.skipif(not shutil.which("chronyd"), reason="chrony is not installed (tests/run.sh installs it)")
def test_time_sync_with_real_chronyd(hck_hosts):
    chrony = Chrony(hck_hosts).start()
    try:
        cfg = _config(hck_hosts)
        deadline = time.monotonic() + 20
        while True:
            res = {r.host: r for r in _run(cfg, ["ctl", "cmp", "net", "bare"], [host_checks.time_sync]).results}
            if res["cmp"].status == Status.OK or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert res["cmp"].status == Status.OK, res["cmp"].summary
        assert "clock synchronised (chronyc, reference" in res["cmp"].summary and "stratum 9" in res["cmp"].summary
        assert res["cmp"].metrics["time_offset_seconds"] < 0.1
        assert res["net"].status == Status.CRITICAL and "clock of net is NOT synchronised" in res["net"].summary
        assert "Not synchronised" in res["net"].summary and res["net"].runbook == "time-sync"
        # chronyd runs (the hosts share one PID namespace) but does not answer in this host's network
        assert res["bare"].status == Status.UNKNOWN and "506 Cannot talk to daemon" in res["bare"].summary
        tight = _config(hck_hosts, thresholds={"host.time_sync": {"warn_offset_s": 0, "crit_offset_s": 10}})
        warned, = _run(tight, ["cmp"], [host_checks.time_sync]).results
        assert warned.status == Status.WARNING and "offset" in warned.summary
    finally:
        chrony.stop()


# -------------------------------------------------------------------------------------------- CLI
def _cli(cfg_file: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OPSCTL_CONFIG": str(cfg_file)}
    return subprocess.run([sys.executable, "-m", "opsctl", "check", *args], env=env, capture_output=True, text=True, timeout=120)


def test_cli_json_and_nagios_exit_codes(hck_hosts, tmp_path):
    a = Agent(tmp_path, hck_hosts.hosts["cmp"].netns, 7413).start()
    components = {"hcktest": {"services": {"hck-agent": {"roles": ["compute"], "processes": [AGENT], "ports": [7413]}}},
                  **{k: v for k, v in COMPUTE_ONLY_AGENT.items() if k != "hcktest"}}
    cfg_file = tmp_path / "opsctl.yaml"
    cfg_file.write_text(yaml.safe_dump(_config(hck_hosts, components=components)))
    try:
        ok = _cli(cfg_file, "--host", "cmp", "--check", "host.processes", "--check", "host.ports", "--format", "json")
        doc = json.loads(ok.stdout)
        assert ok.returncode == 0 == doc["code"], ok.stdout + ok.stderr
        assert {(r["check"], r["host"], r["status"]) for r in doc["results"]} == {("host.processes", "cmp", "OK"), ("host.ports", "cmp", "OK")}
        nagios = _cli(cfg_file, "--host", "cmp", "--check", "host.processes", "--format", "nagios")
        assert nagios.returncode == 0 and nagios.stdout.startswith("OPSCTL OK - 1 checks OK |")
    finally:
        a.stop()
    bad = _cli(cfg_file, "--host", "cmp", "--check", "host.processes", "--format", "json")
    doc = json.loads(bad.stdout)
    assert bad.returncode == 2 == doc["code"]
    r, = doc["results"]
    assert r["status"] == "CRITICAL" and r["host"] == "cmp" and "hck-agent is NOT running on cmp" in r["summary"]
    assert r["runbook"] == "service-down"
    nagios = _cli(cfg_file, "--host", "cmp", "--check", "host.processes", "--format", "nagios")
    assert nagios.returncode == 2
    assert nagios.stdout.startswith("OPSCTL CRITICAL - host.processes@cmp: hck-agent is NOT running on cmp")
    empty = _cli(cfg_file, "--host", "bare", "--check", "host.processes", "--format", "nagios")
    assert empty.returncode == 0 and "OPSCTL OK" in empty.stdout
