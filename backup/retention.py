"""Retention: keep the newest backup of each of the last N days / ISO weeks / months (and hours, years).

Applied separately to each series of backups (same kind and same components), so a pre-restore safety
copy or a keystone-only backup never pushes a full scheduled backup out. The newest backup of every
series is always kept, as is every full physical backup an incremental still kept builds on.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from opsctl.backup.store import Backup

PERIODS = {
    "hourly": lambda d: d.strftime("%Y%m%d%H"),
    "daily": lambda d: d.strftime("%Y%m%d"),
    "weekly": lambda d: "%04d-W%02d" % d.isocalendar()[:2],
    "monthly": lambda d: d.strftime("%Y%m"),
    "yearly": lambda d: d.strftime("%Y"),
}


@dataclass
class Decision:
    backup: Backup
    keep: bool
    reasons: list[str]


def series_key(b: Backup) -> tuple:
    return (b.manifest.kind, tuple(sorted(b.manifest.components)))


def decide(backups: list[Backup], policy: dict[str, int]) -> list[Decision]:
    """Keep/delete for every backup (oldest first), with the rules that keep each one."""
    unknown = set(policy) - set(PERIODS)
    if unknown:
        raise ValueError(f"unknown retention period(s) {', '.join(sorted(unknown))}; use {', '.join(PERIODS)}")
    reasons: dict[str, list[str]] = defaultdict(list)
    series: dict[tuple, list[Backup]] = defaultdict(list)
    for b in backups:
        series[series_key(b)].append(b)
    for members in series.values():
        newest_first = sorted(members, key=lambda b: (b.manifest.created, b.id), reverse=True)
        reasons[newest_first[0].id].append("newest")
        for period, count in policy.items():
            seen: list[str] = []
            for b in newest_first:
                if len(seen) >= count:
                    break
                key = PERIODS[period](b.manifest.created)
                if key not in seen:
                    seen.append(key)
                    reasons[b.id].append(f"{period} {key}")
    _keep_physical_bases(backups, reasons)
    return [Decision(b, bool(reasons.get(b.id)), reasons.get(b.id, [])) for b in backups]


def _keep_physical_bases(backups: list[Backup], reasons: dict[str, list[str]]) -> None:
    by_id = {b.id: b for b in backups}
    for b in backups:
        if not reasons.get(b.id):
            continue
        current = b
        while True:
            item = next((i for i in current.manifest.items if i.type == "mariabackup"), None)
            base = item.details.get("base") if item else None
            if not base or base not in by_id:
                break
            if f"base of {current.id}" not in reasons[base]:
                reasons[base].append(f"base of {current.id}")
            current = by_id[base]
