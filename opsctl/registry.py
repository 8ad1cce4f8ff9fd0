"""Plugins through entry points (`opsctl.checks`, `opsctl.backup`, `opsctl.exporters`).

Built-in plugins are registered the same way as a site's own. A plugin that fails to load is
reported as a `PluginError`; the others still load.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Iterable

from opsctl.checkdef import Check


@dataclass(frozen=True)
class PluginError:
    group: str
    name: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"plugin {self.name!r} ({self.value}) in {self.group} failed to load: {self.reason}"


def _entry_points(group: str) -> list[EntryPoint]:
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def load_group(group: str, attribute: str | None = None) -> tuple[list[tuple[str, Any]], list[PluginError]]:
    """Load every entry point of a group: (name, object) pairs and the errors of those that failed."""
    loaded, errors = [], []
    for ep in _entry_points(group):
        try:
            obj = ep.load()
            if attribute and isinstance(obj, types.ModuleType):
                obj = getattr(obj, attribute)
            loaded.append((ep.name, obj))
        except Exception as exc:  # noqa: BLE001 - any plugin bug is reported, not fatal
            errors.append(PluginError(group, ep.name, ep.value, f"{type(exc).__name__}: {exc}"))
    return loaded, errors


def _as_checks(obj: Any) -> list[Check]:
    """A plugin object as a list of checks: a Check, an iterable of them, or a callable returning one."""
    if isinstance(obj, Check):
        return [obj]
    if callable(obj):
        obj = obj()
    if not isinstance(obj, Iterable):
        raise TypeError(f"expected a list of Check objects, got {type(obj).__name__}")
    checks = list(obj)
    for c in checks:
        if not isinstance(c, Check):
            raise TypeError(f"expected Check objects, got {type(c).__name__}")
    return checks


def load_checks(group: str = "opsctl.checks") -> tuple[list[Check], list[PluginError]]:
    """All checks from all plugins, in plugin then definition order; duplicate ids are errors."""
    loaded, errors = load_group(group, attribute="CHECKS")
    checks: list[Check] = []
    seen: dict[str, str] = {}
    for name, obj in loaded:
        try:
            plugin_checks = _as_checks(obj)
        except Exception as exc:  # noqa: BLE001
            errors.append(PluginError(group, name, "", f"{type(exc).__name__}: {exc}"))
            continue
        for c in plugin_checks:
            if c.id in seen:
                errors.append(PluginError(group, name, c.id, f"duplicate check id {c.id!r} (already from {seen[c.id]!r})"))
                continue
            seen[c.id] = name
            checks.append(c)
    return checks, errors
