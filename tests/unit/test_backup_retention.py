"""Retention decisions (pure logic on manifests): daily/weekly/monthly, series, newest always kept,
physical bases of kept incrementals kept."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from opsctl.backup.retention import decide
from opsctl.backup.store import Backup, Item, Manifest


def _b(when: datetime, kind="scheduled", components=("keystone", "nova"), physical=None) -> Backup:
    bid = when.strftime("%Y%m%dT%H%M%SZ")
    items = []
    if physical:
        mode, base = physical
        items.append(Item("mariabackup", "mysql", mode, "p", "zstd", details={"mode": mode, "base": base, "to_lsn": 1}))
    return Backup(Path("/nonexistent") / bid, Manifest(bid, kind, "complete", components=list(components), items=items))


def _kept(decisions):
    return [d.backup.id for d in decisions if d.keep]


T0 = datetime(2026, 11, 24, 2, 30, tzinfo=timezone.utc)


def test_daily_keeps_latest_of_each_day():
    backups = [_b(T0 - timedelta(days=d, hours=h)) for d in range(10) for h in (0, 1)]
    backups.sort(key=lambda b: b.manifest.created)
    kept = _kept(decide(backups, {"daily": 3}))
    assert kept == [(T0 - timedelta(days=d)).strftime("%Y%m%dT%H%M%SZ") for d in (2, 1, 0)]


def test_weekly_and_monthly_add_older_ones():
    backups = sorted((_b(T0 - timedelta(days=d)) for d in range(120)), key=lambda b: b.manifest.created)
    decisions = decide(backups, {"daily": 7, "weekly": 4, "monthly": 6})
    kept = _kept(decisions)
    # 7 daily, weekly ones beyond those days, and the newest of each of the last months (4 months in 120 days, +1)
    assert len(kept) == len(set(kept))
    assert kept[-7:] == [b.id for b in backups[-7:]]
    months = {b.manifest.created.strftime("%Y%m") for b in backups}
    assert all(any(k.startswith(m) for k in kept) for m in months)
    assert 7 < len(kept) <= 7 + 4 + 6


def test_zero_policy_still_keeps_newest():
    backups = [_b(T0 - timedelta(days=d)) for d in (3, 2, 1)]
    assert _kept(decide(backups, {"daily": 0, "weekly": 0, "monthly": 0})) == [backups[-1].id]
    assert _kept(decide(backups, {})) == [backups[-1].id]


def test_empty_store_and_single_backup():
    assert decide([], {"daily": 1}) == []
    one = [_b(T0)]
    assert _kept(decide(one, {"daily": 0})) == [one[0].id]


def test_series_are_kept_apart():
    scheduled = [_b(T0 - timedelta(days=1)), _b(T0 - timedelta(hours=1))]
    safety = [_b(T0 - timedelta(minutes=5), kind="pre-restore", components=("pre-restore",))]
    keystone_only = [_b(T0 - timedelta(minutes=1), kind="manual", components=("keystone",))]
    kept = _kept(decide(sorted(scheduled + safety + keystone_only, key=lambda b: b.manifest.created), {"daily": 1}))
    assert scheduled[-1].id in kept and safety[0].id in kept and keystone_only[0].id in kept
    assert scheduled[0].id not in kept


def test_full_base_of_kept_incremental_is_kept():
    full = _b(T0 - timedelta(days=30), physical=("full", None))
    inc1 = _b(T0 - timedelta(days=2), physical=("incremental", full.id))
    inc2 = _b(T0 - timedelta(days=1), physical=("incremental", inc1.id))
    decisions = decide([full, inc1, inc2], {"daily": 1})
    keep = {d.backup.id: d for d in decisions}
    assert keep[inc2.id].keep and keep[inc1.id].keep and keep[full.id].keep
    assert any("base of" in r for r in keep[full.id].reasons)


def test_unknown_period_rejected():
    with pytest.raises(ValueError):
        decide([], {"fortnightly": 2})
