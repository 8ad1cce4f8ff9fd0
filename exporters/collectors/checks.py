"""Check results as metrics: every registered check, run on the refresher schedule through the runner.

`opsctl_check_status{check,component,host}` is the Nagios code (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
of the worst result of that check on that host; the numbers a check reports (`Result.metrics`) become
`opsctl_check_metric{...,metric,item}` (a metric key `name:item`, e.g. `disk_used_pct:/var`, is split),
and host disk usage also becomes `opsctl_host_disk_used_ratio{host,mountpoint}` for `predict_linear`.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from opsctl.exporters.collectors._families import Families
from opsctl.exporters.prometheus import CollectorError, ExporterContext, Source
from opsctl.results import Result, Status

RATIO_METRICS = {  # check metric name -> (exported gauge, label for the item, help)
    "disk_used_pct": ("opsctl_host_disk_used_ratio", "mountpoint", "Used fraction of a filesystem (host.disk_space)"),
    "inodes_used_pct": ("opsctl_host_inodes_used_ratio", "mountpoint", "Used fraction of a filesystem's inodes"),
}


def _worst(results: Sequence[Result]) -> Status:
    return max((r.status for r in results), key=lambda s: s.severity)


def results_families(results: Iterable[Result], plugin_errors: int = 0) -> list:
    """Families for a run's results: one status/duration sample per (check, component, host)."""
    grouped: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        grouped.setdefault((r.check, r.component, r.host), []).append(r)
    fam = Families()
    for (check, component, host), rs in sorted(grouped.items()):
        labels = {"check": check, "component": component, "host": host}
        fam.gauge("opsctl_check_status", "Worst status of the check on the host: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
                  labels, int(_worst(rs)))
        fam.gauge("opsctl_check_duration_seconds", "Time the check took on the host", labels, max(r.duration for r in rs))
        seen: dict[tuple[str, str], float] = {}
        for r in rs:
            for key, value in r.metrics.items():
                if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(float(value)):
                    continue
                name, _, item = str(key).partition(":")
                seen[(name, item)] = float(value)
        for (name, item), value in sorted(seen.items()):
            fam.gauge("opsctl_check_metric", "A number reported by a check (name in 'metric', sub-item in 'item')",
                      {**labels, "metric": name, "item": item}, value)
            if name in RATIO_METRICS:
                gauge, item_label, doc = RATIO_METRICS[name]
                fam.gauge(gauge, doc, {"host": host, item_label: item}, value / 100.0)
    fam.gauge("opsctl_check_plugin_errors", "Check plugins that failed to load", value=plugin_errors)
    fam.gauge("opsctl_check_results", "Results of the last check run", value=sum(len(v) for v in grouped.values()))
    return fam.families()


def sources(ctx: ExporterContext) -> list[Source]:
    """One Source running all registered checks (all hosts of the inventory, all clouds)."""
    exp = ctx.config.exporter
    if not exp.checks or "checks" in exp.disabled_collectors:
        return []

    def collect() -> list:
        from opsctl.cloud import CloudAccess
        from opsctl.registry import load_checks
        from opsctl.runner import Selection, run_checks

        checks, plugin_errors = load_checks()
        if not checks:
            raise CollectorError("no check is registered")
        cc = ctx.config.cloud
        clouds = [CloudAccess(n, cc.api_timeout, cc.interface, cc.region) for n in ctx.cloud_names]  # fresh per run
        report = run_checks(checks, ctx.inventory, ctx.config, ctx.catalog, Selection(), clouds=clouds,
                            plugin_errors=plugin_errors)
        return results_families(report.results, len(report.plugin_errors))

    interval = exp.checks_interval or exp.refresh_interval
    return [Source("checks", collect, interval=interval, timeout=max(exp.collector_timeout, ctx.config.checks.timeout + 10))]
