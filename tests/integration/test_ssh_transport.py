"""SSHHost against real sshd hosts in network namespaces: host key policy, timeouts, unreachable hosts,
argv safety, SFTP file access, jump hosts, and a check run that survives an unreachable host."""

import json
import os
import subprocess
import sys
import time

import paramiko
import psutil
import pytest
import yaml

from opsctl.config import parse
from opsctl.components import CATALOG
from opsctl.hosts import CommandNotFound, CommandTimeout, HostKeyError, HostUnreachable, SSHHost, SSHSettings
from opsctl.inventory import from_config
from opsctl.registry import load_checks
from opsctl.results import Status
from opsctl.runner import Selection, run_checks

UNUSED_ADDRESS = "198.18.0.250"  # on the test bridge's subnet, no namespace answers there


def settings(ssh_hosts, name, **kw):
    spec = ssh_hosts.hosts[name]
    base = dict(address=spec.address, key_file=ssh_hosts.key_file, known_hosts=ssh_hosts.known_hosts, connect_timeout=3)
    base.update(kw)
    return SSHSettings(**base)


def test_runs_commands_with_verified_host_key(ssh_hosts):
    host = SSHHost("compute1", settings(ssh_hosts, "compute1"))
    try:
        res = host.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
        assert (res.rc, res.stdout, res.stderr) == (3, "out\n", "err\n")
        assert host.run(["cat"], input=b"piped stdin").stdout == "piped stdin"
    finally:
        host.close()


def test_argv_is_never_shell_interpreted(ssh_hosts, tmp_path):
    marker = tmp_path / "pwned"
    host = SSHHost("compute1", settings(ssh_hosts, "compute1"))
    try:
        tricky = ["a b", f"; touch {marker}", "$(id)", "`id`", "'quoted'", '"dq"', "*"]
        res = host.run(["printf", "%s\\n", *tricky], timeout=10)
        assert res.stdout.splitlines() == tricky
        assert not marker.exists()
    finally:
        host.close()
    with pytest.raises(TypeError):
        host.run("echo shell string", timeout=5)  # type: ignore[arg-type]


def test_unknown_host_key_is_refused_and_not_added(ssh_hosts, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    host = SSHHost("compute1", settings(ssh_hosts, "compute1", known_hosts=str(known)))
    with pytest.raises(HostKeyError, match="is unknown .*refusing to connect"):
        host.run(["true"])
    assert known.read_text() == ""


def test_changed_host_key_is_refused(ssh_hosts, tmp_path):
    other = paramiko.Ed25519Key.from_private_key_file(str(ssh_hosts.base / "controller" / "ssh_host_ed25519_key"))
    address = ssh_hosts.hosts["compute1"].address
    known = tmp_path / "known_hosts"
    known.write_text(f"{address} {other.get_name()} {other.get_base64()}\n")
    host = SSHHost("compute1", settings(ssh_hosts, "compute1", known_hosts=str(known)))
    with pytest.raises(HostKeyError, match="has CHANGED"):
        host.run(["true"])
    assert known.read_text() == f"{address} {other.get_name()} {other.get_base64()}\n"


def test_missing_known_hosts_file_is_refused(ssh_hosts, tmp_path):
    host = SSHHost("compute1", settings(ssh_hosts, "compute1", known_hosts=str(tmp_path / "absent")))
    with pytest.raises(HostKeyError, match="does not exist"):
        host.run(["true"])


def test_command_timeout_kills_the_remote_command(ssh_hosts):
    host = SSHHost("compute1", settings(ssh_hosts, "compute1"))
    try:
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout, match="timed out after 1s"):
            host.run(["sleep", "17.321"], timeout=1)
        assert time.monotonic() - t0 < 5
        # the remote side was stopped too (hosts share this machine's PID namespace)
        def sleeping():
            return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "17.321"]]
        deadline = time.monotonic() + 6
        while sleeping() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not sleeping()
        assert host.run(["echo", "still usable"], timeout=5).stdout == "still usable\n"
    finally:
        host.close()


def test_command_not_found(ssh_hosts):
    host = SSHHost("compute1", settings(ssh_hosts, "compute1"))
    try:
        with pytest.raises(CommandNotFound, match="no-such-binary-xyz"):
            host.run(["no-such-binary-xyz"], timeout=5)
    finally:
        host.close()


def test_unreachable_address_times_out(ssh_hosts):
    host = SSHHost("ghost", settings(ssh_hosts, "compute1", address=UNUSED_ADDRESS, connect_timeout=1.5))
    t0 = time.monotonic()
    with pytest.raises(HostUnreachable, match=f"cannot connect to root@{UNUSED_ADDRESS}:22"):
        host.run(["true"])
    assert time.monotonic() - t0 < 6


def test_stopped_sshd_is_connection_refused(ssh_hosts):
    ssh_hosts.stop_sshd("network1")
    try:
        host = SSHHost("network1", settings(ssh_hosts, "network1"))
        with pytest.raises(HostUnreachable, match="cannot connect"):
            host.run(["true"])
    finally:
        ssh_hosts.start_sshd("network1")


def test_sftp_file_access(ssh_hosts, tmp_path):
    (tmp_path / "a.log").write_text("line1\nline2\n")
    (tmp_path / "b.log.1").write_text("old\n")
    host = SSHHost("compute1", settings(ssh_hosts, "compute1"))
    try:
        assert host.read_file(str(tmp_path / "a.log")) == b"line1\nline2\n"
        assert host.read_file(str(tmp_path / "a.log"), max_bytes=5) == b"line1"
        assert host.exists(str(tmp_path / "a.log")) and not host.exists(str(tmp_path / "zzz"))
        assert host.glob(str(tmp_path / "*.log*")) == [str(tmp_path / "a.log"), str(tmp_path / "b.log.1")]
        st = host.stat(str(tmp_path / "a.log"))
        assert st.size == 12 and not st.is_dir
        with host.open(str(tmp_path / "a.log")) as fh:
            assert fh.readline() == b"line1\n"
        with pytest.raises(OSError):
            host.read_file(str(tmp_path / "zzz"))
    finally:
        host.close()


def test_jump_host(ssh_hosts):
    jump = settings(ssh_hosts, "controller")
    host = SSHHost("compute1", settings(ssh_hosts, "compute1", jump=jump))
    try:
        res = host.run(["sh", "-c", "echo $SSH_CONNECTION"], timeout=10)
        # the connection to compute1 comes from the controller's address, not the bridge
        assert res.stdout.split()[0] == ssh_hosts.hosts["controller"].address
    finally:
        host.close()


def _config(ssh_hosts, extra_hosts=None):
    section = ssh_hosts.inventory({"controller": ["controller"], "compute1": ["compute"], "network1": ["network"]})
    section["hosts"].update(extra_hosts or {})
    return section


def test_check_run_goes_on_when_a_host_is_unreachable(ssh_hosts):
    section = _config(ssh_hosts, {"ghost": {"address": UNUSED_ADDRESS, "roles": ["compute"]}})
    section["defaults"]["ssh"]["connect_timeout"] = 2
    cfg = parse({"inventory": section})
    inv = from_config({k: v for k, v in section["hosts"].items()}, section["defaults"])
    checks, _ = load_checks()
    host_checks = [c for c in checks if c.id in ("host.load", "host.memory", "host.disk_space")]
    t0 = time.monotonic()
    report = run_checks(host_checks, inv, cfg, CATALOG, Selection())
    elapsed = time.monotonic() - t0
    by_host = {}
    for r in report.results:
        by_host.setdefault(r.host, []).append(r)
    assert set(by_host) == {"controller", "compute1", "network1", "ghost"}
    assert all(r.status == Status.UNKNOWN and "cannot connect" in r.summary for r in by_host["ghost"])
    assert len(by_host["ghost"]) == 3  # one per check, and the connection was tried once (elapsed below)
    for name in ("controller", "compute1", "network1"):
        assert {r.check for r in by_host[name]} == {"host.load", "host.memory", "host.disk_space"}
        assert all(r.status != Status.UNKNOWN for r in by_host[name])
    assert elapsed < 8


def test_cli_inventory_ping_and_check_over_ssh(ssh_hosts, tmp_path):
    cfg_file = tmp_path / "opsctl.yaml"
    section = _config(ssh_hosts, {"ghost": {"address": UNUSED_ADDRESS, "roles": ["compute"]}})
    section["defaults"]["ssh"]["connect_timeout"] = 2
    cfg_file.write_text(yaml.safe_dump({"inventory": section}))
    env = {**os.environ, "OPSCTL_CONFIG": str(cfg_file)}
    ping = subprocess.run([sys.executable, "-m", "opsctl", "inventory", "--ping", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert ping.returncode == 69
    rows = {h["name"]: h for h in json.loads(ping.stdout)["hosts"]}
    assert rows["compute1"]["reachable"] == "ok" and rows["ghost"]["reachable"].startswith("FAILED: ghost: cannot connect")
    out = subprocess.run([sys.executable, "-m", "opsctl", "check", "--host", "compute1", "--check", "host.load", "-f", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    doc = json.loads(out.stdout)
    assert [(r["check"], r["host"]) for r in doc["results"]] == [("host.load", "compute1")]
    assert out.returncode == doc["code"]


def test_a_stream_closed_early_stops_the_remote_command(ssh_hosts):
    """Streams (remote tar, journalctl) abandoned mid-way: closing returns at once and the command ends."""
    import io

    from opsctl.logs.discovery import _SpawnedRaw

    host = SSHHost("compute1", settings(ssh_hosts, "compute1"))
    try:
        stream = io.BufferedReader(_SpawnedRaw(host.spawn(["yes", "opsctl-stream-probe"])))
        assert stream.read(100_000).startswith(b"opsctl-stream-probe\n")
        t0 = time.monotonic()
        stream.close()
        assert time.monotonic() - t0 < 2
        deadline = time.monotonic() + 10
        while any("opsctl-stream-probe" in " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])):
            assert time.monotonic() < deadline, "the remote command outlived its stream"
            time.sleep(0.2)
        assert host.run(["true"]).ok  # the connection is still usable
    finally:
        host.close()
