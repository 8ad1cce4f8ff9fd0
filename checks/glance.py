"""Glance: API latency and the image list."""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from opsctl.checkdef import CheckContext, check
from opsctl.checks._api import (
    DAILY, LATENCY_THRESHOLDS, api_probe_check, connection, latency_status, names_list, raw_get, timed, api_errors,
    api_failure,
)
from opsctl.results import Result, Status, worst

API = api_probe_check("glance", "image", lambda conn: raw_get(conn.image, "/images?limit=1"))

BAD_STATES = frozenset({"killed"})  # an upload that failed; 'deleted'/'pending_delete' are not listed by default


@check("glance.images", needs=("cloud",), scope="cloud", runbook="api-endpoint-down", profiles=DAILY,
       thresholds=dict(LATENCY_THRESHOLDS),
       remediation="Check glance-api (process, log) and its store backend; delete images left in 'killed'.")
def images(ctx: CheckContext) -> Iterable[Result]:
    """The image list is served (an empty list is fine), in time; images left 'killed' are reported."""
    try:
        items, seconds = timed(connection(ctx).image.images)
    except api_errors() as exc:
        yield ctx.critical(f"cannot list images: {api_failure(exc)}")
        return
    yield from evaluate_images(ctx, items, seconds)


def evaluate_images(ctx: CheckContext, items: Iterable[Any], seconds: float) -> Iterator[Result]:
    items = list(items)
    killed = [i for i in items if i.status in BAD_STATES]
    metrics = {"images": len(items), "images_killed": len(killed), "latency_seconds": round(seconds, 4)}
    slow = latency_status(seconds, ctx.thresholds)
    text = f"{len(items)} image(s) listed in {seconds:.2f}s"
    if killed:
        text += f"; {len(killed)} killed: {names_list([i.name or i.id for i in killed])}"
    yield ctx.result(worst([slow, Status.WARNING if killed else Status.OK]), text, metrics=metrics)


CHECKS = [API, images]
