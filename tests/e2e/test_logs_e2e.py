"""`opsctl logs` against the real testbed's logs (/tmp/minios/logs, found through the catalog with the
operator's log_dirs override): a request traced by its global request id, and the errors the services log
while RabbitMQ is down found and grouped (fault injection under the testbed lock)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

COMPONENTS = ("nova", "neutron", "cinder", "keystone", "glance", "placement")


@pytest.fixture
def logs_config(testbed, tmp_path) -> Path:
    comps = {c: {"log_dirs": [str(testbed.logs / c), str(testbed.logs / "gunicorn")]} for c in COMPONENTS}
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state")}, "components": comps}))
    return cfg


def opsctl(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess, as an operator runs it."""
    return subprocess.run([sys.executable, "-m", "opsctl", "--config", str(cfg), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_trace_global_request_id_through_the_real_api(testbed, logs_config, monkeypatch):
    import openstack

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(testbed.clouds_yaml))
    conn = openstack.connect(cloud=testbed.cloud, api_timeout=10)
    rid = f"req-{uuid.uuid4()}"
    missing = uuid.uuid4()
    resp = conn.compute.get(f"/servers/{missing}", headers={"X-OpenStack-Request-ID": rid})
    assert resp.status_code == 404
    deadline = time.time() + 20
    while True:
        out = opsctl(logs_config, "logs", "trace", rid, "--format", "json", "--since", "10m")
        assert out.returncode == 0, out.stderr
        events = json.loads(out.stdout)
        if len(events) >= 2 or time.time() > deadline:
            break
        time.sleep(1)
    assert len(events) >= 2, events
    assert all(e["global_request_id"] == rid for e in events)
    assert {e["service"] for e in events} == {"nova-api"}
    assert any(str(missing) in e["message"] for e in events) or any("404" in e["message"] for e in events)
    assert len({e["request_id"] for e in events}) >= 1 and all(e["request_id"].startswith("req-") for e in events)


@pytest.mark.fault
def test_rabbitmq_outage_errors_are_found_and_grouped(testbed_faults, logs_config):
    tb = testbed_faults
    started = time.time() - 1
    since = datetime.fromtimestamp(started).isoformat(timespec="seconds")
    # what was already there is "seen": only what the outage adds must come out of --new
    base = opsctl(logs_config, "logs", "errors", "--format", "json", "--since", "30m")
    assert base.returncode == 0, base.stderr
    tb.kill("rabbitmq.beam", sig=15)
    compute_log = tb.logs / "nova" / "nova-compute.log"
    deadline = time.time() + 60
    found = None
    while time.time() < deadline:
        time.sleep(3)
        out = opsctl(logs_config, "logs", "errors", "--format", "json", "--since", since, "--component", "nova")
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        amqp = [g for g in doc["errors"] if "AMQP server" in g["message"] or "Connection failed" in g["message"]]
        if amqp:
            found = amqp
            break
    assert found, f"no AMQP errors in {compute_log} within 60 s of stopping RabbitMQ"
    g = found[0]
    assert g["exception"] and ("Connection" in g["exception"] or "amqp" in g["exception"] or "kombu" in g["exception"]), g
    assert "<ip>" in g["normalized"] and "127.0.0.1" not in g["normalized"]
    assert any(s.startswith("nova-") for s in g["services"]) and sum(g["hosts"].values()) == g["count"]
    assert g["first_seen"] >= datetime.utcfromtimestamp(started).isoformat()[:19]

    new = opsctl(logs_config, "logs", "errors", "--format", "json", "--since", since, "--new")
    doc = json.loads(new.stdout)
    # everything found in the previous run is not new any more
    assert all(grp["fingerprint"] not in {x["fingerprint"] for x in found} for grp in doc["errors"])

    table = opsctl(logs_config, "logs", "errors", "--since", since, "--component", "nova", "--tracebacks")
    assert table.returncode == 0 and "AMQP server" in table.stdout
