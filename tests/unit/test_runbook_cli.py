"""`opsctl runbook list|show|run` through the real CLI (subprocess), on this machine."""

from __future__ import annotations

import json
import subprocess
import time
import sys
from pathlib import Path

import pytest
import yaml

OPSCTL = [sys.executable, "-m", "opsctl"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    cfg = {"inventory": {"hosts": {"node1": {"local": True, "roles": ["controller", "compute"]}}},
           "runbooks": {"audit_log": str(tmp_path / "log" / "runbooks.log")}}
    path = tmp_path / "opsctl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def opsctl(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "OPSCTL_CONFIG": str(config), "COLUMNS": "200"}
    return subprocess.run([*OPSCTL, *args], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)


def audit(config: Path) -> list[dict]:
    path = Path(yaml.safe_load(config.read_text())["runbooks"]["audit_log"])
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_list_shows_every_runbook(config):
    res = opsctl(config, "runbook", "list")
    assert res.returncode == 0, res.stderr
    for rid in ("nova-compute-down", "galera-not-synced", "rabbitmq-down", "compute-maintenance", "disk-full"):
        assert rid in res.stdout


def test_show_prints_steps_commands_and_expectations(config):
    res = opsctl(config, "runbook", "show", "nova-compute-down")
    assert res.returncode == 0, res.stderr
    assert "diagnostic: Is the nova-compute process running" in res.stdout
    assert "action: Restart nova-compute" in res.stdout and "{restart_argv}" in res.stdout
    assert "expected: exit code 0" in res.stdout and "verify: re-run nova.compute_services_up" in res.stdout


def test_unknown_runbook_is_a_usage_error(config):
    res = opsctl(config, "runbook", "show", "no-such-runbook")
    assert res.returncode == 64 and "error: no runbook 'no-such-runbook'" in res.stderr and "hint: runbooks:" in res.stderr


def test_bad_set_and_unknown_host_are_usage_errors(config):
    assert opsctl(config, "runbook", "run", "disk-full", "--set", "novalue").returncode == 64
    res = opsctl(config, "runbook", "run", "disk-full", "--host", "nowhere")
    assert res.returncode == 64 and "not in the inventory" in res.stderr


def test_dry_run_runs_diagnostics_shows_actions_and_audits(config):
    res = opsctl(config, "runbook", "run", "disk-full", "--dry-run", "--host", "node1", "--set", f"path={config.parent}")
    out = res.stdout
    assert "Space and inodes per filesystem" in out and "Filesystem" in out  # df really ran
    assert "journalctl --vacuum-size=500M" in out and "dry run: not run" in out
    assert "verify: re-run host.disk_space, host.disk_inodes" in out
    assert res.returncode in (0, 1, 2), res.stderr  # the check's own status on this machine
    rec = audit(config)[-1]
    assert rec["runbook"] == "disk-full" and rec["dry_run"] is True and rec["result"] == "dry-run"
    assert rec["exit_code"] == res.returncode


def test_action_without_yes_and_without_a_terminal_aborts(config):
    res = opsctl(config, "runbook", "run", "disk-full", "--host", "node1", "--set", f"path={config.parent}")
    assert res.returncode == 130
    assert "pass --yes" in res.stdout + res.stderr
    assert audit(config)[-1]["result"] == "aborted"


def test_interactive_confirmation_on_a_terminal(config, tmp_path):
    """On a terminal each action is shown and asked for; 'n' stops before anything changes."""
    import os
    import pty
    import select

    marker_dir = tmp_path / "t"
    marker_dir.mkdir()
    env = {**os.environ, "OPSCTL_CONFIG": str(config), "COLUMNS": "200"}
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI on a pseudo-terminal
        os.execvpe(sys.executable, [sys.executable, "-m", "opsctl", "runbook", "run", "disk-full", "--host", "node1",
                                    "--set", f"path={marker_dir}"], env)
    seen, answered = b"", False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"run this on node1?" in seen:
            os.write(fd, b"n\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    text = seen.decode(errors="replace")
    assert answered, text
    assert "journalctl --vacuum-size=500M" in text
    assert os.waitstatus_to_exitcode(status) == 130
    assert audit(config)[-1]["steps"][-1]["outcome"] == "declined"


def test_every_runbook_shows(config, capsys, monkeypatch):
    from opsctl import runbook as rb
    from opsctl.cli.main import main

    monkeypatch.setenv("OPSCTL_CONFIG", str(config))
    for book_id in rb.load_runbooks():
        assert main(["runbook", "show", book_id]) == 0, book_id
        out = capsys.readouterr().out
        assert out.startswith(f"{book_id}: ") and "verify: re-run" in out
