"""Backups of real MariaDB databases (the session `mariadb` server and throwaway ones): run, list,
verify in a throwaway server, restore with a safety copy, corrupt archives, kill -9, lock, secrets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backup_helpers import CLI, env_for, opsctl, popen, write_config  # noqa: E402

from opsctl.backup.store import Store  # noqa: E402

COMPONENTS = {"keystone": {"databases": ["bk_keystone"], "config_dirs": [], "key_dirs": []},
              "nova": {"databases": ["bk_nova", "bk_nova_api"], "config_dirs": [], "state_dirs": []}}


def _seed(mariadb) -> None:
    for db in ("bk_keystone", "bk_nova", "bk_nova_api"):
        mariadb.sql(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4")
    mariadb.sql(
        "CREATE TABLE project (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(64), extra BLOB, note TEXT) ENGINE=InnoDB;"
        "INSERT INTO project (name, extra, note) VALUES ('admin', UNHEX('00FF10'), 'ünïcødé ✓'), ('demo', NULL, 'it''s');"
        "CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, what VARCHAR(64));"
        "CREATE TRIGGER project_ai AFTER INSERT ON project FOR EACH ROW INSERT INTO audit (what) VALUES (NEW.name);"
        "CREATE PROCEDURE count_projects() SELECT COUNT(*) FROM project;"
        "CREATE VIEW project_names AS SELECT name FROM project;", database="bk_keystone")
    mariadb.sql(
        "CREATE TABLE instances (id BIGINT PRIMARY KEY AUTO_INCREMENT, uuid CHAR(36), host VARCHAR(64), payload VARCHAR(200));"
        "INSERT INTO instances (uuid, host, payload) VALUES (UUID(), 'compute1', REPEAT('x', 200));"
        + "INSERT INTO instances (uuid, host, payload) SELECT UUID(), host, payload FROM instances;" * 17,
        database="bk_nova")
    mariadb.sql("CREATE TABLE cell_mappings (id INT PRIMARY KEY, name VARCHAR(32)); INSERT INTO cell_mappings VALUES (1, 'cell1');",
                database="bk_nova_api")


@pytest.fixture(scope="module")
def seeded(mariadb):
    _seed(mariadb)
    return mariadb


@pytest.fixture
def cfg(tmp_path, seeded):
    return write_config(tmp_path / "opsctl.yaml", tmp_path / "store", seeded, COMPONENTS, components=["keystone", "nova"])


def _run_ok(cfg, db, *args):
    out = opsctl(cfg, *args, db=db)
    assert out.returncode == 0, out.stderr + out.stdout
    return out


def test_run_list_verify(cfg, seeded):
    out = _run_ok(cfg, seeded, "backup", "run")
    assert "complete" in out.stdout
    listing = json.loads(_run_ok(cfg, seeded, "backup", "list", "--format", "json").stdout)
    assert len(listing) == 1
    m = listing[0]
    names = {i["name"] for i in m["items"] if i["type"] == "mysql-dump"}
    assert names == {"bk_keystone", "bk_nova", "bk_nova_api"}
    nova = next(i for i in m["items"] if i["name"] == "bk_nova")
    assert nova["details"]["tables"]["instances"]["rows"] == 2 ** 17
    assert nova["details"]["tables"]["instances"]["stable"] is True
    assert len(nova["sha256"]) == 64 and nova["size"] > 0 and nova["compression"] == "zstd"
    assert m["tools"]["dump"] and m["duration"] > 0
    ver = _run_ok(cfg, seeded, "backup", "verify")
    assert "database bk_nova: OK" in ver.stdout and "database bk_keystone: OK" in ver.stdout


def test_dump_options_never_lock_tables(cfg, seeded):
    out = _run_ok(cfg, seeded, "backup", "run", "--dry-run")
    assert "--single-transaction" in out.stdout and "--skip-lock-tables" in out.stdout
    assert "--routines" in out.stdout and "--triggers" in out.stdout and "--events" in out.stdout
    assert "--lock-tables" not in out.stdout.replace("--skip-lock-tables", "")
    assert not (Path(cfg).parent / "store").exists() or not Store(Path(cfg).parent / "store").list()


def test_restore_database_keeps_previous(cfg, seeded):
    _run_ok(cfg, seeded, "backup", "run", "--component", "keystone")
    seeded.sql("INSERT INTO project (name) VALUES ('after-backup')", database="bk_keystone")
    refused = opsctl(cfg, "restore", "--database", "bk_keystone", db=seeded)  # no TTY, no --yes: refuses
    assert refused.returncode == 64 and "--yes" in refused.stderr
    dry = _run_ok(cfg, seeded, "restore", "--database", "bk_keystone", "--dry-run")
    assert "would load" in dry.stdout
    assert "after-backup" in seeded.sql("SELECT name FROM project", database="bk_keystone")
    out = _run_ok(cfg, seeded, "restore", "--database", "bk_keystone", "--yes")
    assert "restored" in out.stdout and "pre-restore" in out.stdout
    names = seeded.sql("SELECT name FROM project ORDER BY id", database="bk_keystone").split()
    assert names == ["admin", "demo"]
    assert seeded.sql("SELECT note FROM project WHERE name='admin'", database="bk_keystone").strip() == "ünïcødé ✓"
    assert seeded.sql("SHOW TRIGGERS", database="bk_keystone").count("project_ai") == 1
    assert "count_projects" in seeded.sql("SHOW PROCEDURE STATUS WHERE Db='bk_keystone'")
    # what was replaced is itself a complete backup in the store
    store = Store(Path(cfg).parent / "store")
    safety = [b for b in store.list() if b.manifest.kind == "pre-restore"]
    assert len(safety) == 1 and safety[0].manifest.items[0].details["tables"]["project"]["rows"] == 3


def test_corrupt_dump_is_refused(cfg, seeded):
    _run_ok(cfg, seeded, "backup", "run", "--component", "keystone")
    backup = Store(Path(cfg).parent / "store").list()[-1]
    path = backup.path / backup.manifest.items[0].path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    before = seeded.sql("CHECKSUM TABLE project", database="bk_keystone")
    out = opsctl(cfg, "restore", "--database", "bk_keystone", "--yes", db=seeded)
    assert out.returncode == 65, out.stderr
    assert "corrupt" in out.stderr and "sha256 mismatch" in out.stderr
    assert seeded.sql("CHECKSUM TABLE project", database="bk_keystone") == before
    ver = opsctl(cfg, "backup", "verify", db=seeded)
    assert ver.returncode == 65 and "CORRUPT" in ver.stdout


def test_truncated_dump_is_refused(cfg, seeded):
    _run_ok(cfg, seeded, "backup", "run", "--component", "nova")
    backup = Store(Path(cfg).parent / "store").list()[-1]
    path = backup.path / next(i.path for i in backup.manifest.items if i.name == "bk_nova")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    out = opsctl(cfg, "restore", "--database", "bk_nova", "--yes", db=seeded)
    assert out.returncode == 65 and "size" in out.stderr


def test_verify_detects_a_dump_that_differs_from_the_source(cfg, seeded, tmp_path):
    """A dump whose content no longer matches the recorded table checksums fails verify (exit 65)."""
    _run_ok(cfg, seeded, "backup", "run", "--component", "keystone")
    store = Store(Path(cfg).parent / "store")
    backup = store.list()[-1]
    item = backup.manifest.items[0]
    # re-create the stored dump with one changed row, and re-record its sha256: only the table checksum can tell
    import hashlib
    path = backup.path / item.path
    sql = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    sql = sql.replace(b"'demo'", b"'dem0'")
    path.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=sql, capture_output=True, check=True).stdout)
    manifest = json.loads((backup.path / "manifest.json").read_text())
    for i in manifest["items"]:
        if i["path"] == item.path:
            i["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
            i["size"] = path.stat().st_size
    (backup.path / "manifest.json").write_text(json.dumps(manifest))
    out = opsctl(cfg, "backup", "verify", db=seeded)
    assert out.returncode == 65, out.stdout + out.stderr
    assert "project: checksum" in out.stdout


def test_secret_never_in_argv_env_or_output(cfg, seeded):
    """While a dump runs, no process shows the password in its command line or environment."""
    proc = popen(cfg, "backup", "run", "--component", "nova", "--format", "json", db=seeded)
    seen_dump = False
    leaks = []
    me = psutil.Process(proc.pid)
    own = me.cmdline()
    while proc.poll() is None:
        try:
            for child in me.children(recursive=True):
                if child.cmdline() == own:
                    continue  # forked but not yet exec'd: still opsctl's own (operator-given) environment
                cmd = " ".join(child.cmdline())
                # `mariadb-dump --version` (the manifest's tool version) connects to nothing.
                if "mariadb-dump" in cmd and "--version" not in child.cmdline():
                    seen_dump = True
                    assert "--defaults-extra-file=/dev/fd/" in cmd
                if seeded.password in cmd or seeded.password in " ".join(f"{k}={v}" for k, v in child.environ().items()):
                    leaks.append(cmd)
        except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
            pass
        time.sleep(0.01)
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen_dump, "the dump finished before it could be observed"
    assert not leaks
    assert seeded.password not in out and seeded.password not in err
    store = Path(cfg).parent / "store"
    for f in store.rglob("manifest.json"):
        assert seeded.password not in f.read_text()


def test_lock_contention(cfg, seeded):
    store = Store(Path(cfg).parent / "store")
    with store.lock("test holder"):
        out = opsctl(cfg, "backup", "run", db=seeded)
    assert out.returncode == 75
    assert "locked" in out.stderr and "test holder" in out.stderr
    assert "Traceback" not in out.stderr
    _run_ok(cfg, seeded, "backup", "run", "--component", "keystone")


def test_two_concurrent_runs_one_wins(cfg, seeded):
    procs = [popen(cfg, "backup", "run", "--component", "nova", db=seeded) for _ in range(2)]
    codes = sorted(p.wait(120) for p in procs)
    for p in procs:
        p.communicate()
    assert codes == [0, 75]
    assert len(Store(Path(cfg).parent / "store").list()) == 1


KILL_POINT_SCRIPT = r"""
import os, signal, sys
from opsctl.cli.main import main
point = os.environ["KILL_AT"]
import opsctl.backup.store as store, opsctl.backup.fsutil as fsutil, opsctl.backup.mysql as mysql
def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)
if point == "after-first-dump":
    real = mysql.dump_database
    n = []
    def dump(*a, **k):
        if n: die()
        n.append(1)
        return real(*a, **k)
    mysql.dump_database = dump
elif point == "manifest-written":
    real_write = store.write_json_atomic
    def write(path, data):
        real_write(path, data)
        die()
    store.write_json_atomic = write
elif point == "manifest-tmp":
    real_replace = os.replace
    def replace(a, b):
        if str(b).endswith("manifest.json"):
            die()
        return real_replace(a, b)
    os.replace = replace
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("point", ["after-first-dump", "manifest-tmp", "manifest-written"])
def test_kill9_at_exact_points_is_never_listed(cfg, seeded, point):
    env = {**env_for(seeded), "KILL_AT": point}
    out = subprocess.run([sys.executable, "-c", KILL_POINT_SCRIPT, "--config", str(cfg), "backup", "run"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == -signal.SIGKILL, out.stderr
    store = Store(Path(cfg).parent / "store")
    assert store.list() == []
    listing = opsctl(cfg, "backup", "list", db=seeded)
    assert "no backups" in listing.stdout
    assert any((store.root / ".inprogress").iterdir())  # something half-written was really left behind
    _run_ok(cfg, seeded, "backup", "run", "--component", "keystone")  # next run cleans up and succeeds
    assert len(store.list()) == 1 and not any((store.root / ".inprogress").iterdir())


def test_kill9_at_random_moments(cfg, seeded):
    """SIGKILL the whole run (opsctl and its dump/compress children) at several moments of a real backup."""
    store = Store(Path(cfg).parent / "store")
    t0 = time.monotonic()
    _run_ok(cfg, seeded, "backup", "run", "--no-files")
    full = time.monotonic() - t0
    store.delete(store.list()[0])
    for fraction in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95):
        proc = subprocess.Popen([*CLI, "--config", str(cfg), "backup", "run", "--no-files"], env=env_for(seeded),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(full * fraction)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for b in store.list():  # whatever is listed is complete and intact
            from opsctl.backup.store import verify_checksums
            assert verify_checksums(b) == []
            assert {i.name for i in b.manifest.items} == {"bk_keystone", "bk_nova", "bk_nova_api"}
            store.delete(b)
    _run_ok(cfg, seeded, "backup", "run", "--no-files")
    assert len(store.list()) == 1


def test_unknown_component_and_bad_options(cfg, seeded):
    out = opsctl(cfg, "backup", "run", "--component", "nope", db=seeded)
    assert out.returncode == 64 and "unknown component" in out.stderr
    out = opsctl(cfg, "restore", "--database", "bk_keystone", "--yes", db=seeded)
    assert out.returncode == 64 and "no complete backup" in out.stderr


def test_unreachable_database_is_69_and_nothing_listed(tmp_path, seeded):
    class Down:
        port = 1
        password = "x"
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "store", Down, COMPONENTS, components=["keystone"])
    out = opsctl(cfg, "backup", "run", "--no-files", db=Down)
    assert out.returncode == 69, out.stderr
    assert Store(tmp_path / "store").list() == []


def test_remote_store_push(tmp_path, seeded):
    remote = tmp_path / "remote"
    remote.mkdir()
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "store", seeded, COMPONENTS, components=["keystone"],
                       remote=str(remote))
    _run_ok(cfg, seeded, "backup", "run")
    b = Store(tmp_path / "store").list()[0]
    pushed = remote / b.id
    assert (pushed / "manifest.json").read_text() == (b.path / "manifest.json").read_text()
    assert Store(remote).list()[0].id == b.id


def test_gzip_and_pigz_compression(tmp_path, seeded):
    for comp in ("gzip", "pigz", "none"):
        cfg = write_config(tmp_path / f"{comp}.yaml", tmp_path / f"store-{comp}", seeded, COMPONENTS,
                           components=["keystone"], compression=comp)
        _run_ok(cfg, seeded, "backup", "run")
        ver = _run_ok(cfg, seeded, "backup", "verify")
        assert "bk_keystone: OK" in ver.stdout


def _start_mariadbd(datadir: Path, sock: Path, log: Path) -> subprocess.Popen:
    from opsctl.backup.launcher import free_port

    proc = subprocess.Popen(["mariadbd", "--no-defaults", "--user=root", f"--datadir={datadir}", f"--socket={sock}",
                             f"--port={free_port()}", "--bind-address=127.0.0.1", f"--log-error={log}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not sock.exists():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:] if log.exists() else "no log"
        time.sleep(0.1)
    return proc


def _sql(sock: Path, query: str) -> list[str]:
    out = subprocess.run(["mariadb", "--no-defaults", f"--socket={sock}", "-uroot", "-N", "-e", query],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _physical_source(tmp_path: Path, server, db: str, values: list[str], databases: list[str]) -> Path:
    """A database with a table of `values` on the throwaway `server`, and a config backing it up."""
    import yaml

    conn = server.target.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (id INT PRIMARY KEY AUTO_INCREMENT, v VARCHAR(20))")
        cur.execute(f"INSERT INTO {db}.t (v) VALUES " + ", ".join(f"('{v}')" for v in values))
    conn.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"database": {"socket": server.socket, "user": "root"},
                                   "backup": {"store": str(tmp_path / "store"), "components": ["keystone"]},
                                   "components": {"keystone": {"databases": databases, "config_dirs": [], "key_dirs": []}}}))
    return cfg


def test_mariabackup_full_incremental_prepare(tmp_path):
    """Physical backups on a throwaway server we own (mariabackup reads its datadir directly)."""
    from opsctl.backup.launcher import ThrowawayMariaDB

    with ThrowawayMariaDB() as server:
        cfg = _physical_source(tmp_path, server, "bk_phys", ["one", "two"], ["bk_phys"])
        _run_ok(cfg, None, "backup", "run", "--physical", "full", "--no-files")
        conn = server.target.connect()
        with conn.cursor() as cur:
            cur.execute("INSERT INTO bk_phys.t (v) VALUES ('three')")
        _run_ok(cfg, None, "backup", "run", "--physical", "incremental", "--no-files")
        backups = Store(tmp_path / "store").list()
        inc = next(i for i in backups[1].manifest.items if i.type == "mariabackup")
        assert inc.details["mode"] == "incremental" and inc.details["base"] == backups[0].id
        assert inc.details["from_lsn"] > 0
        target = tmp_path / "prepared"
        out = _run_ok(cfg, None, "restore", backups[1].id, "--physical", str(target))
        assert "prepared" in out.stdout and (target / "ibdata1").exists() and (target / "bk_phys" / "t.ibd").exists()
        conn.close()
    # the prepared directory is a working datadir with all three rows
    sock = tmp_path / "p.sock"
    proc = _start_mariadbd(target, sock, tmp_path / "p.err")
    try:
        assert _sql(sock, "SELECT v FROM bk_phys.t ORDER BY id") == ["one", "two", "three"]
    finally:
        proc.terminate()
        proc.wait(30)


def test_physical_restore_into_a_stopped_servers_datadir(tmp_path):
    """--physical-datadir: refused while a server runs on the datadir; then the old datadir is kept aside,
    the prepared backup moved in with mariabackup --move-back, ownership kept, and the server starts on it."""
    from opsctl.backup.launcher import ThrowawayMariaDB

    with ThrowawayMariaDB() as server:
        cfg = _physical_source(tmp_path, server, "bk_dd", ["from-backup"], [])
        _run_ok(cfg, None, "backup", "run", "--physical", "full", "--no-files")

    # the node to repair: its own datadir (initialised, with other data), owned by a non-root user
    datadir = tmp_path / "node" / "mysql"
    datadir.parent.mkdir()
    subprocess.run(["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={datadir}", "--skip-test-db",
                    "--auth-root-authentication-method=normal"], check=True, capture_output=True)
    sock, log = tmp_path / "node.sock", tmp_path / "node.err"
    proc = _start_mariadbd(datadir, sock, log)
    try:
        _sql(sock, "CREATE DATABASE current_only")
        refused = opsctl(cfg, "restore", "--physical-datadir", str(datadir), "--yes")
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert "still using" in refused.stderr and "Traceback" not in refused.stderr
        assert "current_only" in _sql(sock, "SHOW DATABASES")  # nothing was touched
    finally:
        proc.terminate()
        proc.wait(60)
    os.chown(datadir, 4242, 4343)
    os.chmod(datadir, 0o750)

    dry = _run_ok(cfg, None, "restore", "--physical-datadir", str(datadir), "--dry-run")
    assert "would move" in dry.stdout and "refused now" not in dry.stdout
    out = opsctl(cfg, "restore", "--physical-datadir", str(datadir), input="n\n")
    assert out.returncode == 64 and (datadir / "current_only").is_dir()  # no terminal, no --yes: nothing changed

    out = _run_ok(cfg, None, "restore", "--physical-datadir", str(datadir), "--yes")
    assert "previous datadir moved to" in out.stdout
    kept = [p for p in datadir.parent.iterdir() if p.name.startswith("mysql.pre-restore-")]
    assert len(kept) == 1 and (kept[0] / "current_only").is_dir()
    assert not [p for p in datadir.parent.iterdir() if "opsctl-prepare" in p.name]  # staging cleaned up
    st = os.stat(datadir / "bk_dd" / "t.ibd")
    assert (st.st_uid, st.st_gid) == (4242, 4343) and (os.stat(datadir).st_mode & 0o777) == 0o750
    proc = _start_mariadbd(datadir, sock, tmp_path / "node2.err")
    try:
        assert _sql(sock, "SELECT v FROM bk_dd.t") == ["from-backup"]
        assert "current_only" not in _sql(sock, "SHOW DATABASES")
    finally:
        proc.terminate()
        proc.wait(60)
