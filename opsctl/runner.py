"""Plan and run checks: select, fan out over hosts and clouds, turn failures into UNKNOWN results."""

from __future__ import annotations

import fnmatch
import functools
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from opsctl.checkdef import Check, CheckContext
from opsctl.cloud import CloudAccess
from opsctl.components import Component
from opsctl.config import Config
from opsctl.errors import OpsctlError, UsageError
from opsctl.fanout import fan_out
from opsctl.hosts import Host, HostError
from opsctl.inventory import HostSpec, Inventory, running_process_tokens
from opsctl.registry import PluginError
from opsctl.results import Result, Status, worst
from opsctl.secrets import mask

BUILTIN_PROFILES: dict[str, tuple[str, ...]] = {
    # Operations Guide routines: daily = health of services and capacity; weekly adds slower audits.
    "daily": ("*",),
    "weekly": ("*",),
}


@dataclass(frozen=True)
class Selection:
    roles: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    components: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()  # ids or fnmatch patterns
    profile: str | None = None


@dataclass
class RunReport:
    results: list[Result]
    plugin_errors: list[PluginError] = field(default_factory=list)
    duration: float = 0.0
    notes: list[str] = field(default_factory=list)  # what was skipped and why

    @property
    def status(self) -> Status:
        return worst(r.status for r in self.results)


def _matches(check_id: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(check_id, p) for p in patterns)


def select_checks(checks: Sequence[Check], selection: Selection, config: Config) -> list[Check]:
    """Filter by component, id patterns, profile and the config's disabled list."""
    chosen = [c for c in checks if not _matches(c.id, config.checks.disabled)]
    if selection.components:
        known = {c.component for c in checks}
        unknown = set(selection.components) - known
        if unknown:
            raise UsageError(f"unknown component(s): {', '.join(sorted(unknown))}", hint=f"components: {', '.join(sorted(known))}")
        chosen = [c for c in chosen if c.component in selection.components]
    if selection.checks:
        for pattern in selection.checks:
            if not any(fnmatch.fnmatchcase(c.id, pattern) for c in checks):
                raise UsageError(f"no check matches {pattern!r}", hint="list them with: opsctl check --list")
        chosen = [c for c in chosen if _matches(c.id, selection.checks)]
    if selection.profile:
        patterns = config.checks.profiles.get(selection.profile)
        if patterns is None and selection.profile not in BUILTIN_PROFILES:
            names = sorted(set(BUILTIN_PROFILES) | set(config.checks.profiles))
            raise UsageError(f"unknown profile {selection.profile!r}", hint=f"profiles: {', '.join(names)}")
        if patterns is not None:
            chosen = [c for c in chosen if _matches(c.id, patterns)]
        else:
            chosen = [c for c in chosen if selection.profile in c.profiles]
    return chosen


class HostPool:
    """One connection per host for the whole run; a failed connection is remembered, not retried."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: dict[str, Host] = {}
        self._host_locks: dict[str, threading.Lock] = {}
        self._errors: dict[str, HostError] = {}

    def get(self, spec: HostSpec) -> Host:
        with self._lock:
            lock = self._host_locks.setdefault(spec.name, threading.Lock())
        with lock:
            if spec.name in self._errors:
                raise self._errors[spec.name]
            if spec.name not in self._hosts:
                host = spec.connect()
                try:
                    connect = getattr(host, "connect", None)
                    if connect:
                        connect()
                except HostError as exc:
                    self._errors[spec.name] = exc
                    raise
                self._hosts[spec.name] = host
            return self._hosts[spec.name]

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()


@dataclass(frozen=True)
class _Item:
    check: Check
    host_name: str
    spec: HostSpec | None = None
    cloud: CloudAccess | None = None


def plan(checks: Sequence[Check], hosts: Sequence[HostSpec], clouds: Sequence[CloudAccess]) -> list[_Item]:
    items: list[_Item] = []
    for c in checks:
        if c.scope == "host":
            items.extend(_Item(c, h.name, spec=h) for h in hosts if c.applies_to(h.roles))
        elif c.scope == "cloud":
            items.extend(_Item(c, cl.label, cloud=cl) for cl in clouds)
        else:
            items.append(_Item(c, "global", cloud=clouds[0] if clouds else None))
    return items


# need -> (config section that configures it, catalog component whose local presence implies it)
_NEED_SOURCES = {"db": ("database", "mysql"), "rabbitmq": ("rabbitmq", "rabbitmq"), "memcached": ("memcached", "memcached")}
CLOUDS_YAML_PATHS = ("clouds.yaml", "~/.config/openstack/clouds.yaml", "/etc/openstack/clouds.yaml")


def default_clouds(config: Config) -> list[CloudAccess]:
    """Configured clouds; else the OS_* / clouds.yaml default if there is one; else none."""
    c = config.cloud
    if c.clouds:
        return [CloudAccess(n, c.api_timeout, c.interface, c.region) for n in c.clouds]
    env_file = os.environ.get("OS_CLIENT_CONFIG_FILE")
    has_file = any(os.path.exists(os.path.expanduser(p)) for p in ((env_file,) if env_file else CLOUDS_YAML_PATHS))
    if os.environ.get("OS_CLOUD") or os.environ.get("OS_AUTH_URL") or has_file:
        return [CloudAccess(None, c.api_timeout, c.interface, c.region)]
    return []


def _deployed_here(component: Component, running: Callable[[], set[str]]) -> bool:
    """Installed or running on this machine: a config dir exists or one of its processes runs."""
    if any(os.path.exists(d) for d in component.config_dirs):
        return True
    return any(running().intersection(s.processes) for s in component.services)


def unavailable_needs(config: Config, catalog: Mapping[str, Component]) -> dict[str, str]:
    """Infrastructure needs that are neither configured nor present locally, with the reason."""
    running = functools.cache(running_process_tokens)  # one process scan per run, and only if needed
    missing = {}
    for need, (section, component) in _NEED_SOURCES.items():
        if section in config.model_fields_set:
            continue
        comp = catalog.get(component)
        if comp is None or not _deployed_here(comp, running):
            missing[need] = f"{component} checks skipped: no `{section}:` section in the config and no {component} on this host"
    return missing


def _gate(chosen: list[Check], config: Config, catalog: Mapping[str, Component], clouds: Sequence[CloudAccess]) -> tuple[list[Check], list[str]]:
    """Drop checks whose needs are not configured anywhere (an explicit --check selection is never gated)."""
    notes = []
    missing = unavailable_needs(config, catalog) if any(c.needs & set(_NEED_SOURCES) for c in chosen) else {}
    if not clouds and any("cloud" in c.needs or c.scope == "cloud" for c in chosen):
        missing["cloud"] = "cloud checks skipped: no cloud configured (cloud.clouds, OS_CLOUD / OS_* or clouds.yaml)"
    kept = []
    for c in chosen:
        reasons = [missing[n] for n in sorted(c.needs) if n in missing] or (
            [missing["cloud"]] if c.scope == "cloud" and "cloud" in missing else [])
        if reasons:
            notes.extend(r for r in reasons if r not in notes)
        else:
            kept.append(c)
    return kept, notes


def run_checks(
    checks: Sequence[Check],
    inventory: Inventory,
    config: Config,
    catalog: Mapping[str, Component],
    selection: Selection = Selection(),
    clouds: Sequence[CloudAccess] | None = None,
    plugin_errors: Sequence[PluginError] = (),
) -> RunReport:
    """Run the selected checks on the selected hosts; every failure becomes a Result, never an exception."""
    t0 = time.monotonic()
    chosen = select_checks(checks, selection, config)
    hosts = inventory.select(selection.roles, selection.hosts)
    if clouds is None:
        clouds = default_clouds(config)
        if not clouds and selection.checks:  # asked for by name: try OS_* defaults and report why it fails
            clouds = [CloudAccess(None, config.cloud.api_timeout, config.cloud.interface, config.cloud.region)]
    if selection.hosts:  # a host selection asks about those hosts, not the cloud-wide state
        chosen = [c for c in chosen if c.scope == "host"]
    notes: list[str] = []
    if not selection.checks:
        chosen, notes = _gate(chosen, config, catalog, clouds)
    items = plan(chosen, hosts, clouds)
    pool = HostPool()
    timeout = config.checks.timeout

    def execute(item: _Item) -> list[Result]:
        return _execute(item, pool, config, catalog, timeout)

    outcomes = fan_out(items, execute, concurrency=max(config.checks.concurrency, config.inventory.concurrency), timeout=timeout)
    results: list[Result] = []
    for out in outcomes:
        it = out.item
        if out.timed_out:
            results.append(_unknown(it, f"check timed out after {timeout:g}s"))
        elif out.error is not None:
            results.append(_unknown(it, _describe(out.error)))
        else:
            results.extend(out.value or [])
    pool.close()
    results = [_masked(r) for r in results]
    return RunReport(results, list(plugin_errors), time.monotonic() - t0, notes)


def _execute(item: _Item, pool: HostPool, config: Config, catalog: Mapping[str, Component], timeout: float) -> list[Result]:
    c = item.check
    host = None
    if item.spec is not None and ("host" in c.needs or c.scope == "host"):
        host = pool.get(item.spec)
    thresholds = {**c.thresholds, **config.checks.thresholds.get(c.id, {})}
    ctx = CheckContext(c, item.host_name, config, catalog, thresholds, host=host, spec=item.spec, cloud=item.cloud, timeout=timeout)
    t0 = time.monotonic()
    produced = list(c.func(ctx) or [])
    elapsed = time.monotonic() - t0
    return [r if r.duration else r.with_(duration=elapsed) for r in produced]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OpsctlError):
        return exc.message
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"check failed: {type(exc).__name__}{': ' + text if text else ''}"


def _unknown(item: _Item, summary: str) -> Result:
    return Result(check=item.check.id, host=item.host_name, status=Status.UNKNOWN, summary=summary,
                  runbook=item.check.runbook, remediation=item.check.remediation)


def _masked(r: Result) -> Result:
    return r.with_(summary=mask(r.summary), details=mask(r.details), remediation=mask(r.remediation))
