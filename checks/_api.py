"""Shared pieces of the cloud API checks: timed calls, API failure text, catalog lookups, ages, latency.

Everything here is small and pure where it can be, so the evaluation logic of each check can be
unit-tested against real API response samples without a cloud.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

from opsctl.checkdef import CheckContext, check
from opsctl.errors import OpsctlError
from opsctl.results import Result, Status, threshold_status

T = TypeVar("T")

LATENCY_THRESHOLDS = {"latency_warning": 3.0, "latency_critical": 8.0}  # seconds
DAILY = ("daily", "weekly")  # service health: every routine
WEEKLY = ("weekly",)  # capacity audits


# ------------------------------------------------------------------------------------ calls & errors
def timed(fn: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """Call fn; return (value, seconds). Generators are drained into a list (API paging happens here)."""
    t0 = time.monotonic()
    value = fn(*args, **kwargs)
    if isinstance(value, Iterator) or hasattr(value, "__next__"):
        value = list(value)  # type: ignore[assignment]
    return value, time.monotonic() - t0


def api_failure(exc: BaseException) -> str:
    """One line saying why an API call failed (never a traceback)."""
    if isinstance(exc, OpsctlError):
        return exc.message
    from keystoneauth1 import exceptions as ks_exc

    if isinstance(exc, (ks_exc.ConnectTimeout, ks_exc.RequestTimeout)):
        # keystoneauth reports any timeout (connect or read) as ConnectTimeout: say what it is
        return f"timed out: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no answer'} (limit: cloud.api_timeout)"
    if isinstance(exc, ks_exc.ConnectFailure):
        return f"connection failed: {str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"[:300]
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = text[0] if text else ""
    name = type(exc).__name__
    if status:
        return f"HTTP {status}: {first}"[:300]
    return f"{name}: {first}"[:300] if first else name


def api_errors() -> tuple[type[BaseException], ...]:
    """The exception families an API call may raise (keystoneauth transport, openstacksdk, ours)."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as os_exc

    return (ks_exc.ClientException, os_exc.SDKException, OpsctlError, OSError)


def connection(ctx: CheckContext) -> Any:
    """The run's openstacksdk connection (raises UnavailableError: the runner reports UNKNOWN)."""
    if ctx.cloud is None:
        raise OpsctlError("no cloud configured", hint="set cloud.clouds or OS_CLOUD")
    return ctx.cloud.connection()


# ------------------------------------------------------------------------------------ catalog
def catalog(conn: Any) -> list[Mapping[str, Any]]:
    """The token's service catalog: [{type, name, endpoints: [{interface, url, region_id}]}]."""
    access = conn.session.auth.get_access(conn.session)
    return list(access.service_catalog.catalog or [])


def service_type_aliases(service_type: str) -> set[str]:
    """Official type plus historical aliases (block-storage: volumev3, volumev2, volume...)."""
    try:
        import os_service_types

        types = os_service_types.ServiceTypes().get_all_types(service_type)
        return set(types or [service_type])
    except Exception:  # the data set is optional help only
        return {service_type}


def find_service(entries: Iterable[Mapping[str, Any]], service_type: str) -> Mapping[str, Any] | None:
    aliases = service_type_aliases(service_type)
    for entry in entries:
        if entry.get("type") in aliases:
            return entry
    return None


# ------------------------------------------------------------------------------------ time & hosts
def parse_time(value: Any) -> datetime | None:
    """API timestamps ('2012-10-29T13:42:02.000000', '2017-09-12 19:40:08', '...Z', '+00:00') as aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value).strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def age_seconds(value: Any, now: datetime) -> float | None:
    when = parse_time(value)
    return None if when is None else max(0.0, (now - when).total_seconds())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def short_host(host: str | None) -> str:
    """Cinder-style 'node@backend#pool' -> 'node'."""
    return (host or "unknown").split("@", 1)[0].split("#", 1)[0] or "unknown"


def human_age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def names_list(items: Iterable[str], limit: int = 5) -> str:
    items = list(items)
    head = ", ".join(items[:limit])
    return head + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


# ------------------------------------------------------------------------------------ latency
def latency_status(seconds: float, thresholds: Mapping[str, Any]) -> Status:
    return threshold_status(seconds, thresholds.get("latency_warning"), thresholds.get("latency_critical"))


def count_status(count: int, thresholds: Mapping[str, Any]) -> Status:
    """Counts of bad things: `warning`/`critical` are minimum counts (None disables the level)."""
    return threshold_status(count, thresholds.get("warning"), thresholds.get("critical"))


# ------------------------------------------------------------------------------------ <svc>.api checks
def api_probe_check(component: str, service_type: str, probe: Callable[[Any], Any], *, optional: bool = False,
                    what: str = "") -> Any:
    """Build the `<component>.api` check: the service's endpoint answers an authenticated request in time.

    optional: a service absent from the catalog is OK "not deployed" (Swift); otherwise CRITICAL.
    """
    def run(ctx: CheckContext) -> Iterable[Result]:
        """The service API answers an authenticated request within the latency thresholds."""
        conn = connection(ctx)
        entry = find_service(catalog(conn), service_type)
        if entry is None:
            if optional:
                yield ctx.ok(f"{component} ({service_type}) not deployed: no endpoint in the catalog")
            else:
                yield ctx.critical(f"no {service_type} endpoint in the Keystone catalog of {ctx.host_name}",
                                   details="the service is missing from the catalog or the token has no access to it")
            return
        yield probe_result(ctx, lambda: probe(conn), what or f"{component} API ({service_type})")

    return check(f"{component}.api", needs=("cloud",), scope="cloud", runbook="api-endpoint-down",
                 remediation=f"Check the {component} API service (process, logs, load balancer) and its endpoint "
                             "in the Keystone catalog.",
                 thresholds=dict(LATENCY_THRESHOLDS), profiles=DAILY)(run)


def probe_result(ctx: CheckContext, call: Callable[[], Any], what: str) -> Result:
    """Run one API probe and turn its outcome and latency into a Result."""
    try:
        response, seconds = timed(call)
    except api_errors() as exc:
        return ctx.critical(f"{what} failed: {api_failure(exc)}")
    code = getattr(response, "status_code", None)
    metrics = {"latency_seconds": round(seconds, 4)}
    if code is not None:
        metrics["http_status"] = code
        if code >= 400:
            return ctx.critical(f"{what} answered HTTP {code} in {seconds:.2f}s", metrics=metrics)
    status = latency_status(seconds, ctx.thresholds)
    text = f"{what} answered in {seconds:.2f}s"
    if status != Status.OK:
        text += f" (slow: warning {ctx.thresholds.get('latency_warning')}s, critical {ctx.thresholds.get('latency_critical')}s)"
    return ctx.result(status, text, metrics=metrics)


def raw_get(proxy: Any, path: str = "/") -> Any:
    """An authenticated GET on a service proxy that returns the response whatever its status."""
    return proxy.get(path, raise_exc=False)


# ------------------------------------------------------------------------------------ service lists
def is_up(svc: Any) -> bool:
    return getattr(svc, "state", None) == "up" and not getattr(svc, "is_forced_down", False)


def is_disabled(svc: Any) -> bool:
    return getattr(svc, "status", None) == "disabled"


def describe_service(svc: Any, now: Any) -> str:
    """'nova-compute on host1 (zone nova, last report 40s ago)'."""
    bits = []
    zone = getattr(svc, "availability_zone", None)
    if zone:
        bits.append(f"zone {zone}")
    updated = getattr(svc, "updated_at", None)
    if updated:
        bits.append(f"last report {human_age(age_seconds(updated, now))} ago")
    if getattr(svc, "is_forced_down", False):
        bits.append("forced down")
    if is_disabled(svc):
        reason = getattr(svc, "disabled_reason", None)
        bits.append(f"disabled: {reason}" if reason else "disabled, no reason given")
    extra = f" ({', '.join(bits)})" if bits else ""
    return f"{svc.binary} on {svc.host}{extra}"


def group_by_host(items: Iterable[Any], host_of: Callable[[Any], str | None] = lambda x: x.host) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(short_host(host_of(item)), []).append(item)
    return dict(sorted(groups.items()))


def services_up_results(ctx: CheckContext, services: Iterable[Any], now: Any, *, key_binary: str,
                        key_runbook: str, noun: str) -> Iterator[Result]:
    """One result per host: CRITICAL naming each enabled service that is down (WARNING if it is disabled).

    The runbook is `key_runbook` when `key_binary` (nova-compute, cinder-volume) is among the down
    services, else service-down.
    """
    services = list(services)
    if not services:
        yield ctx.ok(f"no {noun} services registered")
        return
    for host, svcs in group_by_host(services).items():
        down = [s for s in svcs if not is_up(s)]
        metrics = {"services_up": len(svcs) - len(down), "services_down": len(down)}
        if not down:
            names = names_list(sorted({s.binary for s in svcs}), 8)
            yield ctx.ok(f"{len(svcs)} {noun} service(s) up on {host}: {names}", host=host, metrics=metrics)
            continue
        hard = [s for s in down if not is_disabled(s)]
        text = "; ".join(describe_service(s, now) for s in down)
        details = "\n".join(describe_service(s, now) for s in svcs)
        if hard:
            runbook = key_runbook if any(s.binary == key_binary for s in hard) else "service-down"
            yield ctx.critical(f"down: {text}", host=host, metrics=metrics, details=details, runbook=runbook)
        else:
            yield ctx.warning(f"down but disabled: {text}", host=host, metrics=metrics, details=details,
                              runbook=key_runbook if any(s.binary == key_binary for s in down) else "service-down")


def disabled_results(ctx: CheckContext, services: Iterable[Any], now: Any, noun: str) -> Iterator[Result]:
    """One result per host: WARNING naming each disabled service with its reason and zone."""
    services = list(services)
    if not services:
        yield ctx.ok(f"no {noun} services registered")
        return
    for host, svcs in group_by_host(services).items():
        disabled = [s for s in svcs if is_disabled(s)]
        metrics = {"services_disabled": len(disabled)}
        if disabled:
            yield ctx.warning("disabled: " + "; ".join(describe_service(s, now) for s in disabled), host=host, metrics=metrics)
        else:
            yield ctx.ok(f"no disabled {noun} service on {host}", host=host, metrics=metrics)


# ------------------------------------------------------------------------------------ listings
def fetch(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[list[Any], float]:
    """List API resources with timing; an API failure becomes an OpsctlError (the runner: UNKNOWN + reason)."""
    try:
        value, seconds = timed(fn, *args, **kwargs)
    except api_errors() as exc:
        raise OpsctlError(f"cannot list {what}: {api_failure(exc)}") from None
    return list(value), seconds


def with_latency(results: Iterable[Result], seconds: float) -> Iterator[Result]:
    """Add the API latency of the listing call to every result's metrics."""
    for r in results:
        yield r.with_(metrics={**r.metrics, "api_latency_seconds": round(seconds, 4)})
