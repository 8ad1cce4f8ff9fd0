"""A real uWSGI (Debian uwsgi-core + python3 plugin) serving a WSGI app the way OpenStack APIs run under
uwsgi: its log (request lines and the traceback of an unhandled exception) parsed as it really is, and
`opsctl logs errors` grouping the failures."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

import servers
from opsctl.cli.main import main
from opsctl.logs.parser import Assembler

APP = '''
def application(environ, start_response):
    if environ["PATH_INFO"].startswith("/v3/auth/tokens"):
        raise RuntimeError("database unavailable: (pymysql.err.OperationalError) (2013, "
                           "'Lost connection to server at 10.0.0.%s')" % environ["QUERY_STRING"])
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"version": {"id": "v3.14"}}']
'''


@pytest.fixture(scope="module")
def uwsgi_log(tmp_path_factory):
    if shutil.which("uwsgi") is None:
        pytest.fail("uwsgi is not installed (tests/run.sh installs uwsgi-core and uwsgi-plugin-python3)")
    d = tmp_path_factory.mktemp("uwsgi")
    (d / "app.py").write_text(APP)
    log = d / "keystone-api.log"
    port = servers.free_port()
    proc = subprocess.Popen(["uwsgi", "--plugin", "python3", "--http-socket", f"127.0.0.1:{port}", "--wsgi-file",
                             str(d / "app.py"), "--master", "--processes", "1", "--logto", str(log)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        servers.wait_for(lambda: servers.port_open("127.0.0.1", port), 20, "uwsgi")
        urllib.request.urlopen(f"http://127.0.0.1:{port}/v3", timeout=5).read()
        for i in (5, 6, 7):
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/v3/auth/tokens?{i}",
                                                              data=b"{}", method="POST"), timeout=5)
            except (urllib.error.URLError, ConnectionError, OSError):
                pass  # the app raised: uwsgi answers 500 or drops the connection
        deadline = time.monotonic() + 10
        while log.read_text().count("HTTP/1.1 500") < 3:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)  # SIGTERM means "reload" to uWSGI 2.0
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return log


def test_real_uwsgi_log_is_parsed(uwsgi_log):
    a = Assembler()
    events = [e for i, line in enumerate(uwsgi_log.read_bytes().splitlines()) if (e := a.feed(i, line)) is not None]
    if (last := a.flush()) is not None:
        events.append(last)
    requests = [e for e in events if e.fmt == "uwsgi"]
    assert [(e.level, e.message) for e in requests] == [("INFO", "GET /v3 => HTTP 200")] + \
        [("ERROR", "POST /v3/auth/tokens?%d => HTTP 500" % i) for i in (5, 6, 7)]
    tracebacks = [e for e in events if e.exception()[0] == "RuntimeError"]
    assert len(tracebacks) == 3 and all(e.level == "ERROR" for e in tracebacks)
    assert "Lost connection to server at 10.0.0.7" in tracebacks[-1].exception()[1]
    assert requests[1].pid > 0 and requests[1].ts > 0


def test_logs_errors_groups_the_real_uwsgi_failures(uwsgi_log, tmp_path, capsys):
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state")}}))
    rc = main(["--config", str(cfg), "logs", "errors", "--path", str(uwsgi_log), "--format", "json"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    report = json.loads(out.out)
    groups = {(g["exception"], g["normalized"]): g for g in report["errors"]}
    # the three tracebacks differ only in an address: one fingerprint; the 500 request lines are another
    assert set(groups) == {("RuntimeError", "Unhandled exception"), (None, "POST /v<n>/auth/tokens?<n> => HTTP <n>")}
    assert all(g["count"] == 3 for g in groups.values())
    tb = groups[("RuntimeError", "Unhandled exception")]["sample_traceback"]
    assert tb.startswith("Traceback") and "HTTP" not in tb  # never glued to a request line
