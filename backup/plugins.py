"""Per-component backup plugins: what to back up (databases, file sets) for one catalog component.

Registered under the entry-point group `opsctl.backup` (name = component), so a site plugin is installed
the same way. A component without a plugin gets `CatalogPlugin`: its catalog databases, config dirs,
state dirs and key dirs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opsctl.backup.files import FileSet
from opsctl.components import Component

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Targets:
    component: str
    databases: tuple[str, ...] = ()
    filesets: tuple[FileSet, ...] = ()


@dataclass(frozen=True)
class CatalogPlugin:
    """Databases and dirs straight from the catalog; state dirs as one optional set."""

    include_state: bool = True

    def targets(self, component: Component, config) -> Targets:
        excludes = tuple(config.backup.excludes)
        sets = []
        if component.config_dirs:
            sets.append(FileSet("config", component.config_dirs, excludes))
        keys = tuple(k for k in component.key_dirs if k not in component.config_dirs)
        if keys:
            sets.append(FileSet("keys", keys, excludes))
        if self.include_state and component.state_dirs:
            sets.append(FileSet("state", component.state_dirs, excludes, optional=True))
        return Targets(component.name, component.databases, tuple(sets))


@dataclass(frozen=True)
class KeystonePlugin:
    """Keystone: config, and the fernet + credential keys as their own set (restorable alone)."""

    def targets(self, component: Component, config) -> Targets:
        excludes = tuple(config.backup.excludes)
        key_dirs = component.key_dirs
        config_excludes = excludes + tuple(k.strip("/") for k in key_dirs)
        sets = [FileSet("config", component.config_dirs, config_excludes)]
        if key_dirs:
            sets.append(FileSet("keys", key_dirs, excludes))
        return Targets(component.name, component.databases, tuple(sets))


@dataclass(frozen=True)
class SwiftPlugin:
    """Swift: config, and the rings and builders (the cluster's layout) as their own set."""

    def targets(self, component: Component, config) -> Targets:
        excludes = tuple(config.backup.excludes)
        dirs = component.key_dirs or component.config_dirs
        rings = tuple(f"{d.rstrip('/')}/{pat}" for d in dirs for pat in ("*.ring.gz", "*.builder", "backups"))
        return Targets(component.name, component.databases,
                       (FileSet("config", component.config_dirs, excludes), FileSet("rings", rings, excludes)))


@dataclass(frozen=True)
class GlancePlugin:
    """Glance: config; file-store images only when `backup.include_images` (they can be huge)."""

    def targets(self, component: Component, config) -> Targets:
        excludes = tuple(config.backup.excludes)
        sets = [FileSet("config", component.config_dirs, excludes)]
        if config.backup.include_images and component.state_dirs:
            sets.append(FileSet("images", component.state_dirs, excludes, optional=True))
        return Targets(component.name, component.databases, tuple(sets))


KEYSTONE = KeystonePlugin()
SWIFT = SwiftPlugin()
GLANCE = GlancePlugin()
# MariaDB's and RabbitMQ's data dirs are live server files: back up their config only (data via dumps/mariabackup)
MYSQL = CatalogPlugin(include_state=False)
RABBITMQ = CatalogPlugin(include_state=False)
DEFAULT = CatalogPlugin()


def load_plugins() -> tuple[dict[str, object], list[str]]:
    """Plugins by component name from the `opsctl.backup` entry points, and load errors (others still load)."""
    from importlib.metadata import entry_points

    plugins: dict[str, object] = {}
    errors = []
    for ep in entry_points(group="opsctl.backup"):
        try:
            plugins[ep.name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - one bad plugin must not stop the others
            errors.append(f"backup plugin {ep.name}: {type(exc).__name__}: {exc}")
    return plugins, errors


def targets_for(components: list[Component], config, plugins: dict[str, object] | None = None) -> tuple[list[Targets], list[str]]:
    errors: list[str] = []
    if plugins is None:
        plugins, errors = load_plugins()
    out = []
    for comp in components:
        plugin = plugins.get(comp.name, DEFAULT)
        out.append(plugin.targets(comp, config))
    return out, errors
