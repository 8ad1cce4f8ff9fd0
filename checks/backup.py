"""Backup freshness: the newest complete backup of every target in the store is recent enough.

Reads the manifests of the local store (config `backup.store`); only complete backups count (an
interrupted run is never listed). With no `backup:` section and no store directory, there is nothing to
check: no result, not a failure.
"""

from __future__ import annotations

import os
import time

from opsctl.backup.store import Store
from opsctl.checkdef import CheckContext, check
from opsctl.results import threshold_status

DAILY = ("daily", "weekly")


@check("backup.freshness", needs=(), scope="global", runbook="backup-too-old", profiles=DAILY,
       thresholds={"warn_hours": 26, "crit_hours": 36},
       remediation="Run `opsctl backup run`, read why the scheduled run failed (cron mail, `opsctl schedule`), "
                   "then `opsctl backup verify`.")
def freshness(ctx: CheckContext):
    """Hours since the newest complete backup of each target (database or file set)."""
    store_dir = ctx.config.backup.store
    if "backup" not in ctx.config.model_fields_set and not os.path.isdir(store_dir):
        return
    backups = [b for b in Store(store_dir).list() if b.manifest.kind != "pre-restore"]
    if not backups:
        yield ctx.critical(f"no complete backup in {store_dir}", host="localhost",
                           metrics={"backups": 0})
        return
    newest: dict[str, float] = {}
    for b in backups:
        created = b.manifest.created.timestamp()
        for item in b.manifest.items:
            target = item.target
            newest[target] = max(newest.get(target, 0.0), created)
    now = time.time()
    warn, crit = float(ctx.thresholds["warn_hours"]), float(ctx.thresholds["crit_hours"])
    for target, created in sorted(newest.items()):
        hours = (now - created) / 3600
        status = threshold_status(hours, warn, crit)
        yield ctx.result(status, f"{target}: newest complete backup {hours:.1f} h old (warning {warn:g} h, critical {crit:g} h)",
                         host="localhost", metrics={f"age_hours:{target}": round(hours, 2)},
                         details=f"store: {store_dir}; {len(backups)} complete backup(s)")


CHECKS = [freshness]
