"""Inventory: which hosts exist, their roles and how to reach them.

Sources: opsctl YAML (`hosts:`), a kolla-ansible / OpenStack-Ansible style INI inventory
(groups mapped to roles), or, with neither, the local host with roles detected from what runs on it.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import psutil

from opsctl.components import CATALOG, ROLES, Component
from opsctl.errors import ConfigError
from opsctl.hosts import Host, LocalHost, SSHHost, SSHSettings

# kolla-ansible and OpenStack-Ansible group names -> opsctl roles
GROUP_ROLES: dict[str, str] = {
    "control": "controller", "controller": "controller", "controllers": "controller",
    "shared-infra_hosts": "controller", "infra_hosts": "controller", "os-infra_hosts": "controller",
    "identity_hosts": "controller", "compute-infra_hosts": "controller", "image_hosts": "controller",
    "network-infra_hosts": "controller", "placement-infra_hosts": "controller", "storage-infra_hosts": "controller",
    "dashboard_hosts": "controller", "repo-infra_hosts": "controller", "haproxy_hosts": "controller",
    "compute": "compute", "compute_hosts": "compute",
    "network": "network", "network_hosts": "network", "network-agent_hosts": "network",
    "network-gateway_hosts": "network", "neutron_agents": "network",
    "storage": "storage", "storage_hosts": "storage", "swift_hosts": "storage", "cinder-volume_hosts": "storage",
}


@dataclass(frozen=True)
class HostSpec:
    """One inventory entry."""

    name: str
    roles: frozenset[str]
    address: str | None = None  # None: this machine
    ssh: SSHSettings | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.ssh is None

    def connect(self) -> Host:
        return LocalHost(self.name) if self.ssh is None else SSHHost(self.name, self.ssh)


@dataclass(frozen=True)
class Inventory:
    hosts: tuple[HostSpec, ...]
    source: str

    def select(self, roles: Iterable[str] = (), names: Iterable[str] = ()) -> list[HostSpec]:
        roles, names = set(roles), set(names)
        unknown = names - {h.name for h in self.hosts}
        if unknown:
            raise ConfigError(f"unknown host(s): {', '.join(sorted(unknown))}",
                              hint=f"hosts in the inventory: {', '.join(h.name for h in self.hosts)}")
        return [h for h in self.hosts if (not roles or roles & h.roles) and (not names or h.name in names)]

    def get(self, name: str) -> HostSpec:
        return self.select(names=[name])[0]

    @property
    def detected(self) -> bool:
        """True when nobody configured an inventory: just this machine with the roles seen running."""
        return self.source == LOCAL_SOURCE


# ---------------------------------------------------------------------------- YAML (config)
def from_config(hosts: Mapping[str, Mapping], defaults: Mapping | None = None, source: str = "config") -> Inventory:
    """Build an inventory from the validated `inventory.hosts` config section."""
    defaults = defaults or {}
    specs = []
    for name, entry in hosts.items():
        roles = frozenset(entry.get("roles") or ())
        if entry.get("local"):
            specs.append(HostSpec(name, roles, None, None, dict(entry.get("labels") or {})))
            continue
        ssh_data = {**(defaults.get("ssh") or {}), **(entry.get("ssh") or {})}
        address = entry.get("address") or name
        specs.append(HostSpec(name, roles, address, _ssh_settings(address, ssh_data, defaults.get("jumps") or {}),
                              dict(entry.get("labels") or {})))
    return Inventory(tuple(specs), source)


def _ssh_settings(address: str, data: Mapping, jumps: Mapping) -> SSHSettings:
    jump = data.get("jump")
    jump_settings = None
    if jump:
        jump_data = jump if isinstance(jump, Mapping) else {"address": jump}
        jump_settings = SSHSettings(
            address=jump_data["address"], user=jump_data.get("user", data.get("user", "root")),
            port=int(jump_data.get("port", 22)), key_file=jump_data.get("key_file", data.get("key_file")),
            known_hosts=jump_data.get("known_hosts", data.get("known_hosts")),
            connect_timeout=float(data.get("connect_timeout", 10)),
        )
    return SSHSettings(
        address=address, user=data.get("user", "root"), port=int(data.get("port", 22)), key_file=data.get("key_file"),
        known_hosts=data.get("known_hosts"), connect_timeout=float(data.get("connect_timeout", 10)), jump=jump_settings,
        become=bool(data.get("become", False)),
    )


# ---------------------------------------------------------------------------- Ansible INI
_SECTION = re.compile(r"^\[(?P<name>[^\]:]+)(?::(?P<kind>children|vars))?\]\s*$")


def parse_ansible_ini(text: str, source: str = "<ini>") -> tuple[dict[str, dict[str, str]], dict[str, set[str]]]:
    """Parse an Ansible INI inventory: vars per host (host line over [group:vars] over [all:vars]) and hosts
    per group (children resolved)."""
    host_vars: dict[str, dict[str, str]] = {}
    group_vars: dict[str, dict[str, str]] = {}
    direct: dict[str, set[str]] = {}
    children: dict[str, set[str]] = {}
    section, kind = "ungrouped", None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        m = _SECTION.match(line)
        if m:
            section, kind = m.group("name").strip(), m.group("kind")
            (children if kind == "children" else direct).setdefault(section, set())
            continue
        if kind == "vars":
            if "=" in line:
                k, v = line.split("=", 1)
                group_vars.setdefault(section, {})[k.strip()] = v.strip().strip("'\"")
            continue
        tokens = line.split()
        if kind == "children":
            children[section].add(tokens[0])
            continue
        host = tokens[0]
        if "[" in host:
            raise ConfigError(f"{source}:{lineno}: host ranges like {host!r} are not supported; list hosts one per line")
        hv = host_vars.setdefault(host, {})
        for tok in tokens[1:]:
            if "=" not in tok:
                raise ConfigError(f"{source}:{lineno}: expected key=value after host name, got {tok!r}")
            k, v = tok.split("=", 1)
            hv[k] = v.strip("'\"")
        direct.setdefault(section, set()).add(host)

    def members(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        if group in seen:
            raise ConfigError(f"{source}: group {group!r} includes itself through :children")
        result = set(direct.get(group, set()))
        for child in children.get(group, ()):
            result |= members(child, seen | {group})
        return result

    groups = {g: members(g) for g in set(direct) | set(children)}
    for host, hv in host_vars.items():
        merged = dict(group_vars.get("all", {}))
        for group in sorted(g for g, hosts in groups.items() if host in hosts and g != "all"):
            merged.update(group_vars.get(group, {}))
        merged.update(hv)
        host_vars[host] = merged
    return host_vars, groups


def from_ansible_ini(path: str | Path, ssh_defaults: Mapping | None = None) -> Inventory:
    """Import a kolla-ansible / OpenStack-Ansible INI inventory; groups map to roles (GROUP_ROLES)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read inventory {path}: {exc.strerror}") from None
    host_vars, groups = parse_ansible_ini(text, str(path))
    roles: dict[str, set[str]] = {h: set() for h in host_vars}
    for group, members in groups.items():
        role = GROUP_ROLES.get(group)
        if role:
            for h in members:
                roles.setdefault(h, set()).add(role)
    ssh_defaults = dict(ssh_defaults or {})
    specs = []
    for host in sorted(roles):
        hv = host_vars.get(host, {})
        if hv.get("ansible_connection") == "local":
            specs.append(HostSpec(host, frozenset(roles[host])))
            continue
        address = hv.get("ansible_host", host)
        data = dict(ssh_defaults)
        user = hv.get("ansible_user") or hv.get("ansible_ssh_user")
        if user:
            data["user"] = user
        if "ansible_port" in hv:
            data["port"] = int(hv["ansible_port"])
        key = hv.get("ansible_ssh_private_key_file") or hv.get("ansible_private_key_file")
        if key:
            data["key_file"] = key
        if "ansible_become" in hv:
            data["become"] = hv["ansible_become"].strip().lower() in ("true", "yes", "1", "on")
        specs.append(HostSpec(host, frozenset(roles[host]), address, _ssh_settings(address, data, {})))
    return Inventory(tuple(specs), str(path))


# ---------------------------------------------------------------------------- local detection
def running_process_tokens() -> set[str]:
    tokens: set[str] = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        info = proc.info
        if info.get("name"):
            tokens.add(info["name"])
        for arg in (info.get("cmdline") or [])[:4]:
            base = arg.rsplit("/", 1)[-1]
            tokens.add(base)
            if base.endswith(".py"):
                tokens.add(base[:-3])
    return tokens


def detect_local_roles(catalog: Mapping[str, Component] = CATALOG) -> frozenset[str]:
    """Roles of this machine, from the component daemons running on it."""
    running = running_process_tokens()
    roles: set[str] = set()
    for component in catalog.values():
        for svc in component.services:
            if running.intersection(svc.processes) and set(svc.roles) <= set(ROLES):
                roles.update(svc.roles if len(svc.roles) == 1 else svc.roles[:1])
    return frozenset(roles)


LOCAL_SOURCE = "local host (roles detected)"


def local_inventory(catalog: Mapping[str, Component] = CATALOG) -> Inventory:
    return Inventory((HostSpec(socket.gethostname(), detect_local_roles(catalog)),), LOCAL_SOURCE)
