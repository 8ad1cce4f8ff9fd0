"""The real testbed's OpenStack databases and keystone keys: back up, verify in a throwaway MariaDB,
drop keystone and nova_api, restore, compare table checksums, and check the cloud works again."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import openstack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backup_helpers import opsctl  # noqa: E402

from opsctl.backup import mysql  # noqa: E402
from opsctl.backup.store import Store  # noqa: E402

SOCKET = "/tmp/minios/run/mysqld.sock"


def _config(tmp_path, testbed) -> Path:
    import yaml

    etc = testbed.base / "etc"
    overrides = {name: {"config_dirs": [str(etc / name)], "state_dirs": [], "key_dirs": []}
                 for name in ("nova", "glance", "placement", "neutron", "cinder")}
    overrides["keystone"] = {"config_dirs": [str(etc / "keystone")],
                             "key_dirs": [str(etc / "keystone/fernet-keys"), str(etc / "keystone/credential-keys")]}
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": {"socket": SOCKET, "user": "root"},
        "backup": {"store": str(tmp_path / "store"), "components": ["keystone", "nova", "glance", "placement", "neutron", "cinder"]},
        "components": overrides}))
    return cfg


def _stats(database: str) -> dict:
    conn = mysql.MySQLTarget(socket=SOCKET, user="root").connect()
    try:
        return mysql.table_stats(conn, database)
    finally:
        conn.close()


def _cloud_works(testbed, timeout: float = 60) -> None:
    import os

    os.environ["OS_CLIENT_CONFIG_FILE"] = str(testbed.clouds_yaml)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            conn = openstack.connect(cloud="testbed", api_timeout=10)
            assert conn.identity.get_project(conn.current_project_id).name == "admin"
            assert len(list(conn.compute.services())) >= 3
            return
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
            time.sleep(2)
    raise AssertionError(f"testbed not working after restore: {last}")


def test_backup_drop_restore_testbed(testbed_faults, tmp_path):
    testbed = testbed_faults
    cfg = _config(tmp_path, testbed)
    out = opsctl(cfg, "backup", "run")
    assert out.returncode == 0, out.stderr
    store = Store(tmp_path / "store")
    backup = store.list()[-1]
    dumps = {i.name: i for i in backup.manifest.items if i.type == "mysql-dump"}
    assert {"keystone", "nova", "nova_api", "nova_cell0", "glance", "placement", "neutron", "cinder"} <= set(dumps)
    assert {(i.component, i.name) for i in backup.manifest.items if i.type == "files"} >= {("keystone", "config"), ("keystone", "keys")}

    ver = opsctl(cfg, "backup", "verify", "--database", "keystone", "--database", "nova_api", "--database", "placement")
    assert ver.returncode == 0, ver.stdout + ver.stderr
    assert "database keystone: OK" in ver.stdout

    recorded = {db: dumps[db].details["tables"] for db in ("keystone", "nova_api")}
    root = mysql.MySQLTarget(socket=SOCKET, user="root")
    for db in ("keystone", "nova_api"):
        mysql.drop_database(root, db)
    assert not mysql.database_exists(root, "keystone")

    for db in ("keystone", "nova_api"):
        out = opsctl(cfg, "restore", "--database", db, "--yes")
        assert out.returncode == 0, out.stderr
    for db, tables in recorded.items():
        now = _stats(db)
        assert set(now) == set(tables)
        bad, _ = mysql.compare_stats({t: v for t, v in tables.items() if v.get("stable")}, {t: now[t] for t in tables if tables[t].get("stable")})
        assert not bad, bad
    # no safety copy was needed: the databases were gone
    assert [b.manifest.kind for b in store.list()] == ["manual"]
    _cloud_works(testbed)


def test_restore_live_database_keeps_a_safety_copy_and_keys(testbed_faults, tmp_path):
    testbed = testbed_faults
    cfg = _config(tmp_path, testbed)
    etc = testbed.base / "etc"
    earlier = set(etc.glob("keystone.pre-restore-*"))
    assert opsctl(cfg, "backup", "run", "--component", "keystone").returncode == 0
    before = _stats("keystone")
    out = opsctl(cfg, "restore", "--component", "keystone", "--yes")
    assert out.returncode == 0, out.stderr
    assert "pre-restore" in out.stdout
    store = Store(tmp_path / "store")
    kinds = [b.manifest.kind for b in store.list()]
    assert kinds.count("pre-restore") == 1
    keys = etc / "keystone/fernet-keys"
    # the config set (all of etc/keystone) was moved aside first, keys included
    aside = sorted(set(etc.glob("keystone.pre-restore-*")) - earlier)
    try:
        assert len(aside) == 1, out.stdout
        assert sorted(p.name for p in keys.iterdir()) == sorted(p.name for p in (aside[0] / "fernet-keys").iterdir())
        assert (aside[0] / "keystone.conf").read_text() == (etc / "keystone/keystone.conf").read_text()
        assert (keys.stat().st_mode & 0o777) == 0o700
        after = _stats("keystone")
        assert {t: v["rows"] for t, v in after.items() if t != "revocation_event"} == \
               {t: v["rows"] for t, v in before.items() if t != "revocation_event"}
        _cloud_works(testbed)
    finally:
        for p in aside:
            shutil.rmtree(p, ignore_errors=True)
