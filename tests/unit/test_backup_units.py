"""Unit tests of backup pieces with no server: Galera node choice (states as a real node reports them),
defaults files, table comparison, store listing rules, schedule -> cron / systemd, config."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opsctl.backup import mysql
from opsctl.backup.mysql import GaleraState, MySQLTarget
from opsctl.backup.store import Store
from opsctl.config import parse
from opsctl.errors import LockedError, UnavailableError

W = MySQLTarget("10.0.0.1", 3306)
N2 = MySQLTarget("10.0.0.2", 3306)
N3 = MySQLTarget("10.0.0.3", 3306)
SYNCED = GaleraState(True, "Synced", "Primary", 3, True)


def test_choose_prefers_synced_non_writer():
    t, _ = mysql.choose_node([(W, SYNCED), (N2, GaleraState(True, "Donor/Desynced", "Primary", 3, True)), (N3, SYNCED)], W)
    assert t is N3


def test_choose_falls_back_to_writer_and_refuses_when_none_synced():
    t, _ = mysql.choose_node([(W, SYNCED), (N2, OSError("unreachable"))], W)
    assert t is W
    with pytest.raises(UnavailableError, match="no usable database node"):
        mysql.choose_node([(W, GaleraState(True, "Joining", "non-Primary", 1, False)), (N2, OSError("x"))], W)


def test_non_galera_is_usable():
    assert GaleraState(False).usable
    assert not GaleraState(True, "Synced", "non-Primary", 1, True).usable


def test_defaults_file_escapes_and_never_in_repr():
    t = MySQLTarget("db", 3306, None, "root", 'p"a\\ss')
    text = t.defaults_file()
    assert 'password="p\\"a\\\\ss"' in text and "protocol=TCP" in text
    assert "p\"a" not in repr(t)
    assert "socket=/s" in MySQLTarget(socket="/s", password="x").defaults_file()


def test_compare_stats():
    rec = {"a": {"rows": 2, "checksum": 5, "stable": True}, "b": {"rows": 1, "checksum": 1, "stable": False},
           "c": {"rows": 1, "checksum": 9, "stable": True}}
    bad, skipped = mysql.compare_stats(rec, {"a": {"rows": 2, "checksum": 5}, "b": {"rows": 9, "checksum": 9},
                                             "c": {"rows": 1, "checksum": 8}, "d": {"rows": 0, "checksum": 0}})
    assert skipped == ["b"]
    assert any(m.startswith("c: checksum") for m in bad) and any(m.startswith("d:") for m in bad)


def test_store_lists_only_complete(tmp_path):
    store = Store(tmp_path)
    with store.lock():
        m, work = store.begin()
        (work / "f").write_bytes(b"x")
        store.commit(m, work)
        m2, work2 = store.begin()  # never committed: in .inprogress
    (tmp_path / "20260101T000000Z").mkdir()  # a directory with no manifest
    (tmp_path / "20260102T000000Z").mkdir()
    (tmp_path / "20260102T000000Z" / "manifest.json").write_text("{not json")
    bad = tmp_path / "20260103T000000Z"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"id": "20260103T000000Z", "status": "incomplete"}))
    assert [b.id for b in store.list()] == [m.id]
    assert store.get("latest").id == m.id


def test_lock_is_exclusive_across_processes(tmp_path):
    store = Store(tmp_path)
    code = ("import sys; from opsctl.backup.store import Store; from opsctl.errors import LockedError\n"
            "try:\n  cm = Store(sys.argv[1]).lock(); cm.__enter__()\nexcept LockedError as e:\n  print(e.message); sys.exit(75)\n")
    with store.lock("holder-x"):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert out.returncode == 75 and "holder-x" in out.stdout
        with pytest.raises(LockedError):  # a second open in the same process is refused too
            with store.lock():
                pass
    assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 0


def test_config_defaults_and_validation():
    cfg = parse({"backup": {"compression": "gzip", "schedule": [{"every": "day", "at": "02:30", "run": "backup"}]}})
    assert cfg.backup.compression == "gzip" and cfg.backup.schedule[0].at == "02:30"
    with pytest.raises(Exception):
        parse({"backup": {"compression": "lz4"}})


def _schedule(tmp_path, jobs, *args):
    import yaml
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"backup": {"store": str(tmp_path / "s"), "schedule": jobs}}))
    return subprocess.run([sys.executable, "-c", "import sys; from opsctl.cli.main import main; sys.exit(main())",
                           "--config", str(cfg), "schedule", *args], capture_output=True, text=True, timeout=60)


JOBS = [{"every": "day", "at": "02:30", "run": "backup"}, {"every": "hours", "interval": 2, "at": ":15", "run": "check",
                                                           "args": ["--profile", "daily"]},
        {"every": "sunday", "at": "04:00", "run": "prune"}, {"every": "minutes", "interval": 10, "run": "verify"}]


def test_schedule_cron_lines(tmp_path):
    out = _schedule(tmp_path, JOBS, "cron")
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l and not l.startswith(("#", "SHELL", "PATH"))]
    assert lines[0].startswith("30 2 * * * root ") and lines[0].endswith("backup run --kind scheduled")
    assert lines[1].startswith("15 */2 * * * root ") and lines[1].endswith("check --profile daily")
    assert lines[2].startswith("0 4 * * 0 root ") and lines[2].endswith("backup prune")
    assert lines[3].startswith("*/10 * * * * root ")
    assert f"--config {tmp_path / 'c.yaml'}" in lines[0]


def test_schedule_systemd_units(tmp_path):
    out = _schedule(tmp_path, JOBS, "systemd")
    assert out.returncode == 0, out.stderr
    assert "OnCalendar=*-*-* 02:30:00" in out.stdout and "OnCalendar=*-*-* 00/2:15:00" in out.stdout
    assert "OnCalendar=Sun *-*-* 04:00:00" in out.stdout and "OnCalendar=*-*-* *:00/10:00" in out.stdout
    assert out.stdout.count("Type=oneshot") == 4 and out.stdout.count("[Timer]") == 4


def test_schedule_rejects_bad_timetable(tmp_path):
    out = _schedule(tmp_path, [{"every": "day", "at": "25:00"}], "cron")
    assert out.returncode == 64 and "HH:MM" in out.stderr
    out = _schedule(tmp_path, [], "cron")
    assert out.returncode == 64 and "backup.schedule is empty" in out.stderr


def test_schedule_daemon_runs_jobs(tmp_path):
    """The foreground daemon runs a job every second (here: prune on an empty store) and stops on time."""
    out = _schedule(tmp_path, [{"every": "second", "run": "prune"}], "--max-seconds", "8")
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("backup prune exited 0") >= 2
