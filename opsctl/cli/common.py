"""What every command needs: the loaded config, the catalog and the inventory, built once per run."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import typer

from opsctl import config as configmod
from opsctl import inventory as inv
from opsctl.components import CATALOG, Component, apply_overrides
from opsctl.config import Config
from opsctl.errors import ConfigError
from opsctl.secrets import MaskingFilter


@dataclass
class AppState:
    """Global options; config and inventory are loaded on first use."""

    config_path: str | None = None
    inventory_path: str | None = None
    debug: bool = False
    _loaded: tuple[Config, Path | None] | None = field(default=None, repr=False)

    def _load(self) -> tuple[Config, Path | None]:
        if self._loaded is None:
            self._loaded = configmod.load(self.config_path)
        return self._loaded

    @property
    def config(self) -> Config:
        return self._load()[0]

    @property
    def config_file(self) -> Path | None:
        return self._load()[1]

    @cached_property
    def catalog(self) -> dict[str, Component]:
        return apply_overrides(CATALOG, self.config.component_overrides())

    @cached_property
    def inventory(self) -> inv.Inventory:
        return build_inventory(self.config, self.catalog, self.inventory_path)


def build_inventory(config: Config, catalog: dict[str, Component], override: str | None = None) -> inv.Inventory:
    """--inventory FILE (INI or YAML), else config (ansible_ini and/or hosts), else the local host."""
    section = config.inventory
    defaults = section.defaults.model_dump(exclude_none=True)
    if override:
        path = Path(override)
        if path.suffix in (".yaml", ".yml"):
            loaded = configmod.load(str(path))[0] if _is_full_config(path) else _inventory_yaml(path)
            return inv.from_config(_hosts_dict(loaded.inventory), loaded.inventory.defaults.model_dump(exclude_none=True), str(path))
        return inv.from_ansible_ini(path, defaults.get("ssh"))
    hosts: list[inv.HostSpec] = []
    sources = []
    if section.ansible_ini:
        imported = inv.from_ansible_ini(section.ansible_ini, defaults.get("ssh"))
        hosts.extend(imported.hosts)
        sources.append(imported.source)
    if section.hosts:
        own = inv.from_config(_hosts_dict(section), defaults)
        names = {h.name for h in own.hosts}
        hosts = [h for h in hosts if h.name not in names] + list(own.hosts)
        sources.append("config")
    if hosts:
        return inv.Inventory(tuple(hosts), " + ".join(sources))
    return inv.local_inventory(catalog)


def _hosts_dict(section: configmod.InventorySection) -> dict:
    return {name: entry.model_dump(exclude_none=True) for name, entry in section.hosts.items()}


def _is_full_config(path: Path) -> bool:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return True  # let the full loader report the problem with its location
    return isinstance(data, dict) and "inventory" in data


def _inventory_yaml(path: Path) -> Config:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read inventory {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    return configmod.parse({"inventory": data}, str(path))


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    if not isinstance(obj, AppState):
        obj = AppState()
        ctx.find_root().obj = obj
    return obj


def setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(MaskingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    if not debug:
        for noisy in ("paramiko", "openstack", "keystoneauth", "urllib3", "elastic_transport"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
