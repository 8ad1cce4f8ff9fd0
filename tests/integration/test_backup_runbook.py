"""backup.freshness and its runbook against a real MariaDB: no backup -> CRITICAL, the runbook takes and
verifies one, the final re-check is OK."""

import json
import os
import subprocess
import sys

import yaml


def _opsctl(cfg, *args, timeout=600):
    env = {**os.environ, "OPSCTL_CONFIG": str(cfg), "OPSCTL_TEST_DB_PW": "rootpw-test"}
    return subprocess.run([sys.executable, "-m", "opsctl", *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_missing_backup_is_critical_and_the_runbook_repairs_it(mariadb, tmp_path):
    mariadb.sql("CREATE DATABASE IF NOT EXISTS keystone; CREATE TABLE IF NOT EXISTS keystone.project (id INT PRIMARY KEY, name TEXT);"
                "REPLACE INTO keystone.project VALUES (1, 'admin'), (2, 'service');")
    store = tmp_path / "store"
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"socket": mariadb.socket, "user": "root", "password": {"env": "OPSCTL_TEST_DB_PW"}},
        "backup": {"store": str(store), "components": ["keystone"], "compression": "zstd"},
        "components": {"keystone": {"config_dirs": [str(tmp_path / "etc-keystone")], "key_dirs": []}},
        "runbooks": {"audit_log": str(tmp_path / "audit.log")},
    }))
    (tmp_path / "etc-keystone").mkdir()
    (tmp_path / "etc-keystone" / "keystone.conf").write_text("[DEFAULT]\n")

    before = _opsctl(cfg, "check", "--check", "backup.freshness", "-f", "json")
    doc = json.loads(before.stdout)
    assert before.returncode == 2, before.stderr
    assert doc["results"][0]["summary"].startswith("no complete backup in") and doc["results"][0]["runbook"] == "backup-too-old"

    run = _opsctl(cfg, "runbook", "run", "backup-too-old", "--yes")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "rootpw-test" not in run.stdout + run.stderr

    after = json.loads(_opsctl(cfg, "check", "--check", "backup.freshness", "-f", "json").stdout)
    assert after["status"] == "OK"
    assert any(r["summary"].startswith("keystone/keystone: newest complete backup 0.0 h old") for r in after["results"])
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert audit[-1]["runbook"] == "backup-too-old"
