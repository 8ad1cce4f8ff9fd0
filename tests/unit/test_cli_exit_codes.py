"""The CLI's exit codes: 0-3 are check statuses only; usage and config errors have their own codes."""

import json
import subprocess
import sys


from opsctl.cli.main import main


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "opsctl", *args], capture_output=True, text=True, timeout=120, env=env)


def test_check_with_no_config_prints_local_results(monkeypatch):
    monkeypatch.delenv("OPSCTL_CONFIG", raising=False)
    out = run("check", "--component", "host", "-f", "json")
    doc = json.loads(out.stdout)
    assert out.returncode == doc["code"] and out.returncode in (0, 1, 2)
    checks = {r["check"] for r in doc["results"]}
    assert {"host.load", "host.memory", "host.disk_space"} <= checks


def test_usage_errors_exit_64_not_a_check_status():
    out = run("check", "--no-such-option")
    assert out.returncode == 64
    assert out.stderr.startswith("error: No such option: --no-such-option")
    assert "Traceback" not in out.stderr
    assert run("check", "--format", "xml").returncode == 64
    assert run("check", "--component", "nonexistent").returncode == 64
    assert run().returncode == 64


def test_config_errors_exit_78_with_every_problem(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("checks: {timeout: 0}\ninventory: {hosts: {a: {roles: [x]}}}\n")
    out = run("--config", str(f), "config", "validate")
    assert out.returncode == 78
    lines = out.stderr.splitlines()
    assert lines[0] == f"error: {f}: 2 configuration error(s)"
    assert any(l.strip().startswith("checks.timeout:") for l in lines)
    assert any(l.strip().startswith("inventory.hosts.a.roles:") for l in lines)


def test_config_validate_checks_ids(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("checks: {thresholds: {host.nope: {warn: 1}}, disabled: ['zzz.*']}\n")
    out = run("--config", str(f), "config", "validate")
    assert out.returncode == 78
    assert "checks.thresholds.host.nope: no such check" in out.stderr
    assert "checks.disabled.0: 'zzz.*' matches no check" in out.stderr
    f.write_text("checks: {thresholds: {host.disk_space: {warn_pct: 70}}}\n")
    ok = run("--config", str(f), "config", "validate")
    assert ok.returncode == 0 and ok.stdout.startswith(f"config OK: {f}")


def test_missing_config_file_is_a_config_error():
    out = run("--config", "/nonexistent/opsctl.yaml", "check")
    assert out.returncode == 78
    assert out.stderr.splitlines()[0] == "error: cannot read config /nonexistent/opsctl.yaml: No such file or directory"


def test_nagios_line_and_exit_code_match(tmp_path):
    f = tmp_path / "c.yaml"
    # a 0% threshold makes disk space WARNING deterministically
    f.write_text("checks: {thresholds: {host.disk_space: {warn_pct: 0, crit_pct: 101}}}\n")
    out = run("--config", str(f), "check", "--check", "host.disk_space", "-f", "nagios")
    assert out.returncode == 1
    assert out.stdout.startswith("OPSCTL WARNING - host.disk_space@")
    assert len(out.stdout.strip().splitlines()) == 1


def test_main_never_raises_and_returns_codes():
    assert main(["--version"]) == 0
    assert main(["check", "--bogus"]) == 64


def test_internal_errors_have_no_traceback_without_debug(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inventory: {ansible_ini: /nonexistent.ini}\n")
    out = run("--config", str(f), "inventory")
    assert out.returncode == 78 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: cannot read inventory /nonexistent.ini")
