"""Shipping log events to an Elasticsearch-API server (noida-db, real ES cannot be installed here) with the
official client: ECS documents, deterministic ids, per-file checkpoints that survive an ES outage in the
middle of a run, re-runs and log rotation without losing or duplicating anything; search; check results."""

from __future__ import annotations

import gzip
import shutil
import time
from pathlib import Path

import psutil
import pytest
import servers
from elasticsearch import Elasticsearch

from opsctl.config import parse
from opsctl.errors import UnavailableError
from opsctl.exporters import elasticsearch as es_exp
from opsctl.hosts import LocalHost
from opsctl.logs.discovery import LogFile
from opsctl.logs.parser import parse_stream
from opsctl.results import Result, Status
from opsctl.secrets import register_secret

SAMPLES = Path(__file__).resolve().parents[1] / "testbed" / "log-samples"
HOST = LocalHost("minios")


def _kill_listener(port: int) -> None:
    """Stop the process serving the port. `noida-db start` is a wrapper around the server binary, and killing
    the wrapper (ElasticsearchAPI.stop) leaves the binary serving: stop the real server (SIGTERM: noida-db
    loses writes it acknowledged when SIGKILLed, unlike Elasticsearch with its fsynced translog)."""
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            proc = psutil.Process(conn.pid)
            proc.terminate()
            try:
                proc.wait(10)
            except psutil.TimeoutExpired:
                proc.kill()


def _own_es():
    es = servers.ElasticsearchAPI(servers.tempdir("logs-es")).start()
    try:
        yield es
    finally:
        _kill_listener(int(es.url.rsplit(":", 1)[1]))
        es.cleanup()


# This module's own servers instead of the session `es_server`, whose cleanup stops only the wrapper and
# leaves the noida-db binary running.
es_server = pytest.fixture(scope="module", name="es_server")(_own_es)
own_es = pytest.fixture(name="own_es")(_own_es)  # the outage test really stops and restarts its server


def _config(es_server, tmp_path, index: str, bulk_size: int = 500):
    return parse({"logs": {"state_dir": str(tmp_path / "state"), "ship_settle_seconds": 0},
                  "elasticsearch": {"url": es_server.url, "index": index, "results_index": index + "-checks",
                                    "bulk_size": bulk_size}})


def _files(directory: Path) -> dict[str, list[LogFile]]:
    files = []
    for p in sorted(directory.iterdir()):
        st = p.stat()
        files.append(LogFile("minios", str(p), "nova", p.name.split(".")[0], st.st_size, st.st_mtime - 60))
    return {"minios": files}


def _expected(directory: Path) -> int:
    total = 0
    for p in directory.iterdir():
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as fh:
            total += sum(1 for _ in parse_stream(fh))
    return total


def _count(es_server, index: str) -> int:
    client = Elasticsearch(es_server.url)
    client.indices.refresh(index=index)
    return client.count(index=index)["count"]


@pytest.fixture
def logdir(tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    for name in ("nova-conductor-db-outage.log", "nova-compute-rabbit-outage.log", "nova-scheduler-discover-hosts-IndexError.log"):
        shutil.copy(SAMPLES / name, d / name.replace("-db-outage", "").replace("-rabbit-outage", "")
                    .replace("-discover-hosts-IndexError", ""))
    return d


def test_ship_ecs_documents_and_rerun_adds_nothing(es_server, tmp_path, logdir):
    cfg = _config(es_server, tmp_path, "logs-ecs")
    report = es_exp.ship(cfg, [HOST], _files(logdir))
    expected = _expected(logdir)
    assert report.shipped == expected == _count(es_server, "logs-ecs")
    again = es_exp.ship(cfg, [HOST], _files(logdir))
    assert again.shipped == 0 and _count(es_server, "logs-ecs") == expected

    client = Elasticsearch(es_server.url)
    hits = client.search(index="logs-ecs", query={"term": {"error.type": "oslo_db.exception.DBConnectionError"}}, size=50)
    docs = [h["_source"] for h in hits["hits"]["hits"]]
    assert len(docs) == 8
    d = docs[0]
    assert d["log"]["level"] == "ERROR" and d["service"]["name"] == "nova-conductor" and d["host"]["name"] == "minios"
    assert d["@timestamp"].startswith("2026-11-24T") and d["log"]["file"]["path"].endswith("nova-conductor.log")
    assert "Traceback (most recent call last):" in d["error"]["stack_trace"] and d["error"]["fingerprint"]
    assert isinstance(d["log"]["offset"], int) and d["ecs"]["version"]
    traced = client.search(index="logs-ecs", query={"term": {"trace.id": "req-562fa9eb-53d3-408a-8187-30ea6f5bee8e"}})
    assert traced["hits"]["total"]["value"] == 6


def test_es_outage_mid_ship_then_resume_loses_and_duplicates_nothing(own_es, tmp_path, logdir):
    es_server = own_es
    cfg = _config(es_server, tmp_path, "logs-outage", bulk_size=7)
    expected = _expected(logdir)
    batches = []

    def stop_after_second_batch(shipped: int) -> None:
        batches.append(shipped)
        if len(batches) == 2:
            # Elasticsearch makes an acknowledged bulk durable (fsynced translog); noida-db only on flush
            Elasticsearch(es_server.url).indices.flush(index="logs-outage")
            es_server.stop()
            _kill_listener(int(es_server.url.rsplit(":", 1)[1]))  # the server dies between two bulk requests

    try:
        with pytest.raises(UnavailableError) as err:
            es_exp.ship(cfg, [HOST], _files(logdir), on_batch=stop_after_second_batch)
        assert "events shipped and checkpointed" in err.value.message
    finally:
        es_server.restart()
    time.sleep(0.5)
    committed = batches[1]
    assert 0 < committed < expected
    assert _count(es_server, "logs-outage") == committed  # exactly the two acknowledged batches
    resumed = es_exp.ship(cfg, [HOST], _files(logdir))
    assert resumed.shipped == expected - committed  # resumed from the checkpoints: nothing sent twice
    assert _count(es_server, "logs-outage") == expected


def test_lost_checkpoint_and_rotation_do_not_duplicate(es_server, tmp_path, logdir):
    cfg = _config(es_server, tmp_path, "logs-rotate")
    expected = _expected(logdir)
    es_exp.ship(cfg, [HOST], _files(logdir))
    # rotation: the live file is renamed and compressed, a new live file starts
    live = logdir / "nova-conductor.log"
    with open(live, "rb") as src, gzip.open(logdir / "nova-conductor.log.1.gz", "wb") as dst:
        dst.write(src.read())
    live.write_text("2026-11-24 09:00:00.000 8289 ERROR nova.conductor.manager [req-0d9ad0f8-1c3e-4a54-9a0e-4b7f2d1f9e11 "
                    "- - - - - -] after rotation password=hunter22 and token: s3cr3tvalue\n")
    report = es_exp.ship(cfg, [HOST], _files(logdir))
    assert report.shipped == 1 and _count(es_server, "logs-rotate") == expected + 1
    # even with the checkpoints gone, deterministic ids make a full re-ship idempotent
    shutil.rmtree(tmp_path / "state")
    es_exp.ship(cfg, [HOST], _files(logdir))
    assert _count(es_server, "logs-rotate") == expected + 1
    client = Elasticsearch(es_server.url)
    doc = client.search(index="logs-rotate", query={"match_phrase": {"message": "after rotation"}})["hits"]["hits"][0]["_source"]
    assert "hunter22" not in doc["message"] and "s3cr3tvalue" not in doc["message"] and "***" in doc["message"]


def test_search_and_check_results_index(es_server, tmp_path, logdir):
    cfg = _config(es_server, tmp_path, "logs-search")
    es_exp.ship(cfg, [HOST], _files(logdir))
    time.sleep(0.2)
    Elasticsearch(es_server.url).indices.refresh(index="logs-search")
    total, docs = es_exp.search(cfg, "ConnectionRefusedError", levels=["ERROR"], services=["nova-compute"])
    assert total > 0 and all(d["service"]["name"] == "nova-compute" and d["log"]["level"] == "ERROR" for d in docs)
    total_win, _ = es_exp.search(cfg, None, levels=["error"], since=time.mktime((2026, 11, 24, 8, 2, 42, 0, 0, -1)),
                                 until=time.mktime((2026, 11, 24, 8, 2, 44, 0, 0, -1)))
    assert total_win == 1
    assert es_exp.search(cfg, None, trace_id="req-562fa9eb-53d3-408a-8187-30ea6f5bee8e")[0] == 6

    register_secret("sup3rs3cret-db-pw")
    results = [Result("mysql.reachable", "ctl1", Status.CRITICAL, "cannot connect with sup3rs3cret-db-pw", runbook="mariadb-down"),
               Result("host.load", "ctl1", Status.OK, "load 0.3", metrics={"load1": 0.3})]
    assert es_exp.index_results(cfg, results, timestamp=1764000000) == 2
    assert es_exp.index_results(cfg, results, timestamp=1764000000) == 2  # same run re-sent: same ids
    client = Elasticsearch(es_server.url)
    client.indices.refresh(index="logs-search-checks")
    hits = client.search(index="logs-search-checks", query={"match_all": {}})["hits"]
    assert hits["total"]["value"] == 2
    summaries = {h["_source"]["check"]: h["_source"]["summary"] for h in hits["hits"]}
    assert "sup3rs3cret-db-pw" not in summaries["mysql.reachable"]


def test_unreachable_es_is_a_clear_error(tmp_path, logdir):
    cfg = parse({"logs": {"state_dir": str(tmp_path / "s")}, "elasticsearch": {"url": "http://127.0.0.1:9", "timeout": 2}})
    with pytest.raises(UnavailableError) as err:
        es_exp.ship(cfg, [HOST], _files(logdir))
    assert "Elasticsearch at http://127.0.0.1:9" in err.value.message and err.value.hint


def test_cli_ship_and_search(es_server, tmp_path, logdir, capsys):
    import json

    import yaml

    from opsctl.cli.main import main

    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"logs": {"state_dir": str(tmp_path / "state"), "ship_settle_seconds": 0},
                                   "elasticsearch": {"url": es_server.url, "index": "logs-cli"}}))
    assert main(["--config", str(cfg), "logs", "ship", "--path", str(logdir / "*.log")]) == 0
    out = capsys.readouterr().out
    assert f"shipped {_expected(logdir)} events from 3 files" in out
    Elasticsearch(es_server.url).indices.refresh(index="logs-cli")
    assert main(["--config", str(cfg), "logs", "search", "error.type:IndexError", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["total"] == 1 and doc["hits"][0]["error"]["message"] == "list index out of range"
    assert main(["--config", str(cfg), "logs", "search", "--level", "ERROR", "--service", "nova-compute", "-n", "3"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("nova-compute ERROR") == 3 and "of 57 matching events" in captured.err
