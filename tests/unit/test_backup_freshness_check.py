"""backup.freshness on a real store layout written by the backup package (manifests on disk)."""

from datetime import datetime, timedelta, timezone

from opsctl.backup.store import Item, Store
from opsctl.checks.backup import freshness
from opsctl.components import CATALOG
from opsctl.config import parse
from opsctl.inventory import HostSpec, Inventory
from opsctl.results import Status
from opsctl.runner import Selection, run_checks


def _complete_backup(store: Store, age_hours: float, items: list[tuple[str, str]], kind: str = "scheduled") -> None:
    """A backup as Store.commit leaves it, created `age_hours` ago."""
    now = datetime.now(timezone.utc) - timedelta(hours=age_hours)
    store.ensure()
    manifest, work = store.begin(kind, now=now)
    for component, name in items:
        (work / f"{component}-{name}.sql.zst").write_bytes(b"x")
        manifest.items.append(Item("mysql-dump", component, name, f"{component}-{name}.sql.zst", "zstd", size=1))
    store.commit(manifest, work)


def _run(config: dict):
    inv = Inventory((HostSpec("local", frozenset()),), "t")
    return run_checks([freshness], inv, parse(config), CATALOG, Selection()).results


def test_fresh_stale_and_missing_targets(tmp_path):
    store = Store(tmp_path / "store")
    _complete_backup(store, 40, [("nova", "nova"), ("keystone", "keystone")])
    _complete_backup(store, 2, [("keystone", "keystone")])
    results = {r.summary.split(":")[0]: r for r in _run({"backup": {"store": str(store.root)}})}
    assert results["keystone/keystone"].status == Status.OK
    assert results["nova/nova"].status == Status.CRITICAL and results["nova/nova"].runbook == "backup-too-old"
    assert 39 < results["nova/nova"].metrics["age_hours:nova/nova"] < 41


def test_interrupted_and_pre_restore_backups_do_not_count(tmp_path):
    store = Store(tmp_path / "store")
    _complete_backup(store, 1, [("nova", "nova")], kind="pre-restore")
    store.begin("scheduled")  # interrupted: never committed
    [r] = _run({"backup": {"store": str(store.root)}})
    assert r.status == Status.CRITICAL and r.summary.startswith("no complete backup in")


def test_no_backup_configured_is_not_a_failure(monkeypatch):
    import opsctl.checks.backup as mod

    # no `backup:` section and no store directory at the default path: nothing to check
    monkeypatch.setattr(mod.os.path, "isdir", lambda path: False)
    assert _run({"checks": {"timeout": 5}}) == []


def test_file_sets_from_other_hosts_age_per_host(tmp_path):
    """A controller whose files could not be read for two days is CRITICAL on its own."""
    store = Store(tmp_path / "store")

    def files_backup(age_hours, hosts):
        now = datetime.now(timezone.utc) - timedelta(hours=age_hours)
        store.ensure()
        manifest, work = store.begin("scheduled", now=now)
        for h in hosts:
            (work / f"{h}.tar").write_bytes(b"x")
            manifest.items.append(Item("files", "keystone", "keys", f"{h}.tar", "none", size=1,
                                       source={"host": h, "remote": True}))
        store.commit(manifest, work)

    files_backup(48, ["ctl1", "ctl2"])
    files_backup(1, ["ctl2"])
    results = {r.summary.split(":")[0]: r.status for r in _run({"backup": {"store": str(store.root)}})}
    assert results == {"keystone/keys@ctl1": Status.CRITICAL, "keystone/keys@ctl2": Status.OK}
