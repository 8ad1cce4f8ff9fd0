"""`opsctl logs` on remote hosts over SSH (real sshd hosts in network namespaces, SFTP reads): discovery from
the catalog with rotated/compressed files, errors counted per host, a request traced across hosts.

The namespaced hosts share this machine's filesystem, so each host is given its own directory."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import yaml

from opsctl.cli.main import main

SAMPLES = Path(__file__).resolve().parents[1] / "testbed" / "log-samples"


def test_errors_and_trace_across_ssh_hosts(ssh_hosts, tmp_path, capsys):
    ctl = tmp_path / "controller" / "nova"
    cpu = tmp_path / "compute1" / "nova"
    ctl.mkdir(parents=True)
    cpu.mkdir(parents=True)
    shutil.copy(SAMPLES / "nova-conductor-db-outage.log", ctl / "nova-conductor.log")
    with gzip.open(ctl / "nova-conductor.log.1.gz", "wb") as fh:  # yesterday's, rotated and compressed
        fh.write((SAMPLES / "nova-conductor-db-outage.log").read_bytes())
    shutil.copy(SAMPLES / "nova-compute-rabbit-outage.log", cpu / "nova-compute.log")
    req = "req-562fa9eb-53d3-408a-8187-30ea6f5bee8e"
    with open(ctl / "nova-conductor.log", "a") as fh:  # the same request, seen on the controller too
        fh.write(f"2026-11-24 08:00:19.500 8289 INFO nova.conductor.manager [None {req} - - - - - -] conductor side\n")
    inventory = ssh_hosts.inventory({"controller": ["controller"], "compute1": ["compute"]})
    inventory["hosts"] = {k: v for k, v in inventory["hosts"].items() if k in ("controller", "compute1")}
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({
        "inventory": inventory,
        "logs": {"state_dir": str(tmp_path / "state")},
        # per-host layout: the operator points the catalog at where the logs live
        "components": {"nova": {"services": {
            "nova-conductor": {"logs": [str(tmp_path / "*" / "nova" / "nova-conductor*.log")]},
            "nova-compute": {"logs": [str(tmp_path / "*" / "nova" / "nova-compute*.log")]},
        }}},
    }))

    assert main(["--config", str(cfg), "logs", "errors", "--format", "json", "--component", "nova"]) == 0
    doc = json.loads(capsys.readouterr().out)
    db = next(g for g in doc["errors"] if g["exception"] == "oslo_db.exception.DBConnectionError")
    # both hosts see every file through the shared filesystem: 8 events x 2 files (live + .gz) x 2 hosts
    assert db["hosts"] == {"compute1": 16, "controller": 16} and db["services"] == {"nova-conductor": 32}
    assert doc["files"] == 6

    assert main(["--config", str(cfg), "logs", "errors", "--format", "json", "--host", "compute1", "--service", "nova-compute"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["events"] == 57 and all(set(g["hosts"]) == {"compute1"} for g in doc["errors"])

    assert main(["--config", str(cfg), "logs", "trace", req, "--format", "json", "--host", "controller"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert {e["service"] for e in events} == {"nova-compute", "nova-conductor"}
    assert [e["@timestamp"] for e in events] == sorted(e["@timestamp"] for e in events)
    assert any(e["message"] == "conductor side" for e in events)


def test_unreachable_host_is_reported_and_others_still_read(ssh_hosts, tmp_path, capsys):
    d = tmp_path / "logs"
    d.mkdir()
    shutil.copy(SAMPLES / "nova-scheduler-discover-hosts-IndexError.log", d / "nova-scheduler.log")
    inventory = ssh_hosts.inventory()
    inventory["hosts"] = {"network1": inventory["hosts"]["network1"],
                          "ghost": {"address": "198.18.0.250", "ssh": {"connect_timeout": 1}}}
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"inventory": inventory, "logs": {"state_dir": str(tmp_path / "state")}}))
    assert main(["--config", str(cfg), "logs", "errors", "--format", "json", "--path", str(d / "*.log")]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["events"] == 1 and doc["errors"][0]["hosts"] == {"network1": 1}
    assert "warning: ghost:" in captured.err
