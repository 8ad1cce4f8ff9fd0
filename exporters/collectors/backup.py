"""Backup freshness from the backup store's manifests (config `backup.store`).

A target is one stored item kind of a component, e.g. `nova/nova_api` (a database dump) or
`keystone/config` (files): for each, the time, size and duration of its newest complete backup.
Only complete backups count (the store lists a backup only once its manifest says complete).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from opsctl.exporters.collectors._families import Families
from opsctl.exporters.prometheus import CollectorError, ExporterContext, Source


def _when(manifest: dict[str, Any]) -> float:
    """The backup's completion time (finished, else the start encoded in its id)."""
    for key in ("finished", "started"):
        value = manifest.get(key)
        if value:
            try:
                parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
                return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
            except ValueError:
                pass
    try:
        return datetime.strptime(str(manifest["id"]).split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except (KeyError, ValueError):
        return 0.0


def read_manifests(store: str) -> list[dict[str, Any]]:
    """Complete manifests of the store as dicts, through the backup package's Store."""
    from opsctl.backup.store import Store

    return [b.manifest.to_dict() for b in Store(store).list()]


def backup_families(manifests: Iterable[dict[str, Any]]) -> list:
    from opsctl.backup.store import target_name

    fam = Families()
    manifests = sorted(manifests, key=_when)
    fam.gauge("opsctl_backups", "Complete backups in the store", value=len(manifests))
    latest: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
    for m in manifests:
        when = _when(m)
        for item in m.get("items") or []:
            target = (target_name(item), str(item.get("component", "")), str(item.get("type", "")))
            latest[target] = (when, item)
    if manifests:
        newest = manifests[-1]
        fam.gauge("opsctl_backup_latest_timestamp_seconds", "Completion time of the newest complete backup", value=_when(newest))
        fam.gauge("opsctl_backup_latest_size_bytes", "Size of the newest complete backup",
                  value=sum(float(i.get("size") or 0) for i in newest.get("items") or []))
        fam.gauge("opsctl_backup_latest_duration_seconds", "Duration of the newest complete backup",
                  value=float(newest.get("duration") or 0))
    for (target, component, kind), (when, item) in sorted(latest.items()):
        labels = {"target": target, "component": component, "type": kind}
        fam.gauge("opsctl_backup_last_success_timestamp_seconds", "Time of the newest complete backup of the target",
                  labels, when)
        fam.gauge("opsctl_backup_size_bytes", "Stored size of the target in its newest backup", labels,
                  float(item.get("size") or 0))
        fam.gauge("opsctl_backup_duration_seconds", "Time the target took in its newest backup", labels,
                  float(item.get("duration") or 0))
    return fam.families()


def collect_backups(store: str) -> list:
    if not Path(store).exists():
        raise CollectorError(f"backup store {store} does not exist", backup_families([]))
    try:
        manifests = read_manifests(store)
    except (OSError, json.JSONDecodeError) as exc:
        raise CollectorError(f"cannot read backup store {store}: {type(exc).__name__}: {exc}") from None
    return backup_families(manifests)


def sources(ctx: ExporterContext) -> list[Source]:
    exp = ctx.config.exporter
    if "backup" in exp.disabled_collectors:
        return []
    return [Source("backup", lambda: collect_backups(ctx.config.backup.store), interval=exp.refresh_interval,
                   timeout=exp.collector_timeout)]
