"""One backup run: pick the database node, dump each component's databases, archive its files,
optionally a mariabackup, write the manifest and commit atomically; then push to the remote store."""

from __future__ import annotations

import logging
import socket
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from opsctl.backup import files as filesmod
from opsctl.backup import mysql, physical, remote
from opsctl.backup.compression import codec as make_codec
from opsctl.backup.plugins import Targets, targets_for
from opsctl.backup.proc import PipelineError, describe, tool_version
from opsctl.backup.progress import Reporter
from opsctl.backup.store import Backup, Item, Store
from opsctl.components import Component
from opsctl.errors import UnavailableError, UsageError
from opsctl.hosts import CommandTimeout, HostError
from opsctl.inventory import HostSpec, Inventory

log = logging.getLogger(__name__)


@dataclass
class BackupRequest:
    components: list[str] = field(default_factory=list)  # empty: backup.components from config, else all
    databases: bool = True
    files: bool = True
    physical: str | None = None  # none | full | incremental (None: from config)
    kind: str = "manual"
    dry_run: bool = False
    root: str = "/"  # file-system root the catalog paths are read under (tests, chroots, containers)
    only_databases: list[str] = field(default_factory=list)  # restrict to these database names
    under_lock: bool = False  # the caller (restore) already holds the store lock
    hosts: list[str] = field(default_factory=list)  # archive file sets on these inventory hosts (default: by role)


@dataclass
class RunOutcome:
    backup: Backup | None
    plan: list[str]
    warnings: list[str]
    failed: list[str] = field(default_factory=list)  # parts that could not be backed up (e.g. a host unreachable)


@dataclass
class FileSource:
    """Where one component's file sets are archived from: this machine (spec None or local) or a host."""

    spec: HostSpec | None
    targets: Targets

    @property
    def remote(self) -> bool:
        return self.spec is not None and not self.spec.is_local

    @property
    def label(self) -> str:
        return self.spec.name if self.spec is not None else "this host"


def file_sources(targets: list[Targets], catalog: dict[str, Component], inventory: Inventory | None,
                 req: BackupRequest) -> tuple[list[FileSource], list[str]]:
    """Which host each component's files come from.

    --host: those hosts, every selected component. A configured inventory: every host carrying one of the
    component's roles (kolla/OSA style: keystone's keys from each controller). Otherwise this machine."""
    if req.hosts:
        if inventory is None:
            raise UsageError("--host needs an inventory", hint="set inventory: in the config or pass --inventory")
        specs = inventory.select(names=req.hosts)
        return [FileSource(spec, t) for spec in specs for t in targets if t.filesets], []
    if inventory is None or inventory.detected:
        return [FileSource(None, t) for t in targets if t.filesets], []
    out, notes = [], []
    for t in targets:
        if not t.filesets:
            continue
        comp = catalog.get(t.component)
        roles = set(comp.roles) if comp is not None else set()
        specs = [h for h in inventory.hosts if roles & h.roles] if roles else []
        if not specs:
            notes.append(f"{t.component}: no inventory host has role {' or '.join(sorted(roles)) or '(none)'}; "
                         "its files were not backed up (use --host)")
        out.extend(FileSource(spec, t) for spec in specs)
    return out, notes


def select_components(catalog: dict[str, Component], config, names: list[str]) -> list[Component]:
    wanted = names or list(config.backup.components) or list(catalog)
    unknown = [n for n in wanted if n not in catalog]
    if unknown:
        raise UsageError(f"unknown component(s): {', '.join(unknown)}", hint=f"components are {', '.join(catalog)}")
    return [catalog[n] for n in wanted]


def parse_node(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return (host, int(port)) if port else (text, default_port)


def pick_target(config) -> tuple[mysql.MySQLTarget, mysql.GaleraState, list[str]]:
    """The node to dump from: with several Galera nodes configured, a Synced one that is not the writer."""
    writer = mysql.target_from_config(config.database)
    nodes = [writer]
    for text in config.backup.database_nodes:
        host, port = parse_node(text, config.database.port)
        t = mysql.target_from_config(config.database, host, port)
        if t.label != writer.label:
            nodes.append(t)
    if len(nodes) == 1:
        return writer, mysql.probe(writer), []
    probed = []
    notes = []
    for t in nodes:
        try:
            probed.append((t, mysql.probe(t)))
        except Exception as exc:  # noqa: BLE001 - an unreachable node is just not chosen
            probed.append((t, exc))
            notes.append(f"database node {t.label} not usable: {exc}")
    target, state = mysql.choose_node(probed, writer)
    return target, state, notes


def tool_versions(c) -> dict[str, str]:
    tools = {"dump": tool_version([mysql.dump_tool(), "--version"]), "tar": tool_version(["tar", "--version"])}
    if c.tool:
        tools[c.tool] = tool_version([c.tool, "--version"])
    return tools


def run_backup(config, catalog: dict[str, Component], req: BackupRequest, reporter: Reporter | None = None,
               inventory: Inventory | None = None) -> RunOutcome:
    reporter = reporter or Reporter(False)
    comps = select_components(catalog, config, req.components)
    targets, plugin_errors = targets_for(comps, config)
    sources, source_notes = file_sources(targets, catalog, inventory, req) if req.files else ([], [])
    plugin_errors = plugin_errors + source_notes
    codec = make_codec(config.backup.compression, config.backup.compression_level, check=not req.dry_run)
    phys = req.physical if req.physical is not None else config.backup.physical
    store = Store(config.backup.store)
    if req.dry_run:
        return RunOutcome(None, plan(config, targets, req, codec, phys, sources), plugin_errors)
    with nullcontext() if req.under_lock else store.lock("backup run"):
        manifest, work = store.begin(req.kind)
        try:
            t0 = time.monotonic()
            manifest.components = [c.name for c in comps]
            manifest.warnings.extend(plugin_errors)
            manifest.tools = tool_versions(codec)
            failed: list[str] = []
            with reporter.session():
                if req.databases and any(t.databases for t in targets):
                    _dump_databases(config, targets, req, codec, work, manifest, reporter)
                if req.files:
                    failed = _archive_files(sources, req, codec, work, manifest, reporter)
                if phys in ("full", "incremental"):
                    _physical(config, store, phys, codec, work, manifest, reporter)
            if not manifest.items and failed:
                raise UnavailableError(f"nothing backed up: {'; '.join(failed)}")
            if not manifest.items:
                raise UsageError("nothing to back up: no database or path of the selected components exists here",
                                 hint="check backup.components and the catalog paths (components: overrides)")
            manifest.duration = round(time.monotonic() - t0, 3)
            manifest.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
            backup = store.commit(manifest, work)
        except BaseException:
            store.abandon(work)
            raise
    warnings = list(manifest.warnings)
    if config.backup.remote:
        remote.push(backup, config.backup.remote, config.backup.remote_ssh)
    return RunOutcome(backup, [], warnings, failed)


def plan(config, targets: list[Targets], req: BackupRequest, codec, phys: str, sources: list[FileSource]) -> list[str]:
    """What a run would do (dry-run), without connecting, locking or writing anything."""
    lines = []
    target = mysql.target_from_config(config.database)
    for t in targets:
        if req.databases:
            for db in t.databases:
                if req.only_databases and db not in req.only_databases:
                    continue
                lines.append(f"{t.component}: {describe(mysql.dump_stages(target, db, codec))} > mysql/{db}.sql{codec.suffix}")
    for src in sources:
        t = src.targets
        for fs in t.filesets:
            if src.remote:  # dry-run connects to nothing: the patterns as configured
                lines.append(f"{t.component}: on {src.label} over SSH: tar {' '.join(fs.paths)} > "
                             f"{_files_rel(src, t, fs, codec)}")
                continue
            found, missing = filesmod.expand(fs.paths, req.root)
            what = " ".join(found) if found else "(nothing present)"
            lines.append(f"{t.component}: tar {what} > {_files_rel(src, t, fs, codec)}")
    if phys in ("full", "incremental"):
        lines.append(f"mariabackup --backup --stream=mbstream ({phys}) > physical/mariabackup-{phys}.mbstream{codec.suffix}")
    lines.append(f"store: {config.backup.store}" + (f", then rsync to {config.backup.remote}" if config.backup.remote else ""))
    return lines


def _dump_databases(config, targets, req, codec, work: Path, manifest, reporter) -> None:
    target, state, notes = pick_target(config)
    manifest.warnings.extend(notes)
    present = set(mysql.list_databases(target))
    (work / "mysql").mkdir()
    for t in targets:
        for db in t.databases:
            if req.only_databases and db not in req.only_databases:
                continue
            if db not in present:
                manifest.warnings.append(f"{t.component}: database {db} not found on {target.label}, skipped")
                continue
            rel = f"mysql/{db}.sql{codec.suffix}"
            with reporter.task(f"dump {db}") as advance:
                out = mysql.dump_database(target, db, codec, work / rel, config.backup.table_checksums, advance)
            manifest.warnings.extend(out.warnings)
            manifest.items.append(Item(
                "mysql-dump", t.component, db, rel, codec.name, out.result.size, out.result.sha256, round(out.duration, 3),
                source={"server": target.label, "galera_before": out.galera_before.to_dict(),
                        "galera_after": out.galera_after.to_dict()},
                details={"tables": out.tables, "options": mysql.DUMP_OPTIONS}))


def _files_rel(src: FileSource, t: Targets, fs, codec) -> str:
    host_dir = f"{src.spec.name}/" if src.remote else ""
    return f"files/{host_dir}{t.component}-{fs.name}.tar{codec.suffix}"


def _archive_files(sources: list[FileSource], req, codec, work: Path, manifest, reporter) -> list[str]:
    """Archive every file set; a host that cannot be reached or read is reported (returned) and the others
    go on, so one dead controller does not cost the backup of the rest."""
    (work / "files").mkdir()
    hosts: dict[str, object] = {}
    failed: dict[str, str] = {}
    try:
        for src in sources:
            name = src.spec.name if src.remote else None
            if name in failed:
                continue
            if name is not None and name not in hosts:
                hosts[name] = src.spec.connect()
            try:
                for fs in src.targets.filesets:
                    _archive_set(src, hosts.get(name), fs, req, codec, work, manifest, reporter)
            except (HostError, CommandTimeout, PipelineError) as exc:
                if name is None:  # this machine's own files: the whole run fails, as before
                    raise
                failed[name] = exc.message
    finally:
        for host in hosts.values():
            host.close()
    problems = [f"files of host {name} not backed up: {why}" for name, why in failed.items()]
    manifest.warnings.extend(problems)
    return problems


def _archive_set(src: FileSource, host, fs, req, codec, work: Path, manifest, reporter) -> None:
    """One file set from this machine (host None) or another host into the backup, listed in the manifest."""
    t = src.targets
    rel = _files_rel(src, t, fs, codec)
    dest = work / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    with reporter.task(f"tar {t.component} {fs.name}" + (f" on {src.label}" if host is not None else "")) as advance:
        if host is None:
            out = filesmod.archive(fs, dest, codec, req.root, advance)
        else:
            try:
                out = filesmod.archive_on(host, fs, dest, codec, req.root, advance)
            except BaseException:
                dest.unlink(missing_ok=True)  # no partial archive of a host that failed
                if not any(dest.parent.iterdir()):
                    dest.parent.rmdir()
                raise
    if out.result is None:
        if not fs.optional:
            manifest.warnings.append(f"{t.component}: {fs.name}: none of {', '.join(fs.paths)} exists"
                                     f"{' on ' + src.label if host is not None else ''}, skipped")
        return
    manifest.warnings.extend(f"{t.component}: {w}" for w in out.warnings)
    manifest.items.append(Item(
        "files", t.component, fs.name, rel, codec.name, out.result.size, out.result.sha256, round(out.duration, 3),
        source={"host": src.spec.name if src.remote else socket.gethostname(), "remote": src.remote,
                "root": req.root, "paths": out.included, "missing": out.missing},
        details={"excludes": list(fs.excludes), "top": filesmod.top_paths(out.included)}))


def _physical(config, store: Store, mode: str, codec, work: Path, manifest, reporter) -> None:
    target = mysql.target_from_config(config.database)
    datadir = physical.server_datadir(target)
    base_lsn, base_id = None, None
    if mode == "incremental":
        base = latest_physical(store)
        if base is None:
            manifest.warnings.append("no earlier physical backup: taking a full one instead of an incremental")
            mode = "full"
        else:
            base_id, base_lsn = base
    (work / "physical").mkdir()
    rel = f"physical/mariabackup-{mode}.mbstream{codec.suffix}"
    with reporter.task(f"mariabackup {mode}") as advance:
        out = physical.backup(target, datadir, work / rel, codec, base_lsn, advance)
    manifest.tools["mariabackup"] = tool_version(["mariabackup", "--version"])
    manifest.items.append(Item("mariabackup", "mysql", mode, rel, codec.name, out.result.size, out.result.sha256,
                               round(out.duration, 3), source={"server": target.label, "datadir": datadir},
                               details={"mode": mode, "base": base_id, "from_lsn": out.from_lsn, "to_lsn": out.to_lsn}))


def latest_physical(store: Store) -> tuple[str, int] | None:
    """(backup id, to_lsn) of the newest physical backup: the base of the next incremental."""
    for b in reversed(store.list()):
        for item in b.manifest.items:
            if item.type == "mariabackup":
                return b.id, int(item.details["to_lsn"])
    return None


def physical_chain(store: Store, backup: Backup) -> list[tuple[Backup, Item]]:
    """The full backup and incrementals leading to `backup`'s physical item, oldest first."""
    by_id = {b.id: b for b in store.list()}
    chain = []
    current: Backup | None = backup
    while current is not None:
        item = next((i for i in current.manifest.items if i.type == "mariabackup"), None)
        if item is None:
            raise UsageError(f"backup {current.id} has no physical (mariabackup) part")
        chain.append((current, item))
        base = item.details.get("base")
        if item.details.get("mode") == "full":
            break
        current = by_id.get(base)
        if current is None:
            raise UsageError(f"the full backup {base} this incremental builds on is gone")
    return list(reversed(chain))
