"""`opsctl logs errors|trace` through the real CLI entry point, on copies of real testbed logs laid out like
/var/log/<component>/ and found through the component catalog (with an operator override of the log dirs),
plus fingerprint normalisation and log discovery (rotated and compressed files, --since)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from opsctl.cli.main import main
from opsctl.components import CATALOG, apply_overrides
from opsctl.hosts import LocalHost
from opsctl.logs.discovery import discover, file_identity, guess_service
from opsctl.logs.grouping import normalize
from opsctl.logs.parser import Assembler

SAMPLES = Path(__file__).resolve().parents[1] / "testbed" / "log-samples"


@pytest.fixture
def logtree(tmp_path):
    """/var/log-like tree: nova conductor/compute/scheduler logs (one rotated + gzipped), keystone gunicorn."""
    root = tmp_path / "log"
    (root / "nova").mkdir(parents=True)
    (root / "keystone").mkdir()
    shutil.copy(SAMPLES / "nova-conductor-db-outage.log", root / "nova" / "nova-conductor.log")
    shutil.copy(SAMPLES / "nova-compute-rabbit-outage.log", root / "nova" / "nova-compute.log")
    with gzip.open(root / "nova" / "nova-scheduler.log.1.gz", "wb") as fh:
        fh.write((SAMPLES / "nova-scheduler-discover-hosts-IndexError.log").read_bytes())
    shutil.copy(SAMPLES / "keystone-gunicorn-db-outage.txt", root / "keystone" / "keystone.out")
    cfg = {
        "logs": {"state_dir": str(tmp_path / "state")},
        "components": {
            "nova": {"log_dirs": [str(root / "nova")],
                     "services": {"nova-compute": {"logs": [str(root / "nova" / "nova-compute*.log")]}}},
            "keystone": {"log_dirs": [str(root / "keystone")]},
        },
    }
    path = tmp_path / "opsctl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return root, path


def run(capsys, *argv):
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_errors_json_groups_by_fingerprint_across_services(logtree, capsys):
    root, cfg = logtree
    rc, out, err = run(capsys, "--config", str(cfg), "logs", "errors", "--format", "json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["files"] == 4
    by_exc = {}
    for g in doc["errors"]:
        by_exc.setdefault(g["exception"], []).append(g)
    db = by_exc["oslo_db.exception.DBConnectionError"][0]
    assert db["count"] == 8 and db["services"] == {"nova-conductor": 8}
    assert db["first_seen"] < db["last_seen"]
    assert "(Background on this error at:" in db["sample_traceback"]
    refused = by_exc["ConnectionRefusedError"]
    assert sum(g["count"] for g in refused) == 40 and all(g["services"] == {"nova-compute": g["count"]} for g in refused)
    assert by_exc["IndexError"][0]["services"] == {"nova-scheduler": 1}  # found in the rotated .gz
    assert any(g["services"] == {"keystone": 1} and g["sample_traceback"] for g in doc["errors"])  # gunicorn 500
    assert doc["events"] == 8 + 57 + 1 + 1
    assert all(g["new"] for g in doc["errors"])


def test_errors_new_only_reports_fingerprints_unseen_by_the_previous_run(logtree, capsys):
    root, cfg = logtree
    base = ["--config", str(cfg), "logs", "errors", "--format", "json", "--new"]
    first = json.loads(run(capsys, *base)[1])
    assert first["new_groups"] == first["groups"] > 0
    second = json.loads(run(capsys, *base)[1])
    assert second["new_groups"] == 0 and second["errors"] == []
    with open(root / "nova" / "nova-conductor.log", "a") as fh:  # a new kind of error appears
        fh.write("2026-11-24 09:00:00.000 8289 ERROR nova.conductor.manager [req-0d9ad0f8-1c3e-4a54-9a0e-4b7f2d1f9e11 - - - - - -] "
                 "Failed to schedule instances: nova.exception.NoValidHost: No valid host was found. There are not enough hosts available.\n")
    third = json.loads(run(capsys, *base)[1])
    assert [g["exception"] for g in third["errors"]] == ["nova.exception.NoValidHost"]
    state = json.loads((Path(cfg).parent / "state" / "seen-fingerprints.json").read_text())
    assert third["errors"][0]["fingerprint"] in state["fingerprints"]


def test_errors_table_and_since_window(logtree, capsys):
    root, cfg = logtree
    rc, out, _ = run(capsys, "--config", str(cfg), "logs", "errors", "--service", "nova-conductor", "--tracebacks")
    assert rc == 0 and "DBConnectionError" in out and "nova-conductor:8" in out and "Traceback" in out
    rc, out, _ = run(capsys, "--config", str(cfg), "logs", "errors", "--format", "json",
                     "--since", "2026-11-24T08:02:42", "--until", "2026-11-24T08:02:44", "--service", "nova-conductor")
    doc = json.loads(out)
    assert doc["events"] == 1  # only the 08:02:42.568 report falls in the window


def test_trace_merges_lines_of_one_request_in_time_order(logtree, capsys):
    root, cfg = logtree
    req = "req-562fa9eb-53d3-408a-8187-30ea6f5bee8e"
    # the same request continues in another service's log a little later (as the request id travels)
    with open(root / "nova" / "nova-conductor.log", "a") as fh:
        fh.write(f"2026-11-24 08:00:21.000 8289 INFO nova.conductor.manager [None {req} - - - - - -] handled after retry\n")
    rc, out, err = run(capsys, "--config", str(cfg), "logs", "trace", req, "--format", "json")
    assert rc == 0, err
    events = json.loads(out)
    assert [e["service"] for e in events].count("nova-conductor") == 1
    assert len(events) >= 7 and all(req in (e["request_id"] or "") or req in e["message"] for e in events)
    stamps = [e["@timestamp"] for e in events]
    assert stamps == sorted(stamps)
    rc, out, err = run(capsys, "--config", str(cfg), "logs", "trace", req)
    assert "handled after retry" in out and "services: nova-compute, nova-conductor" in err


def test_bad_time_is_a_usage_error(logtree, capsys):
    _, cfg = logtree
    rc, _, err = run(capsys, "--config", str(cfg), "logs", "errors", "--since", "yesterday-ish")
    assert rc == 64 and "cannot read time" in err and "hint:" in err


# ------------------------------------------------------------------------------------------ fingerprints
def test_normalize_strips_ids_numbers_and_addresses():
    a = normalize("[req-562fa9eb-53d3-408a-8187-30ea6f5bee8e] AMQP server on 127.0.0.1:5672 is unreachable: "
                  "[Errno 111] Connection refused. Trying again in 1 seconds.")
    b = normalize("[req-00000000-53d3-408a-8187-30ea6f5bee8e] AMQP server on 10.1.2.3:5671 is unreachable: "
                  "[Errno 111] Connection refused. Trying again in 32 seconds.")
    assert a == b == "[<req>] AMQP server on <ip> is unreachable: [Errno <n>] Connection refused. Trying again in <n> seconds."
    assert normalize("instance d0b162a8-b6be-4e29-a64c-3d5fcefb51ad at 0x7ff44a8001b8 via fe80::1") == \
        "instance <uuid> at <hex> via <addr>"
    assert normalize("Port 7926e7e26ab347f1a56ce83d6f666391 not found") == "Port <uuid> not found"
    # memoised on digit-insensitive keys, yet '0x' (hex) and '1x' (not hex) stay apart in either order
    assert normalize("id 1x12 done") == "id <n>x<n> done" and normalize("id 0x12 done") == "id <hex> done"


def test_same_error_different_ids_same_fingerprint_but_different_exception_differs():
    from opsctl.logs.grouping import fingerprint_of

    def ev(line: str):
        a = Assembler()
        a.feed(0, line.encode())
        return a.flush()

    base = "2026-11-24 08:00:00.000 1 ERROR nova.compute.manager [req-{r} - - - - - -] [instance: {u}] Failed: {e}: x"
    e1 = ev(base.format(r="11111111-1111-1111-1111-111111111111", u="d0b162a8-b6be-4e29-a64c-3d5fcefb51ad", e="BuildAbortException"))
    e2 = ev(base.format(r="22222222-1111-1111-1111-111111111111", u="a0b162a8-b6be-4e29-a64c-3d5fcefb51ad", e="BuildAbortException"))
    e3 = ev(base.format(r="22222222-1111-1111-1111-111111111111", u="a0b162a8-b6be-4e29-a64c-3d5fcefb51ad", e="RescheduledException"))
    assert fingerprint_of(e1)[0] == fingerprint_of(e2)[0] != fingerprint_of(e3)[0]
    assert fingerprint_of(e1)[1] == "BuildAbortException"


# ------------------------------------------------------------------------------------------ discovery
def test_discovery_from_catalog_overrides_rotated_gz_and_since(logtree):
    root, _ = logtree
    catalog = apply_overrides(CATALOG, {"nova": {"log_dirs": [str(root / "nova")]},
                                        "keystone": {"log_dirs": [str(root / "keystone")]}})
    old = root / "nova" / "nova-compute.log.1"
    shutil.copy(root / "nova" / "nova-compute.log", old)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    found = {(Path(f.path).name, f.service) for f in discover(LocalHost("h"), catalog)}
    assert found == {("nova-conductor.log", "nova-conductor"), ("nova-compute.log", "nova-compute"),
                     ("nova-compute.log.1", "nova-compute"), ("nova-scheduler.log.1.gz", "nova-scheduler"),
                     ("keystone.out", "keystone")}
    recent = {Path(f.path).name for f in discover(LocalHost("h"), catalog, since=time.time() - 3600)}
    assert "nova-compute.log.1" not in recent and "nova-compute.log" in recent
    only = {f.service for f in discover(LocalHost("h"), catalog, services=["nova-compute"])}
    assert only == {"nova-compute"}
    assert guess_service("/var/log/neutron/neutron-api.log", CATALOG) == ("neutron", "neutron-server")
    assert guess_service("/tmp/minios/logs/gunicorn/glance.out", CATALOG) == ("glance", "glance-api")


def test_file_identity_survives_rotation_and_needs_a_complete_first_line():
    head = (SAMPLES / "nova-conductor-db-outage.log").read_bytes()[:65536]
    assert file_identity(head) == file_identity(head[:5000]) is not None
    assert file_identity(b"2026-11-24 08:00:00.000 1 INFO x [-] partial line without newline") is None


def test_log_timezone_from_config(logtree, capsys, tmp_path):
    root, cfg = logtree
    data = yaml.safe_load(Path(cfg).read_text())
    data["logs"]["timezone"] = "UTC"
    Path(cfg).write_text(yaml.safe_dump(data))
    rc, out, _ = run(capsys, "--config", str(cfg), "logs", "errors", "--format", "json", "--service", "nova-scheduler")
    assert rc == 0 and json.loads(out)["errors"][0]["first_seen"] == "2026-11-24T08:22:42.771Z"
    data["logs"]["timezone"] = "Mars/Olympus"
    Path(cfg).write_text(yaml.safe_dump(data))
    rc, _, err = run(capsys, "--config", str(cfg), "logs", "errors")
    assert rc == 78 and "unknown time zone" in err
    from opsctl.logs.parser import set_log_timezone

    set_log_timezone(None)
