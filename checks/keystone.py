"""Keystone: token issue, API latency, and every endpoint of the service catalog reachable."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Mapping

from opsctl.checkdef import CheckContext, check
from opsctl.checks._api import (
    DAILY, LATENCY_THRESHOLDS, api_errors, api_failure, api_probe_check, catalog, connection, latency_status,
    raw_get, timed,
)
from opsctl.errors import OpsctlError
from opsctl.results import Result, Status

API = api_probe_check("keystone", "identity", lambda conn: raw_get(conn.identity, "/"))


@check("keystone.token_issue", needs=("cloud",), scope="cloud", runbook="keystone-token-failure", profiles=DAILY,
       thresholds=dict(LATENCY_THRESHOLDS),
       remediation="Check keystone (process, log), its database and memcached, the fernet keys on every keystone "
                   "node, and the credentials in clouds.yaml.")
def token_issue(ctx: CheckContext) -> Iterable[Result]:
    """Keystone issues a fresh token with a service catalog, within the latency thresholds."""
    try:
        conn = connection(ctx)
    except OpsctlError as exc:
        yield ctx.critical(f"no token: {exc.message}")
        return
    try:
        access, seconds = timed(_issue_fresh_token, conn)
    except api_errors() as exc:
        yield ctx.critical(f"token issue failed: {api_failure(exc)}")
        return
    yield evaluate_token(ctx, access, seconds)


def _issue_fresh_token(conn: Any) -> Any:
    """A new token from the same credentials (the connection's cached token is left alone)."""
    from keystoneauth1 import loading

    cfg = conn.config.config
    plugin = loading.get_plugin_loader(cfg.get("auth_type") or "password").load_from_options(**cfg["auth"])
    return plugin.get_access(conn.session)


def evaluate_token(ctx: CheckContext, access: Any, seconds: float) -> Result:
    metrics = {"latency_seconds": round(seconds, 4)}
    entries = list(getattr(access.service_catalog, "catalog", None) or [])
    metrics["catalog_services"] = len(entries)
    if not entries:
        return ctx.critical(f"token issued in {seconds:.2f}s but its service catalog is empty "
                            "(no role on the project, or an unscoped token)", metrics=metrics)
    status = latency_status(seconds, ctx.thresholds)
    text = f"token issued in {seconds:.2f}s for {access.username or 'user'}@{access.project_name or '-'}, " \
           f"{len(entries)} service(s) in the catalog"
    return ctx.result(status, text + (" (slow)" if status != Status.OK else ""), metrics=metrics)


@check("keystone.catalog_endpoints", needs=("cloud",), scope="cloud", runbook="api-endpoint-down", profiles=DAILY,
       thresholds={**LATENCY_THRESHOLDS, "max_parallel": 4},
       remediation="An endpoint that does not answer: check the service behind it (process, log, load balancer, "
                   "firewall) or fix the URL in the catalog (openstack endpoint set --url ...).")
def catalog_endpoints(ctx: CheckContext) -> Iterable[Result]:
    """Every endpoint URL of the catalog (each service and interface of the region) answers HTTP."""
    conn = connection(ctx)
    entries = catalog(conn)
    targets = list(endpoint_targets(entries, ctx.config.cloud.region))
    if not targets:
        yield ctx.critical("the service catalog has no endpoint")
        return
    timeout = ctx.config.cloud.api_timeout
    urls = sorted({url for _, _, url in targets})  # interfaces often share a URL: probe each once
    workers = max(1, min(int(ctx.thresholds.get("max_parallel", 4)), len(urls)))
    with ThreadPoolExecutor(workers) as pool:
        outcomes = dict(zip(urls, pool.map(lambda url: probe_url(conn.session, url, timeout), urls)))
    for service, interface, url in targets:
        yield evaluate_endpoint(ctx, service, interface, url, outcomes[url])


def endpoint_targets(entries: Iterable[Mapping[str, Any]], region: str | None = None) -> Iterator[tuple[str, str, str]]:
    """(service type, interface, url) for each endpoint, of `region` when given, sorted."""
    found = set()
    for entry in entries:
        for ep in entry.get("endpoints") or []:
            if region and (ep.get("region_id") or ep.get("region")) not in (region, None):
                continue
            url = ep.get("url") or ep.get("publicURL")
            if url:
                found.add((entry.get("type") or entry.get("name") or "?", ep.get("interface") or "public", url))
    yield from sorted(found)


def probe_url(session: Any, url: str, timeout: float) -> tuple[int | None, float, str]:
    """(HTTP status or None, seconds, error) of an unauthenticated GET: any answer below 500 is reachable."""
    try:
        response, seconds = timed(session.get, url, authenticated=False, raise_exc=False, timeout=timeout,
                                  connect_retries=0, redirect=False)
    except api_errors() as exc:
        return None, 0.0, api_failure(exc)
    return response.status_code, seconds, ""


def evaluate_endpoint(ctx: CheckContext, service: str, interface: str, url: str,
                      outcome: tuple[int | None, float, str]) -> Result:
    code, seconds, error = outcome
    label = f"{service} {interface} endpoint {url}"
    item = f"{service}/{interface}"  # metric keys 'name:item': one series per endpoint in the exporter
    if code is None:
        return ctx.critical(f"{label} unreachable: {error}", metrics={f"up:{item}": 0})
    metrics = {f"up:{item}": int(code < 500), f"http_status:{item}": code, f"latency_seconds:{item}": round(seconds, 4)}
    if code >= 500:
        return ctx.critical(f"{label} answered HTTP {code}", metrics=metrics)
    status = latency_status(seconds, ctx.thresholds)
    return ctx.result(status, f"{label} answered HTTP {code} in {seconds:.2f}s{' (slow)' if status else ''}",
                      metrics=metrics)


CHECKS = [API, token_issue, catalog_endpoints]
