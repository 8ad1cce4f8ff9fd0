"""Cinder: API latency, services up, volumes in error or stuck in a transitional state."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from opsctl.checkdef import CheckContext, check
from opsctl.checks._api import (
    DAILY, age_seconds, api_probe_check, connection, count_status, fetch, human_age, names_list, raw_get,
    services_up_results, utcnow, with_latency,
)
from opsctl.results import Result, Status, worst

API = api_probe_check("cinder", "block-storage", lambda conn: raw_get(conn.block_storage, "/limits"))

ERROR_STATES = frozenset({"error", "error_deleting", "error_extending", "error_restoring", "error_backing-up",
                          "error_managing"})
# transitional states that must not last: a volume stays in them only while a service works on it
TRANSITIONAL_STATES = frozenset({"creating", "attaching", "detaching", "deleting", "extending", "downloading",
                                 "uploading", "retyping", "backing-up", "restoring-backup", "reserved", "maintenance",
                                 "awaiting-transfer"})


@check("cinder.services_up", needs=("cloud",), scope="cloud", runbook="cinder-volume-down", profiles=DAILY,
       remediation="Start the service on the named host (cinder-volume: also check its storage backend) and read "
                   "its log. A service stays 'down' until it reports again (service_down_time).")
def services_up(ctx: CheckContext) -> Iterable[Result]:
    """Every enabled Cinder service (volume, scheduler, backup) reports as up."""
    services, seconds = fetch("cinder services", connection(ctx).block_storage.services)
    yield from with_latency(evaluate_services_up(ctx, services), seconds)


def evaluate_services_up(ctx: CheckContext, services: Iterable[Any], now: Any = None) -> Iterator[Result]:
    return services_up_results(ctx, services, now or utcnow(), key_binary="cinder-volume",
                               key_runbook="cinder-volume-down", noun="cinder")


@check("cinder.volumes_error", needs=("cloud",), scope="cloud", runbook="volume-error", profiles=DAILY,
       thresholds={"warning": 1, "critical": None, "stuck_after_seconds": 3600},
       remediation="Read cinder-volume's log on the volume's host; fix the backend, then reset the state "
                   "(openstack volume set --state ...) or delete the volume with its owner.")
def volumes_error(ctx: CheckContext) -> Iterable[Result]:
    """Volumes in an error state or stuck in creating/attaching/deleting... for too long, all projects."""
    volumes, seconds = fetch("volumes", connection(ctx).block_storage.volumes, details=True, all_projects=True)
    yield from with_latency(evaluate_volumes(ctx, volumes), seconds)


def _volume_line(v: Any, now: Any) -> str:
    age = human_age(age_seconds(v.updated_at or v.created_at, now))
    return f"{v.name or v.id} ({v.status} for {age}, id {v.id}, host {v.host or '-'})"


def evaluate_volumes(ctx: CheckContext, volumes: Iterable[Any], now: Any = None) -> Iterator[Result]:
    now = now or utcnow()
    volumes = list(volumes)
    limit = float(ctx.thresholds.get("stuck_after_seconds", 3600))
    errored = [v for v in volumes if (v.status or "") in ERROR_STATES]
    stuck = [v for v in volumes if (v.status or "") in TRANSITIONAL_STATES
             and (age_seconds(v.updated_at or v.created_at, now) or 0) >= limit]
    metrics = {"volumes": len(volumes), "volumes_error": len(errored), "volumes_stuck": len(stuck)}
    if not errored and not stuck:
        yield ctx.ok(f"no volume in error or stuck ({len(volumes)} volume(s))", metrics=metrics)
        return
    parts, lines = [], []
    if errored:
        parts.append(f"{len(errored)} in error: {names_list([_volume_line(v, now) for v in errored], 3)}")
        lines += [_volume_line(v, now) for v in errored]
    if stuck:
        parts.append(f"{len(stuck)} stuck over {human_age(limit)}: {names_list([_volume_line(v, now) for v in stuck], 3)}")
        lines += [_volume_line(v, now) for v in stuck]
    status = worst([count_status(len(errored), ctx.thresholds), count_status(len(stuck), ctx.thresholds), Status.OK])
    yield ctx.result(status, "volumes " + "; ".join(parts), metrics=metrics, details="\n".join(lines))


CHECKS = [API, services_up, volumes_error]
