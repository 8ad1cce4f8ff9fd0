"""Logs from the real systemd-journald, written by the real oslo.log (Debian python3-oslo.log and
python3-systemd): once through oslo's journal handler (use_journal: one record per log call, traceback
inside MESSAGE, context in fields), once the devstack way (the service logs to stderr under systemd, one
record per line; here systemd-cat connects it). Read back with journalctl in the formats operators save
(export, short-precise, short-iso-precise) and grouped by `opsctl logs errors`: the same failures must
give the same fingerprint whichever way they were logged.

No systemd runs as PID 1 here, so systemd-journald is started on its own (it creates its sockets)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from opsctl.cli.main import main
from opsctl.logs.parser import parse_stream

REQ = "req-7c1f6f0e-5d2b-4a8e-9a41-0c6f2b8d9e11"
GLOBAL = "req-0b9d6a43-3a57-4a4f-b0d5-2e7b7f0c1a11"
EMITTER = '''#!/usr/bin/python3
"""nova-compute-like records through the real oslo.log: to the journal (use_journal) or to stderr."""
import sys

from oslo_config import cfg
from oslo_context import context
from oslo_log import log as logging

CONF = cfg.CONF
logging.register_options(CONF)
CONF([], project="nova", default_config_files=[])
CONF.set_override("use_journal", sys.argv[1] == "journal")
CONF.set_override("use_stderr", sys.argv[1] == "stream")
# devstack's formats for services under systemd
CONF.set_override("logging_context_format_string", "%(color)s%(levelname)s %(name)s [%(global_request_id)s "
                  "%(request_id)s %(project_name)s %(user_name)s%(color)s] %(instance)s%(color)s%(message)s")
CONF.set_override("logging_default_format_string", "%(color)s%(levelname)s %(name)s [-%(color)s] %(instance)s%(color)s%(message)s")
CONF.set_override("logging_exception_prefix", "ERROR %(name)s %(instance)s")
logging.setup(CONF, "nova")
LOG = logging.getLogger("nova.compute.manager")
ctx = context.RequestContext(request_id=sys.argv[2], global_request_id=sys.argv[3], project_name="demo", user_name="admin")
LOG.info("Starting compute node (version 29.0.0)")
for address in ("10.0.0.5", "10.0.0.6", "10.0.0.7"):
    try:
        raise ConnectionRefusedError("[Errno 111] ECONNREFUSED connecting to %s:5672" % address)
    except ConnectionRefusedError:
        LOG.exception("Error updating resources for node compute1.", context=ctx)
LOG.warning("Timed out waiting for a reply to message ID 1f2e3d4c", context=ctx)
'''
SOCKET = "/run/systemd/journal/socket"


def _journald_up() -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.connect(SOCKET)
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def journald():
    for tool in ("journalctl", "systemd-cat"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found (tests/run.sh installs systemd)")
    proc = None
    if not _journald_up():
        proc = subprocess.Popen(["/lib/systemd/systemd-journald"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 10
        while not _journald_up():
            assert proc.poll() is None and time.monotonic() < deadline, "systemd-journald did not start"
            time.sleep(0.1)
    yield
    if proc is not None:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def emitter(tmp_path_factory):
    d = tmp_path_factory.mktemp("journal")
    path = d / "nova-compute"  # oslo.log names the journal identifier after the program
    path.write_text(EMITTER)
    path.chmod(0o755)
    check = subprocess.run(["/usr/bin/python3", "-c", "import oslo_log, systemd.journal"], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"python3-oslo.log / python3-systemd missing (tests/run.sh installs them): {check.stderr.strip()}")
    return path


def _journal(match: list[str], fmt: str, records: int) -> bytes:
    """journalctl output for the match, once journald has all the records."""
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(["journalctl", "--no-pager", "-o", fmt, *match], capture_output=True, check=True).stdout
        count = out.count(b"\n__CURSOR=") + out.startswith(b"__CURSOR=") if fmt == "export" else out.count(b"\n")
        if count >= records or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def _errors(tmp_path: Path, capture: Path, capsys) -> dict:
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state")}}))
    rc = main(["--config", str(cfg), "logs", "errors", "--path", str(capture), "--warnings", "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    return {(g["level"], g["exception"]): g for g in json.loads(out.out)["errors"]}


def _check_groups(groups: dict) -> str:
    assert set(groups) == {("ERROR", "ConnectionRefusedError"), ("WARNING", None)}, groups
    err = groups[("ERROR", "ConnectionRefusedError")]
    assert err["count"] == 3  # one fingerprint: the addresses differ only
    assert err["message"].startswith("Error updating resources for node compute1.: ConnectionRefusedError: ")
    # the global request id first: it follows the request across services (`opsctl logs trace`)
    assert err["services"] == {"nova-compute": 3} and err["request_ids"] == [GLOBAL]
    assert err["sample_traceback"].startswith("Traceback (most recent call last):")
    assert "ERROR nova.compute.manager" not in err["sample_traceback"]  # oslo's prefix is not part of it
    return err["fingerprint"]


@pytest.fixture(scope="module")
def started():
    return time.time() - 1


@pytest.fixture(scope="module")
def captures(journald, emitter, started, tmp_path_factory):
    """The same records logged both ways, saved as operators save them."""
    d = tmp_path_factory.mktemp("captures")
    native = subprocess.run([str(emitter), "journal", REQ, GLOBAL], capture_output=True, text=True, timeout=60)
    assert native.returncode == 0, native.stderr
    t0 = time.time()
    time.sleep(0.05)
    stream = subprocess.run(["systemd-cat", "-t", "nova-compute", str(emitter), "stream", REQ, GLOBAL],
                            capture_output=True, text=True, timeout=60)
    assert stream.returncode == 0, stream.stderr
    out = {}
    # one record per log call; the emitter's pid tells this run's records apart
    pid = json.loads(_journal(["SYSLOG_IDENTIFIER=nova-compute", "_TRANSPORT=journal", "-o", "json", "-n", "1"],
                              "json", 1).decode().splitlines()[-1])["_PID"]
    out["native-export"] = _journal([f"_PID={pid}"], "export", 5)
    # one record per line (4 log calls, 3 of them with a 6-line traceback)
    match = ["SYSLOG_IDENTIFIER=nova-compute", "_TRANSPORT=stdout", f"--since=@{t0:.6f}"]
    out["stream-export"] = _journal(match, "export", 20)
    out["stream-short-precise"] = _journal(match, "short-precise", 20)
    out["stream-short-iso-precise"] = _journal(match, "short-iso-precise", 20)
    paths = {}
    for name, data in out.items():
        paths[name] = d / f"{name}.log"
        paths[name].write_bytes(data)
    return paths


def test_native_journal_records_of_oslo_log(captures, tmp_path, capsys):
    with open(captures["native-export"], "rb") as fh:
        events = list(parse_stream(fh))
    assert [e.level for e in events] == ["INFO", "ERROR", "ERROR", "ERROR", "WARNING"]
    err = events[1]
    assert err.message == "Error updating resources for node compute1.: ConnectionRefusedError: [Errno 111] " \
                          "ECONNREFUSED connecting to 10.0.0.5:5672"
    assert (err.request_id, err.global_request_id, err.project, err.user) == (REQ, GLOBAL, "demo", "admin")
    assert err.exception() == ("ConnectionRefusedError", "[Errno 111] ECONNREFUSED connecting to 10.0.0.5:5672")
    assert err.logger == "nova.compute.manager" and err.service == "nova-compute" and err.pid > 0
    assert abs(err.ts - time.time()) < 600
    _check_groups(_errors(tmp_path, captures["native-export"], capsys))


@pytest.mark.parametrize("capture", ["stream-export", "stream-short-precise", "stream-short-iso-precise"])
def test_line_per_record_journal_is_reassembled(captures, capture, tmp_path, capsys):
    with open(captures[capture], "rb") as fh:
        events = list(parse_stream(fh))
    assert [e.level for e in events] == ["INFO", "ERROR", "ERROR", "ERROR", "WARNING"], [e.message for e in events]
    assert all(e.request_id == REQ and e.global_request_id == GLOBAL for e in events)
    assert "\x1b" not in events[0].message  # oslo colours stderr: no escape codes left
    assert events[3].exception()[1] == "[Errno 111] ECONNREFUSED connecting to 10.0.0.7:5672"
    assert events[1].ts <= events[2].ts <= events[3].ts


def test_same_failure_same_fingerprint_however_it_was_logged(captures, tmp_path, capsys):
    prints = {name: _check_groups(_errors(tmp_path / name, path, capsys)) for name, path in captures.items()
              if not (tmp_path / name).mkdir()}
    assert len(set(prints.values())) == 1, prints


def test_logs_errors_reads_the_journal_where_services_have_no_log_files(captures, started, tmp_path, capsys):
    """OpenStack-Ansible and devstack log to journald: with no nova log file on the host, `opsctl logs errors`
    runs journalctl on it (identifiers from the catalog) and finds both the native and the stdout records."""
    from datetime import datetime, timezone

    cfg = tmp_path / "opsctl.yaml"
    empty = tmp_path / "no-logs"
    empty.mkdir()
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state")},
                                   "components": {"nova": {"log_dirs": [str(empty)]}}}))
    since = datetime.fromtimestamp(started, timezone.utc).isoformat()
    rc = main(["--config", str(cfg), "logs", "errors", "-c", "nova", "--since", since, "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    doc = json.loads(out.out)
    assert isinstance(doc, dict), out.out[:500]
    [group] = [g for g in doc["errors"] if g["exception"] == "ConnectionRefusedError"]
    assert group["count"] == 6 and group["services"] == {"nova-compute": 6}  # 3 native + 3 reassembled
    cfg_never = tmp_path / "never.yaml"
    cfg_never.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state2"), "journal": "never"},
                                         "components": {"nova": {"log_dirs": [str(empty)]}}}))
    rc = main(["--config", str(cfg_never), "logs", "errors", "-c", "nova", "--since", since, "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0 and json.loads(out.out)["errors"] == [] and "no log files found" in out.err

    rc = main(["--config", str(cfg), "logs", "trace", REQ, "-c", "nova", "--since", since, "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert len(json.loads(out.out)) == 10  # 5 log calls, logged both ways


def test_the_journal_of_a_remote_host_is_read_over_ssh(captures, started, ssh_hosts, tmp_path, capsys):
    """journalctl runs on the host (a real sshd in a namespace; it shares this machine's journal)."""
    from datetime import datetime, timezone

    empty = tmp_path / "no-logs"
    empty.mkdir()
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state")},
                                   "inventory": ssh_hosts.inventory({"compute1": ["compute"]}),
                                   "components": {"nova": {"log_dirs": [str(empty)]}}}))
    since = datetime.fromtimestamp(started, timezone.utc).isoformat()
    rc = main(["--config", str(cfg), "logs", "errors", "-H", "compute1", "-c", "nova", "--since", since, "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    [group] = [g for g in json.loads(out.out)["errors"] if g["exception"] == "ConnectionRefusedError"]
    assert group["count"] == 6 and group["hosts"] == {"compute1": 6}


def test_logs_ship_reads_the_journal_and_resumes_after_its_cursor(captures, emitter, es_server, tmp_path, capsys):
    """`opsctl logs ship` on a journald host: documents named by record cursor, the checkpoint is the cursor of
    the last shipped record, a re-run ships nothing, new records are shipped once (real ES API: noida-db)."""
    import re

    from elasticsearch import Elasticsearch

    empty = tmp_path / "no-logs"
    empty.mkdir()
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state"), "ship_settle_seconds": 0},
                                   "elasticsearch": {"url": es_server.url, "index": "journal-ship"},
                                   "components": {"nova": {"log_dirs": [str(empty)]}}}))

    def ship() -> int:
        rc = main(["--config", str(cfg), "logs", "ship", "-c", "nova"])
        out = capsys.readouterr()
        assert rc == 0, out.err
        return int(re.search(r"shipped (\d+) events", out.out).group(1))

    def count() -> int:
        client = Elasticsearch(es_server.url)
        client.indices.refresh(index="journal-ship")
        return client.count(index="journal-ship")["count"]

    first = ship()
    assert first >= 10 and count() == first  # at least this module's two runs (5 events each)
    assert ship() == 0 and count() == first
    again = subprocess.run([str(emitter), "journal", REQ, GLOBAL], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    deadline = time.monotonic() + 10
    shipped = 0
    while shipped < 5 and time.monotonic() < deadline:
        shipped += ship()
        time.sleep(0.2)
    assert shipped == 5 and count() == first + 5
    client = Elasticsearch(es_server.url)
    hits = client.search(index="journal-ship", query={"term": {"error.type": "ConnectionRefusedError"}}, size=50)
    docs = [h["_source"] for h in hits["hits"]["hits"]]
    assert docs and all(d["service"]["name"] == "nova-compute" for d in docs)
