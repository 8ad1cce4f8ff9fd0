"""The one catalog of component facts: roles, processes, units, ports, logs, dirs, databases, API type.

Checks, log discovery, backup targets and the exporter all read this catalog. Facts are data;
an operator overrides any field per component in config (`components:` section), e.g. for
containerised deployments or non-default paths.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

ROLES = ("controller", "compute", "network", "storage")


@dataclass(frozen=True)
class Service:
    """One daemon of a component: the roles it runs on, how to find it, where it logs."""

    name: str
    roles: tuple[str, ...]
    processes: tuple[str, ...] = ()  # process names or cmdline tokens (python daemons show as python3)
    units: tuple[str, ...] = ()  # systemd unit names (distribution spellings)
    ports: tuple[int, ...] = ()
    logs: tuple[str, ...] = ()  # glob patterns
    nofile_min: int = 0  # minimum open files limit expected for the daemon (0: not checked)
    restart: tuple[str, ...] = ()  # argv that restarts it; empty: `systemctl restart <first unit>`
    optional: bool = False  # not in every deployment: expected only where it runs or has run (its logs exist)

    def restart_argv(self) -> tuple[str, ...]:
        if self.restart:
            return self.restart
        return ("systemctl", "restart", self.units[0] if self.units else self.name)


@dataclass(frozen=True)
class Component:
    name: str
    services: tuple[Service, ...]
    config_dirs: tuple[str, ...] = ()
    state_dirs: tuple[str, ...] = ()
    key_dirs: tuple[str, ...] = ()  # secrets worth backing up separately (fernet keys, rings)
    databases: tuple[str, ...] = ()
    api_service_type: str | None = None
    log_dirs: tuple[str, ...] = ()

    @property
    def roles(self) -> tuple[str, ...]:
        seen: list[str] = []
        for svc in self.services:
            seen.extend(r for r in svc.roles if r not in seen)
        return tuple(seen)

    def services_for(self, roles: set[str] | frozenset[str]) -> tuple[Service, ...]:
        return tuple(s for s in self.services if roles.intersection(s.roles))


def _logs(component: str, *names: str) -> tuple[str, ...]:
    return tuple(f"/var/log/{component}/{n}" for n in names)


C, CP, N, S = ("controller",), ("compute",), ("network",), ("storage",)

CATALOG: dict[str, Component] = {
    c.name: c
    for c in [
        Component(
            "keystone",
            (
                Service("keystone", C, ("keystone", "keystone-wsgi-public", "keystone-wsgi"), ("apache2", "httpd", "keystone"), (5000,),
                        _logs("keystone", "keystone*.log")),
            ),
            config_dirs=("/etc/keystone",),
            key_dirs=("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys"),
            databases=("keystone",),
            api_service_type="identity",
            log_dirs=("/var/log/keystone",),
        ),
        Component(
            "nova",
            (
                Service("nova-api", C, ("nova-api", "nova-api-wsgi", "nova_api"), ("nova-api", "openstack-nova-api"), (8774,),
                        _logs("nova", "nova-api*.log")),
                Service("nova-conductor", C, ("nova-conductor",), ("nova-conductor", "openstack-nova-conductor"), (),
                        _logs("nova", "nova-conductor*.log")),
                Service("nova-scheduler", C, ("nova-scheduler",), ("nova-scheduler", "openstack-nova-scheduler"), (),
                        _logs("nova", "nova-scheduler*.log")),
                Service("nova-novncproxy", C, ("nova-novncproxy",), ("nova-novncproxy", "openstack-nova-novncproxy"), (6080,),
                        _logs("nova", "nova-novncproxy*.log"), optional=True),
                Service("nova-compute", CP, ("nova-compute",), ("nova-compute", "openstack-nova-compute"), (),
                        _logs("nova", "nova-compute*.log"), nofile_min=4096),
            ),
            config_dirs=("/etc/nova",),
            state_dirs=("/var/lib/nova",),
            databases=("nova_api", "nova", "nova_cell0"),
            api_service_type="compute",
            log_dirs=("/var/log/nova",),
        ),
        Component(
            "neutron",
            (
                Service("neutron-server", C, ("neutron-server", "neutron-api", "neutron_api"), ("neutron-server", "neutron-api"), (9696,),
                        _logs("neutron", "neutron-server*.log", "neutron-api*.log"), nofile_min=4096),
                Service("neutron-rpc-server", C, ("neutron-rpc-server",), ("neutron-rpc-server",), (),
                        _logs("neutron", "neutron-rpc-server*.log"), optional=True),
                Service("neutron-openvswitch-agent", N + CP, ("neutron-openvswitch-agent",),
                        ("neutron-openvswitch-agent", "neutron-plugin-openvswitch-agent"), (),
                        _logs("neutron", "neutron-openvswitch-agent*.log"), optional=True),
                Service("neutron-dhcp-agent", N, ("neutron-dhcp-agent",), ("neutron-dhcp-agent",), (),
                        _logs("neutron", "neutron-dhcp-agent*.log"), optional=True),
                Service("neutron-l3-agent", N, ("neutron-l3-agent",), ("neutron-l3-agent",), (),
                        _logs("neutron", "neutron-l3-agent*.log"), optional=True),
                Service("neutron-metadata-agent", N, ("neutron-metadata-agent",), ("neutron-metadata-agent",), (),
                        _logs("neutron", "neutron-metadata-agent*.log"), optional=True),
            ),
            config_dirs=("/etc/neutron",),
            state_dirs=("/var/lib/neutron",),
            databases=("neutron",),
            api_service_type="network",
            log_dirs=("/var/log/neutron",),
        ),
        Component(
            "glance",
            (
                Service("glance-api", C, ("glance-api", "glance_api"), ("glance-api", "openstack-glance-api"), (9292,),
                        _logs("glance", "glance-api*.log")),
            ),
            config_dirs=("/etc/glance",),
            state_dirs=("/var/lib/glance/images",),
            databases=("glance",),
            api_service_type="image",
            log_dirs=("/var/log/glance",),
        ),
        Component(
            "cinder",
            (
                Service("cinder-api", C, ("cinder-api", "cinder-wsgi", "cinder_api"), ("cinder-api", "openstack-cinder-api"), (8776,),
                        _logs("cinder", "cinder-api*.log")),
                Service("cinder-scheduler", C, ("cinder-scheduler",), ("cinder-scheduler", "openstack-cinder-scheduler"), (),
                        _logs("cinder", "cinder-scheduler*.log")),
                Service("cinder-volume", S, ("cinder-volume",), ("cinder-volume", "openstack-cinder-volume"), (),
                        _logs("cinder", "cinder-volume*.log"), nofile_min=4096),
                Service("cinder-backup", S, ("cinder-backup",), ("cinder-backup", "openstack-cinder-backup"), (),
                        _logs("cinder", "cinder-backup*.log"), optional=True),
            ),
            config_dirs=("/etc/cinder",),
            state_dirs=("/var/lib/cinder",),
            databases=("cinder",),
            api_service_type="block-storage",
            log_dirs=("/var/log/cinder",),
        ),
        Component(
            "swift",
            (
                Service("swift-proxy-server", C, ("swift-proxy-server",), ("swift-proxy", "openstack-swift-proxy"), (8080,),
                        ("/var/log/swift/*.log", "/var/log/syslog")),
                Service("swift-object-server", S, ("swift-object-server",), ("swift-object", "openstack-swift-object"), (6200,),
                        ("/var/log/swift/*.log",)),
                Service("swift-container-server", S, ("swift-container-server",), ("swift-container",), (6201,),
                        ("/var/log/swift/*.log",)),
                Service("swift-account-server", S, ("swift-account-server",), ("swift-account",), (6202,),
                        ("/var/log/swift/*.log",)),
            ),
            config_dirs=("/etc/swift",),
            key_dirs=("/etc/swift",),  # *.ring.gz and *.builder
            api_service_type="object-store",
            log_dirs=("/var/log/swift",),
        ),
        Component(
            "placement",
            (
                Service("placement-api", C, ("placement-api", "placement_api"), ("placement-api", "openstack-placement-api"), (8778,),
                        _logs("placement", "placement*.log")),
            ),
            config_dirs=("/etc/placement",),
            databases=("placement",),
            api_service_type="placement",
            log_dirs=("/var/log/placement",),
        ),
        Component(
            "mysql",
            (
                Service("mariadb", C, ("mariadbd", "mysqld"), ("mariadb", "mysql", "mysqld"), (3306,),
                        ("/var/log/mysql/*.log", "/var/log/mysql/*.err", "/var/log/mariadb/*.log"), nofile_min=16384),
            ),
            config_dirs=("/etc/mysql",),
            state_dirs=("/var/lib/mysql",),
            log_dirs=("/var/log/mysql", "/var/log/mariadb"),
        ),
        Component(
            "rabbitmq",
            (
                Service("rabbitmq-server", C, ("beam.smp",), ("rabbitmq-server",), (5672,),
                        ("/var/log/rabbitmq/*.log",), nofile_min=65536),
            ),
            config_dirs=("/etc/rabbitmq",),
            state_dirs=("/var/lib/rabbitmq",),
            log_dirs=("/var/log/rabbitmq",),
        ),
        Component(
            "memcached",
            (Service("memcached", C, ("memcached",), ("memcached",), (11211,), ()),),
            config_dirs=("/etc/memcached.conf",),
        ),
    ]
}


_TUPLE_FIELDS = {f.name for f in fields(Component) if f.name not in ("name", "services", "api_service_type")}
_SERVICE_TUPLE_FIELDS = {f.name for f in fields(Service) if f.name not in ("name", "nofile_min", "optional")}


def find_service(catalog: Mapping[str, Component], name: str) -> tuple[Component, Service] | None:
    """The component and service with this service name (e.g. 'nova-compute')."""
    for component in catalog.values():
        for svc in component.services:
            if svc.name == name:
                return component, svc
    return None


def _override_service(svc: Service, data: Mapping[str, Any]) -> Service:
    changes = {k: tuple(v) if k in _SERVICE_TUPLE_FIELDS else v for k, v in data.items()}
    return replace(svc, **changes)


def apply_overrides(catalog: Mapping[str, Component], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Component]:
    """A copy of the catalog with operator overrides applied (already validated by config)."""
    result = dict(catalog)
    for name, data in overrides.items():
        base = result.get(name) or Component(name, ())
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key == "services":
                by_name = {s.name: s for s in base.services}
                for svc_name, svc_data in value.items():
                    base_svc = by_name.get(svc_name) or Service(svc_name, tuple(svc_data.get("roles", ())))
                    by_name[svc_name] = _override_service(base_svc, svc_data)
                changes["services"] = tuple(by_name.values())
            elif key in _TUPLE_FIELDS:
                changes[key] = tuple(value)
            else:
                changes[key] = value
        result[name] = replace(base, **changes)
    return result
