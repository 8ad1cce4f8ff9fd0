"""OpenStack API collectors (one Source per service and cloud), metric names as openstack-exporter's.

Every API call goes through `CloudClient.get`: bounded by `cloud.api_timeout`, timed into the
`opsctl_openstack_api_request_duration_seconds` histogram. A service whose API fails exports
`openstack_<service>_up 0` (and its latency) and marks its collector as failed; the others go on.
Labels carry host, zone, service and status names only: never tokens, URLs with credentials or names of
users' resources.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable
from urllib.parse import parse_qsl, urlsplit

from opsctl.exporters.collectors._families import Families
from opsctl.exporters.prometheus import CollectorError, ExporterContext, Source
from opsctl.secrets import mask

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MiB, GiB = 1 << 20, 1 << 30
PAGE = 1000
NOVA_MICROVERSION = "2.53"  # uuids and paging for hypervisors; vCPU/RAM/disk fields still present (< 2.88)
PLACEMENT_MICROVERSION = "1.14"
SERVICE_PROXIES = {"identity": "identity", "compute": "compute", "network": "network", "volume": "block_storage",
                   "image": "image", "placement": "placement"}


class Latency:
    """A cumulative latency histogram per API service (thread-safe), rendered into every scrape."""

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS):
        self.bounds = tuple(buckets)
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}

    def observe(self, service: str, seconds: float) -> None:
        with self._lock:
            counts = self._counts.setdefault(service, [0] * (len(self.bounds) + 1))
            counts[bisect.bisect_left(self.bounds, seconds)] += 1
            self._sums[service] = self._sums.get(service, 0.0) + seconds

    def add_to(self, fam: Families, service: str) -> None:
        with self._lock:
            counts = list(self._counts.get(service, [0] * (len(self.bounds) + 1)))
            total = self._sums.get(service, 0.0)
        buckets, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), counts):
            running += n
            buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(running)))
        fam.histogram("opsctl_openstack_api_request_duration_seconds", "Latency of OpenStack API calls made by the exporter",
                      {"service": service}, buckets, total)


class APIError(Exception):
    """An API call failed: one line, no traceback, nothing secret."""


class CloudClient:
    """A lazily (re)opened openstacksdk connection for one cloud; raw GETs with timing and paging."""

    def __init__(self, name: str | None, api_timeout: float, interface: str | None = None, region: str | None = None,
                 connect: Callable[..., Any] | None = None):
        self.name = name
        self.label = name or "default"
        self.api_timeout, self.interface, self.region = api_timeout, interface, region
        self.latency = Latency()
        self._connect = connect
        self._conn: Any = None
        self._lock = threading.Lock()

    def connection(self) -> Any:
        with self._lock:
            if self._conn is None:
                connect = self._connect
                if connect is None:
                    from opsctl.cloud import connect
                try:
                    self._conn = connect(self.name, self.api_timeout, self.interface, self.region)
                except Exception as exc:  # noqa: BLE001 - UnavailableError or anything openstacksdk raises
                    raise APIError(mask(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}")) from None
            return self._conn

    def reset(self) -> None:
        with self._lock:
            self._conn = None

    def get(self, service: str, path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None,
            microversion: str | None = None) -> Any:
        """GET a path of a service endpoint (from the catalog) and return the decoded JSON."""
        conn = self.connection()
        kwargs: dict[str, Any] = {"raise_exc": False}
        if microversion:
            kwargs["microversion"] = microversion
        if params:
            kwargs["params"] = params
        t0 = time.monotonic()
        try:
            proxy = getattr(conn, SERVICE_PROXIES[service])  # may discover versions: an API call too
            resp = proxy.get(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - transport errors, timeouts, catalog errors
            self.latency.observe(service, time.monotonic() - t0)
            raise APIError(f"{service} {path}: {type(exc).__name__}: {mask(str(exc).splitlines()[0] if str(exc) else '')}") from None
        self.latency.observe(service, time.monotonic() - t0)
        if resp.status_code == 401:
            self.reset()  # token expired or revoked: authenticate again next time
        if resp.status_code >= 400:
            raise APIError(f"{service} {path}: HTTP {resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise APIError(f"{service} {path}: response is not JSON") from None

    def paged(self, service: str, path: str, key: str, params: dict[str, Any] | None = None,
              microversion: str | None = None, links_key: str | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list (nova/cinder `*_links` next, glance `next`)."""
        items: list[dict[str, Any]] = []
        query: list[tuple[str, Any]] = list((params or {}).items())
        for _ in range(100000):  # bounded: a server that loops on its marker cannot hang us
            data = self.get(service, path, query, microversion)
            page = data.get(key) or []
            items.extend(page)
            nxt = _next_link(data, links_key or f"{key}_links")
            if not nxt or not page:
                return items
            query = parse_qsl(urlsplit(nxt).query)
        return items


def _next_link(data: dict[str, Any], links_key: str) -> str | None:
    if isinstance(data.get("next"), str):
        return data["next"]
    for link in data.get(links_key) or []:
        if link.get("rel") == "next":
            return link.get("href")
    return None


# ------------------------------------------------------------------------------------------- per service
def _up(fam: Families, service: str, value: int) -> None:
    fam.gauge(f"openstack_{service}_up", f"1 if the {service} API answered the exporter's last collection", value=value)


def _run(client: CloudClient, up_name: str, api: str, *parts: Callable[[Families], None]) -> list:
    """Run the parts of a service's collection; a failing part does not hide what the others found.

    `openstack_<service>_up` is 1 only if every call answered; any failure marks the collector failed
    (with the families of the parts that worked).
    """
    fam = Families({"cloud": client.label})
    errors = []
    try:
        client.connection()
    except APIError as exc:  # Keystone down or credentials refused: no part can run
        parts, errors = (), [str(exc)]
    for part in parts:
        try:
            part(fam)
        except APIError as exc:
            errors.append(str(exc))
    _up(fam, up_name, 0 if errors else 1)
    client.latency.add_to(fam, api)
    if errors:
        raise CollectorError("; ".join(errors), fam.families())
    return fam.families()


def collect_identity(client: CloudClient) -> list:
    def projects(fam: Families) -> None:
        fam.gauge("openstack_identity_projects", "Projects in Keystone",
                  value=len(client.get("identity", "/projects").get("projects", [])))

    def domains(fam: Families) -> None:
        fam.gauge("openstack_identity_domains", "Domains in Keystone",
                  value=len(client.get("identity", "/domains").get("domains", [])))

    return _run(client, "identity", "identity", projects, domains)


def _state(value: Any) -> int:
    return 1 if str(value).lower() == "up" else 0


def collect_nova(client: CloudClient) -> list:
    zone_of: dict[str, str] = {}

    def services_part(fam: Families) -> None:
        services = client.get("compute", "/os-services").get("services", [])
        for s in services:
            fam.gauge("openstack_nova_agent_state", "1 if the Nova service reports up (state), by host and binary",
                      {"hostname": s.get("host"), "service": s.get("binary"), "zone": s.get("zone"),
                       "admin_state": s.get("status")}, _state(s.get("state")))
            if s.get("binary") == "nova-compute":
                zone_of[str(s.get("host"))] = str(s.get("zone") or "")

    def hypervisors_part(fam: Families) -> None:
        aggregates: dict[str, list[str]] = {}
        for agg in client.get("compute", "/os-aggregates").get("aggregates", []):
            for host in agg.get("hosts") or []:
                aggregates.setdefault(host, []).append(str(agg.get("name")))
                if agg.get("availability_zone"):
                    zone_of.setdefault(host, agg["availability_zone"])
        hypervisors = client.paged("compute", "/os-hypervisors/detail", "hypervisors", {"limit": PAGE},
                                   microversion=NOVA_MICROVERSION)
        _hypervisor_metrics(fam, hypervisors, zone_of, aggregates)

    def servers_part(fam: Families) -> None:
        servers = client.paged("compute", "/servers/detail", "servers", {"all_tenants": 1, "limit": PAGE})
        fam.gauge("openstack_nova_total_vms", "Instances in the cloud (all projects)", value=len(servers))
        by_status = Counter(str(s.get("status") or "UNKNOWN") for s in servers)
        for status in sorted(set(by_status) | {"ACTIVE", "ERROR", "SHUTOFF", "BUILD"}):
            fam.gauge("openstack_nova_servers", "Instances by status (all projects)", {"status": status}, by_status[status])

    return _run(client, "nova", "compute", services_part, hypervisors_part, servers_part)


def _hypervisor_metrics(fam: Families, hypervisors: list[dict], zone_of: dict[str, str], aggregates: dict[str, list[str]]) -> None:
    fam.gauge("openstack_nova_hypervisors", "Hypervisors known to Nova", value=len(hypervisors))
    for h in hypervisors:
        service_host = (h.get("service") or {}).get("host") or h.get("hypervisor_hostname")
        labels = {"hostname": h.get("hypervisor_hostname"), "availability_zone": zone_of.get(str(service_host), ""),
                  "aggregates": ",".join(sorted(aggregates.get(str(service_host), [])))}
        fam.gauge("openstack_nova_hypervisor_state", "1 if the hypervisor is up and enabled", labels,
                  int(h.get("state") == "up" and h.get("status") == "enabled"))
        values = {
            "openstack_nova_running_vms": ("Instances running on the hypervisor", h.get("running_vms"), 1),
            "openstack_nova_vcpus_available": ("Physical vCPUs of the hypervisor", h.get("vcpus"), 1),
            "openstack_nova_vcpus_used": ("vCPUs allocated on the hypervisor", h.get("vcpus_used"), 1),
            "openstack_nova_memory_available_bytes": ("Memory of the hypervisor", h.get("memory_mb"), MiB),
            "openstack_nova_memory_used_bytes": ("Memory allocated on the hypervisor", h.get("memory_mb_used"), MiB),
            "openstack_nova_local_storage_available_bytes": ("Local disk of the hypervisor", h.get("local_gb"), GiB),
            "openstack_nova_local_storage_used_bytes": ("Local disk allocated on the hypervisor", h.get("local_gb_used"), GiB),
        }
        for name, (doc, value, scale) in values.items():
            if value is not None:  # absent from microversion 2.88 on: then Placement has the numbers
                fam.gauge(name, doc, labels, float(value) * scale)


def collect_neutron(client: CloudClient) -> list:
    def agents_part(fam: Families) -> None:
        agents = client.get("network", "/agents").get("agents", [])
        for a in agents:
            fam.gauge("openstack_neutron_agent_state", "1 if the Neutron agent is alive, by host and binary",
                      {"hostname": a.get("host"), "service": a.get("binary"), "zone": a.get("availability_zone") or "",
                       "admin_state": "up" if a.get("admin_state_up") else "down"}, 1 if a.get("alive") else 0)

    def counts_part(fam: Families) -> None:
        for resource in ("networks", "subnets", "routers", "floatingips"):
            items = client.get("network", f"/{resource}", [("fields", "id")]).get(resource, [])
            fam.gauge(f"openstack_neutron_{resource.replace('floatingips', 'floating_ips')}",
                      f"Neutron {resource} (all projects)", value=len(items))

    return _run(client, "neutron", "network", agents_part, counts_part)


def collect_cinder(client: CloudClient) -> list:
    def services_part(fam: Families) -> None:
        for s in client.get("volume", "/os-services").get("services", []):
            fam.gauge("openstack_cinder_agent_state", "1 if the Cinder service reports up, by host and binary",
                      {"hostname": s.get("host"), "service": s.get("binary"), "zone": s.get("zone"),
                       "admin_state": s.get("status")}, _state(s.get("state")))

    def volumes_part(fam: Families) -> None:
        volumes = client.paged("volume", "/volumes/detail", "volumes", {"all_tenants": 1, "limit": PAGE})
        by_status = Counter(str(v.get("status") or "unknown") for v in volumes)
        for status in sorted(set(by_status) | {"available", "in-use", "error"}):
            fam.gauge("openstack_cinder_volumes", "Volumes by status (all projects)", {"status": status}, by_status[status])
        fam.gauge("openstack_cinder_volumes_size_bytes", "Total size of all volumes",
                  value=sum(float(v.get("size") or 0) for v in volumes) * GiB)

    return _run(client, "cinder", "volume", services_part, volumes_part)


def collect_glance(client: CloudClient) -> list:
    def body(fam: Families) -> None:
        images = client.paged("image", "/images", "images", {"limit": PAGE})
        fam.gauge("openstack_glance_images", "Images in Glance (visible to the exporter's project: admin sees all)",
                  value=len(images))
        by_status = Counter(str(i.get("status") or "unknown") for i in images)
        for status in sorted(set(by_status) | {"active"}):
            fam.gauge("openstack_glance_images_by_status", "Images by status", {"status": status}, by_status[status])
        fam.gauge("openstack_glance_images_size_bytes", "Total size of all images",
                  value=sum(float(i.get("size") or 0) for i in images))

    return _run(client, "glance", "image", body)


def collect_placement(client: CloudClient, concurrency: int = 8) -> list:
    def body(fam: Families) -> None:
        providers = client.get("placement", "/resource_providers", microversion=PLACEMENT_MICROVERSION).get(
            "resource_providers", [])
        fam.gauge("openstack_placement_resource_providers", "Resource providers in Placement", value=len(providers))

        def fetch(rp: dict) -> tuple[dict, dict, dict]:
            base = f"/resource_providers/{rp['uuid']}"
            inv = client.get("placement", base + "/inventories", microversion=PLACEMENT_MICROVERSION)
            use = client.get("placement", base + "/usages", microversion=PLACEMENT_MICROVERSION)
            return rp, inv.get("inventories", {}), use.get("usages", {})

        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="placement") as pool:
            fetched = list(pool.map(fetch, providers))
        for rp, inventories, usages in fetched:
            for rclass, inv in sorted(inventories.items()):
                labels = {"hostname": rp.get("name"), "resourcetype": rclass}
                fam.gauge("openstack_placement_resource_inventory", "Inventory total per provider and resource class (openstack-exporter: ..._resource_total)",
                          labels, inv.get("total", 0))
                fam.gauge("openstack_placement_resource_reserved", "Reserved inventory per provider and class",
                          labels, inv.get("reserved", 0))
                fam.gauge("openstack_placement_resource_allocation_ratio", "Allocation ratio per provider and class",
                          labels, inv.get("allocation_ratio", 1.0))
                fam.gauge("openstack_placement_resource_usage", "Usage per provider and resource class",
                          labels, usages.get(rclass, 0))

    return _run(client, "placement", "placement", body)


COLLECTORS: dict[str, Callable[[CloudClient], list]] = {
    "keystone": collect_identity, "nova": collect_nova, "neutron": collect_neutron, "cinder": collect_cinder,
    "glance": collect_glance, "placement": collect_placement,
}


def sources(ctx: ExporterContext) -> list[Source]:
    """One Source per OpenStack service per cloud (config cloud.clouds; empty: OS_CLOUD / OS_*)."""
    cfg, exp = ctx.config.cloud, ctx.config.exporter
    out: list[Source] = []
    for name in ctx.cloud_names:
        client = CloudClient(name, cfg.api_timeout, cfg.interface, cfg.region)
        for service, fn in COLLECTORS.items():
            if service in exp.disabled_collectors:
                continue
            out.append(Source(service, (lambda fn=fn, client=client: fn(client)), cloud=client.label,
                              interval=exp.refresh_interval, timeout=exp.collector_timeout))
    return out
