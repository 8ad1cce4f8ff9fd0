"""Galera awareness against a real single-node Galera cluster (galera-4 provider, bootstrapped in a
throwaway mariadbd): wsrep state recorded before/after, a Synced non-writer node preferred, a desynced
node refused. (A second joining node needs SST between throwaway servers: not done here.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backup_helpers import opsctl, write_config  # noqa: E402

from opsctl.backup.launcher import ThrowawayMariaDB, free_port  # noqa: E402
from opsctl.backup.store import Store  # noqa: E402

PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")


@pytest.fixture(scope="module")
def galera(mariadb):
    if not PROVIDER.exists():
        pytest.skip("galera-4 provider not installed")
    node = ThrowawayMariaDB(extra_args=(
        "--wsrep-on=ON", f"--wsrep-provider={PROVIDER}", "--wsrep-cluster-address=gcomm://", "--binlog-format=ROW",
        "--innodb-autoinc-lock-mode=2", "--wsrep-node-address=127.0.0.1",
        f"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{free_port()}")).start()
    conn = node.target.connect()
    with conn.cursor() as cur:
        cur.execute(f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{mariadb.password}'")
        cur.execute("CREATE DATABASE IF NOT EXISTS bk_galera")
        cur.execute("CREATE TABLE bk_galera.t (id INT PRIMARY KEY, v VARCHAR(10))")
        cur.execute("INSERT INTO bk_galera.t VALUES (1, 'galera')")
    conn.close()
    mariadb.sql("CREATE DATABASE IF NOT EXISTS bk_galera; CREATE TABLE IF NOT EXISTS bk_galera.t (id INT PRIMARY KEY, v VARCHAR(10));"
                "REPLACE INTO bk_galera.t VALUES (1, 'writer')")
    yield node
    node.cleanup()


def _set_desync(node, on: bool) -> None:
    conn = node.target.connect()
    with conn.cursor() as cur:
        cur.execute(f"SET GLOBAL wsrep_desync={'ON' if on else 'OFF'}")
    conn.close()


def _cfg(tmp_path, mariadb, nodes):
    return write_config(tmp_path / "c.yaml", tmp_path / "store", mariadb, {"keystone": {"databases": ["bk_galera"]}},
                        components=["keystone"], database_nodes=nodes)


def test_prefers_synced_non_writer_node(tmp_path, mariadb, galera):
    cfg = _cfg(tmp_path, mariadb, [f"127.0.0.1:{galera.port}"])
    out = opsctl(cfg, "backup", "run", "--no-files", db=mariadb)
    assert out.returncode == 0, out.stderr
    item = Store(tmp_path / "store").list()[0].manifest.items[0]
    assert item.source["server"] == f"127.0.0.1:{galera.port}"
    assert item.source["galera_before"]["state"] == "Synced" and item.source["galera_after"]["cluster_status"] == "Primary"


def test_desynced_node_is_not_chosen_writer_used(tmp_path, mariadb, galera):
    _set_desync(galera, True)
    try:
        cfg = _cfg(tmp_path, mariadb, [f"127.0.0.1:{galera.port}"])
        out = opsctl(cfg, "backup", "run", "--no-files", db=mariadb)
        assert out.returncode == 0, out.stderr
        item = Store(tmp_path / "store").list()[0].manifest.items[0]
        assert item.source["server"] == mariadb.socket
    finally:
        _set_desync(galera, False)


def test_desynced_only_node_is_refused(tmp_path, mariadb, galera):
    _set_desync(galera, True)
    try:
        import yaml
        cfg = tmp_path / "g.yaml"
        cfg.write_text(yaml.safe_dump({"database": {"socket": galera.socket, "user": "root"},
                                       "backup": {"store": str(tmp_path / "store"), "components": ["keystone"]},
                                       "components": {"keystone": {"databases": ["bk_galera"]}}}))
        out = opsctl(cfg, "backup", "run", "--no-files")
        assert out.returncode == 69 and "Galera" in out.stderr and "Donor/Desynced" in out.stderr
        assert Store(tmp_path / "store").list() == []
    finally:
        _set_desync(galera, False)
