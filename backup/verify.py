"""`backup verify`: checksums of every stored file, then each dump loaded into a throwaway MariaDB and
its tables compared (row counts, CHECKSUM TABLE) with the values recorded at dump time."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsctl.backup import mysql
from opsctl.backup.compression import for_file
from opsctl.backup.launcher import ThrowawayMariaDB
from opsctl.backup.progress import Reporter
from opsctl.backup.store import Backup, verify_checksums


@dataclass
class DatabaseCheck:
    database: str
    tables: int
    mismatches: list[str]
    not_comparable: list[str]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.error is None


@dataclass
class VerifyReport:
    backup_id: str
    checksum_problems: list[str] = field(default_factory=list)
    databases: list[DatabaseCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.checksum_problems and all(d.ok for d in self.databases)


def verify(backup: Backup, databases: list[str] | None = None, load: bool = True, reporter: Reporter | None = None,
           tmpdir: str | None = None) -> VerifyReport:
    reporter = reporter or Reporter(False)
    report = VerifyReport(backup.id)
    with reporter.session():
        with reporter.task("verify checksums", backup.manifest.size) as advance:
            report.checksum_problems = verify_checksums(backup, progress=advance)
        dumps = [i for i in backup.manifest.items if i.type == "mysql-dump" and (not databases or i.name in databases)]
        bad_files = {p.split(":")[0] for p in report.checksum_problems}
        if not load or not dumps:
            return report
        with ThrowawayMariaDB(tmpdir) as server:
            for item in dumps:
                if item.path in bad_files:
                    report.databases.append(DatabaseCheck(item.name, 0, [], [], "not loaded: file corrupt"))
                    continue
                report.databases.append(_check_dump(backup, item, server, reporter))
    return report


def _check_dump(backup: Backup, item, server: ThrowawayMariaDB, reporter: Reporter) -> DatabaseCheck:
    recorded = item.details.get("tables") or {}
    try:
        with reporter.task(f"load {item.name}", item.size) as advance:
            mysql.load_dump(server.target, backup.path / item.path, for_file(item.compression), advance)
        conn = server.target.connect()
        try:
            actual = mysql.table_stats(conn, item.name, snapshot=False)
        finally:
            conn.close()
    except Exception as exc:  # noqa: BLE001 - one bad dump is reported, the others are still checked
        return DatabaseCheck(item.name, 0, [], [], f"{type(exc).__name__}: {exc}")
    if not recorded:
        return DatabaseCheck(item.name, len(actual), [], [], None if actual or item.size else "empty")
    bad, skipped = mysql.compare_stats(recorded, actual)
    return DatabaseCheck(item.name, len(actual), bad, skipped)
