"""Restore a database, a component or files from a stored backup, keeping what it replaces.

Checksums are verified first (a mismatch refuses, exit 65). Before a database is replaced, it is dumped
into the store as a `pre-restore` backup; files that would be overwritten are moved aside to
`<path>.pre-restore-<time>`. Physical backups are prepared into a directory (never over a live datadir).
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from opsctl.backup import files as filesmod
from opsctl.backup import mysql, physical
from opsctl.backup.compression import for_file
from opsctl.backup.progress import Reporter
from opsctl.backup.store import Backup, Item, Store, require_intact
from opsctl.errors import OpsctlError, UsageError


@dataclass
class RestoreRequest:
    backup_id: str | None = None
    component: str | None = None
    database: str | None = None
    files: str | None = None  # a file-set name (config, keys, rings...) or "all"
    physical_target: str | None = None  # directory to prepare a mariabackup into
    physical_datadir: str | None = None  # or: prepare, then replace this (stopped) server's datadir
    root: str = "/"  # where file sets are extracted (the catalog paths are relative to it)
    host: str | None = None  # only file sets archived on this host (each goes back to the host it came from)
    dry_run: bool = False
    yes: bool = False
    keep_previous: bool = True


@dataclass
class RestoreOutcome:
    actions: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def select_items(backup: Backup, req: RestoreRequest) -> list[Item]:
    items = backup.manifest.items
    if req.physical_target or req.physical_datadir:
        chosen = [i for i in items if i.type == "mariabackup"]
        if not chosen:
            raise UsageError(f"backup {backup.id} has no physical (mariabackup) part",
                             hint="take one with 'opsctl backup run --physical full'")
        return chosen
    if req.database:
        chosen = [i for i in items if i.type == "mysql-dump" and i.name == req.database]
        if not chosen:
            raise UsageError(f"backup {backup.id} has no dump of database {req.database}",
                             hint=f"it has: {', '.join(i.name for i in items if i.type == 'mysql-dump') or 'no dumps'}")
        return chosen
    chosen = [i for i in items if i.type != "mariabackup"]
    if req.component:
        chosen = [i for i in chosen if i.component == req.component]
    if req.files:
        chosen = [i for i in chosen if i.type == "files" and (req.files == "all" or i.name == req.files)]
    elif req.component is None:
        raise UsageError("say what to restore: --database NAME, --component NAME, --files SET or --physical DIR")
    if req.host:
        chosen = [i for i in chosen if i.type != "files" or _origin(i) == req.host]
    if not chosen:
        raise UsageError(f"backup {backup.id} holds nothing matching that selection",
                         hint="see 'opsctl backup list --verbose'")
    return chosen


def _origin(item: Item) -> str | None:
    return item.source.get("host")


class _Hosts:
    """Connections to the hosts file sets came from (remote items go back where they were archived)."""

    def __init__(self, inventory):
        self.inventory, self.open = inventory, {}  # an Inventory, or a callable that builds it on first use

    def for_item(self, item: Item):
        if not item.source.get("remote"):
            return None
        name = item.source["host"]
        if name not in self.open:
            if callable(self.inventory):
                self.inventory = self.inventory()
            if self.inventory is None or name not in {h.name for h in self.inventory.hosts}:
                raise UsageError(f"{item.component} {item.name} was archived on host {name}, which is not in the inventory",
                                 hint="add the host to the inventory (or pass --inventory) to restore it there")
            self.open[name] = self.inventory.get(name).connect()
        return self.open[name]

    def close(self) -> None:
        for host in self.open.values():
            host.close()


def restore(config, req: RestoreRequest, confirm: Callable[[str], bool], reporter: Reporter | None = None,
            inventory=None) -> RestoreOutcome:
    """Restore the selected items; `confirm(question)` is asked before anything is overwritten (unless yes)."""
    hosts = _Hosts(inventory)
    try:
        return _restore(config, req, confirm, reporter or Reporter(False), hosts)
    finally:
        hosts.close()


def _restore(config, req: RestoreRequest, confirm: Callable[[str], bool], reporter: Reporter, hosts: _Hosts) -> RestoreOutcome:
    store = Store(config.backup.store)
    backup = store.get(req.backup_id)
    items = select_items(backup, req)
    outcome = RestoreOutcome()
    lock = nullcontext() if req.dry_run else store.lock("restore")
    with lock, reporter.session():
        with reporter.task("verify checksums", sum(i.size for i in items)) as advance:
            require_intact(backup, items, advance)
        outcome.actions.append(f"checksums of {len(items)} file(s) of backup {backup.id} verified")
        if req.physical_target or req.physical_datadir:
            return _restore_physical(store, backup, req, outcome, confirm)
        target = mysql.target_from_config(config.database)
        dumps = [i for i in items if i.type == "mysql-dump"]
        file_items = [i for i in items if i.type == "files"]
        existing = _existing_databases(target, dumps) if dumps else []
        overwrites = [f"database {d}" for d in existing] + _existing_paths(file_items, req.root, hosts)
        if req.dry_run:
            outcome.actions += _describe(backup, dumps, file_items, existing, req, hosts)
            return outcome
        if overwrites and not req.yes and not confirm(f"overwrite {', '.join(overwrites)}?"):
            raise UsageError("restore cancelled: nothing was changed", hint="pass --yes to restore without asking")
        safety = None
        if existing and req.keep_previous:
            safety = _safety_dump(config, existing)
            outcome.kept.append(f"previous contents of {', '.join(existing)} saved as backup {safety} (kind pre-restore)")
        for item in dumps:
            try:
                with reporter.task(f"restore {item.name}", item.size) as advance:
                    mysql.drop_database(target, item.name)
                    outcome.warnings += mysql.load_dump(target, backup.path / item.path, for_file(item.compression), advance)
            except OpsctlError as exc:
                kept = f"; its previous contents are in backup {safety}" if safety else ""
                raise OpsctlError(f"restore of database {item.name} failed: {exc.message}",
                                  hint=f"database {item.name} may be partly restored{kept}", exit_code=exc.exit_code) from None
            outcome.actions.append(f"database {item.name} restored from {backup.id}")
        for item in file_items:
            top = item.details.get("top") or item.source.get("paths", [])
            host = hosts.for_item(item)
            where = f" on {host.name}" if host is not None else ""
            if req.keep_previous:
                moved = filesmod.move_aside(top, req.root) if host is None else filesmod.move_aside_on(host, top, req.root)
                for frm, to in moved:
                    outcome.kept.append(f"{frm} moved to {to}")
            with reporter.task(f"extract {item.component} {item.name}{where}", item.size) as advance:
                src, codec = backup.path / item.path, for_file(item.compression)
                outcome.warnings += (filesmod.extract(src, codec, req.root, advance) if host is None
                                     else filesmod.extract_on(host, src, codec, req.root, advance))
            outcome.actions.append(f"{item.component} {item.name} files restored under {req.root}{where}")
    return outcome


def _existing_databases(target: mysql.MySQLTarget, dumps: list[Item]) -> list[str]:
    present = set(mysql.list_databases(target))
    return [i.name for i in dumps if i.name in present]


def _existing_in(item: Item, root: str, hosts: _Hosts) -> list[str]:
    """The item's top-level paths that exist now where it would be extracted (host:path when remote)."""
    tops = item.details.get("top") or []
    host = hosts.for_item(item)
    if host is not None:
        return [f"{host.name}:{p}" for p in filesmod.existing_on(host, tops, root)]
    return [str(Path(root) / rel) for rel in tops if (Path(root) / rel).exists() or (Path(root) / rel).is_symlink()]


def _existing_paths(items: list[Item], root: str, hosts: _Hosts) -> list[str]:
    return [p for item in items for p in _existing_in(item, root, hosts)]


def _describe(backup: Backup, dumps, file_items, existing, req: RestoreRequest, hosts: _Hosts) -> list[str]:
    lines = []
    for i in dumps:
        if i.name in existing:
            lines.append(f"would dump the current database {i.name} into a pre-restore backup, then drop it")
        lines.append(f"would load {backup.path / i.path} into database {i.name}")
    for i in file_items:
        for full in _existing_in(i, req.root, hosts):
            lines.append(f"would move {full} aside to {full}.pre-restore-<time>")
        host = hosts.for_item(i)
        lines.append(f"would extract {backup.path / i.path} under {req.root}" + (f" on {host.name} over SSH" if host else ""))
    return lines


def _safety_dump(config, databases: list[str]) -> str:
    """Dump the databases about to be replaced into the store (kind pre-restore); its id."""
    from opsctl.backup.run import BackupRequest, run_backup
    from opsctl.components import Component

    catalog = {"pre-restore": Component("pre-restore", (), databases=tuple(databases))}
    out = run_backup(config, catalog, BackupRequest(components=["pre-restore"], files=False, physical="none",
                                                    kind="pre-restore", under_lock=True))
    return out.backup.id


def _restore_physical(store: Store, backup: Backup, req: RestoreRequest, outcome: RestoreOutcome,
                      confirm: Callable[[str], bool]) -> RestoreOutcome:
    from datetime import datetime, timezone

    from opsctl.backup.run import physical_chain

    chain = physical_chain(store, backup)
    for b, item in chain[:-1]:
        require_intact(b, [item])
    steps = [f"{b.id} ({item.details.get('mode')})" for b, item in chain]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    datadir = Path(req.physical_datadir) if req.physical_datadir else None
    target = Path(req.physical_target) if req.physical_target else datadir.with_name(f".{datadir.name}.opsctl-prepare-{stamp}")
    if req.dry_run:
        outcome.actions.append(f"would extract and prepare {' + '.join(steps)} into {target}")
        if datadir is not None:
            why = physical.server_using(datadir)
            outcome.actions.append(f"would move {datadir} aside to {datadir}.pre-restore-<time> and move the prepared "
                                   "files into it (mariabackup --move-back), owned like the old one"
                                   + (f"; refused now: {why}" if why else ""))
        return outcome
    if datadir is not None:
        physical.require_unused(datadir)  # before the long prepare, and again just before replacing
        if not req.yes and not confirm(f"replace the datadir {datadir} (the current one is kept)?"):
            raise UsageError("restore cancelled: nothing was changed", hint="pass --yes to restore without asking")
    try:
        physical.prepare([(b.path / i.path, for_file(i.compression)) for b, i in chain], target)
        outcome.actions.append(f"prepared {' + '.join(steps)} into {target}")
        if datadir is None:
            outcome.actions.append(f"to use it: stop MariaDB, move the datadir aside, then "
                                   f"'mariabackup --copy-back --target-dir={target}' and chown -R mysql: the datadir, "
                                   "or let opsctl do it: --physical-datadir DATADIR")
            return outcome
        kept = physical.restore_into_datadir(target, datadir, stamp)
    except BaseException:
        if datadir is not None:
            shutil.rmtree(target, ignore_errors=True)
        raise
    outcome.kept.append(f"previous datadir moved to {kept}")
    outcome.actions.append(f"{datadir} now holds {' + '.join(steps)}; start MariaDB (on a Galera node it rejoins "
                           "with a state transfer, or bootstrap it if it is the first)")
    return outcome
