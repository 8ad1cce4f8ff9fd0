"""Benchmark: opsctl backup of a >= 1 GB database vs the plain `mariadb-dump --single-transaction | gzip`
pipeline, measured in the same run on the same throwaway MariaDB; restore times beside them.

    python3 bench/bench_backup.py [--gb 1.0] [--keep]

Prints seconds and ratios (opsctl / baseline; the target is <= 1.15).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsctl import config as configmod
from opsctl.backup.launcher import ThrowawayMariaDB
from opsctl.backup.restore import RestoreRequest, restore
from opsctl.backup.run import BackupRequest, run_backup
from opsctl.components import Component

DB = "bench_nova"


def sql(server: ThrowawayMariaDB, statement: str) -> str:
    return subprocess.run(["mariadb", "--no-defaults", f"--socket={server.socket}", "-uroot", "-N", "-B", "-e", statement],
                          check=True, capture_output=True, text=True).stdout


def generate(server: ThrowawayMariaDB, gigabytes: float) -> tuple[int, int]:
    """A table of ~650-byte rows (uuid, hashes: about as compressible as real rows), doubled until big enough."""
    sql(server, f"CREATE DATABASE {DB}; CREATE TABLE {DB}.instances (id BIGINT PRIMARY KEY AUTO_INCREMENT, uuid CHAR(36), "
                "host VARCHAR(64), state INT, a VARCHAR(128), b VARCHAR(128), c VARCHAR(128), d VARCHAR(128), "
                "created DATETIME) ENGINE=InnoDB;"
                f"CREATE TABLE {DB}.small (id INT PRIMARY KEY, name VARCHAR(32)); INSERT INTO {DB}.small VALUES (1,'cell0'),(2,'cell1');")
    sql(server, f"INSERT INTO {DB}.instances (uuid, host, state, a, b, c, d, created) VALUES "
                "(UUID(), 'compute-1', 1, SHA2('a',512), SHA2('b',512), SHA2('c',512), SHA2('d',512), NOW())")
    rows = 1
    target_rows = int(gigabytes * (1 << 30) / 600) + 1
    while rows < target_rows:
        take = min(rows, target_rows - rows)
        sql(server, f"INSERT INTO {DB}.instances (uuid, host, state, a, b, c, d, created) SELECT UUID(), "
                    "CONCAT('compute-', id % 97), id % 5, SHA2(CONCAT(id, a), 512), SHA2(CONCAT(id, b), 512), "
                    f"SHA2(CONCAT(id, c), 512), SHA2(CONCAT(id, d), 512), created FROM {DB}.instances LIMIT {take}")
        rows += take
    sql(server, f"ANALYZE TABLE {DB}.instances")
    size = int(sql(server, f"SELECT SUM(data_length) FROM information_schema.tables WHERE table_schema='{DB}'").strip())
    return rows, size


def timed(fn):
    t0 = time.monotonic()
    out = fn()
    return time.monotonic() - t0, out


def baseline_dump(server: ThrowawayMariaDB, dest: Path) -> None:
    with open(dest, "wb") as out:
        dump = subprocess.Popen(["mariadb-dump", "--no-defaults", f"--socket={server.socket}", "-uroot", "--single-transaction",
                                 "--databases", DB], stdout=subprocess.PIPE)
        gz = subprocess.run(["gzip"], stdin=dump.stdout, stdout=out, check=True)
        dump.stdout.close()
        assert dump.wait() == 0 and gz.returncode == 0
        out.flush()
        os.fsync(out.fileno())


def baseline_restore(server: ThrowawayMariaDB, src: Path) -> None:
    sql(server, f"DROP DATABASE {DB}")
    gz = subprocess.Popen(["gzip", "-dc", str(src)], stdout=subprocess.PIPE)
    subprocess.run(["mariadb", "--no-defaults", f"--socket={server.socket}", "-uroot"], stdin=gz.stdout, check=True)
    gz.stdout.close()
    assert gz.wait() == 0


def opsctl_config(server: ThrowawayMariaDB, store: Path, compression: str, checksums: bool = True):
    return configmod.parse({"database": {"socket": server.socket, "user": "root"},
                            "backup": {"store": str(store), "compression": compression, "table_checksums": checksums}})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=1.0, help="approximate InnoDB data size to generate")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="opsctl-bench-"))
    catalog = {"nova": Component("nova", (), databases=(DB,))}
    server = ThrowawayMariaDB(str(work), buffer_pool="2G").start()
    try:
        t, (rows, size) = timed(lambda: generate(server, args.gb))
        print(f"generated {rows} rows, InnoDB data {size / (1 << 30):.2f} GiB in {t:.1f}s", flush=True)
        base_first, _ = timed(lambda: baseline_dump(server, work / "baseline.sql.gz"))
        base_size = (work / "baseline.sql.gz").stat().st_size
        raw = int(subprocess.run(f"gzip -dc {work / 'baseline.sql.gz'} | wc -c", shell=True, capture_output=True, text=True).stdout)
        print(f"dump text {raw / (1 << 30):.2f} GiB", flush=True)
        results = []
        for label, comp, checks in (("opsctl zstd (default)", "zstd", True), ("opsctl pigz", "pigz", True),
                                    ("opsctl gzip", "gzip", True), ("opsctl gzip, no checksums", "gzip", False)):
            store = work / f"store-{comp}-{checks}"
            cfg = opsctl_config(server, store, comp, checks)
            t, out = timed(lambda: run_backup(cfg, catalog, BackupRequest(components=["nova"], files=False, physical="none")))
            results.append((label, t, out.backup.manifest.size, cfg, out.backup.id))
        # the baseline again, last: the first run can pay for InnoDB purge after the bulk load; take the faster
        base_last, _ = timed(lambda: baseline_dump(server, work / "baseline.sql.gz"))
        base_t = min(base_first, base_last)
        print(f"baseline runs: {base_first:.1f}s first, {base_last:.1f}s last; using the faster", flush=True)
        print()
        print(f"{'backup':<28}{'seconds':>9}{'size MiB':>10}{'ratio':>8}")
        print(f"{'mariadb-dump | gzip':<28}{base_t:9.1f}{base_size / (1 << 20):10.0f}{1.0:8.2f}")
        for label, t, sz, _, _ in results:
            print(f"{label:<28}{t:9.1f}{sz / (1 << 20):10.0f}{t / base_t:8.2f}")
        print()
        rbase_t, _ = timed(lambda: baseline_restore(server, work / "baseline.sql.gz"))
        label, _, _, cfg, bid = results[0]
        rops_t, _ = timed(lambda: restore(cfg, RestoreRequest(bid, database=DB, yes=True, keep_previous=False), lambda q: True))
        count = sql(server, f"SELECT COUNT(*) FROM {DB}.instances").strip()
        print(f"{'restore':<28}{'seconds':>9}")
        print(f"{'gzip -dc | mariadb':<28}{rbase_t:9.1f}")
        print(f"{'opsctl restore (zstd)':<28}{rops_t:9.1f}   (includes sha256 check; {count} rows back)")
        verdict = results[0][1] / base_t
        print(f"\nopsctl default backup / baseline = {verdict:.2f} (target <= 1.15): {'PASS' if verdict <= 1.15 else 'FAIL'}")
        return 0 if verdict <= 1.15 else 1
    finally:
        server.cleanup()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
