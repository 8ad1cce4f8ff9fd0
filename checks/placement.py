"""Placement: API latency; every hypervisor has its resource provider and no compute provider is orphaned."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

from opsctl.checkdef import CheckContext, check
from opsctl.checks._api import WEEKLY, api_probe_check, connection, fetch, names_list, raw_get, with_latency
from opsctl.results import Result

API = api_probe_check("placement", "placement", lambda conn: raw_get(conn.placement, "/"))


@check("placement.resource_providers", needs=("cloud",), scope="cloud", runbook="placement-inventory-mismatch",
       profiles=WEEKLY,
       remediation="A hypervisor without a provider cannot get instances: restart its nova-compute (it recreates the "
                   "provider). A provider without a hypervisor is left over from a removed compute node: delete its "
                   "compute service (openstack compute service delete) or the provider after checking allocations.")
def resource_providers(ctx: CheckContext) -> Iterable[Result]:
    """Root resource providers match the Nova hypervisors (compute node UUID = provider UUID)."""
    conn = connection(ctx)
    hypervisors, t1 = fetch("hypervisors", conn.compute.hypervisors, details=True)
    providers, t2 = fetch("resource providers", conn.placement.resource_providers)

    def has_vcpu(provider: Any) -> bool:
        inventories = conn.placement.resource_provider_inventories(provider)
        return any(inv.resource_class == "VCPU" for inv in inventories)

    yield from with_latency(evaluate_providers(ctx, hypervisors, providers, has_vcpu), t1 + t2)


def evaluate_providers(ctx: CheckContext, hypervisors: Iterable[Any], providers: Iterable[Any],
                       is_compute: Callable[[Any], bool] = lambda p: True) -> Iterator[Result]:
    """is_compute(provider): whether an unmatched root provider is a compute node (has VCPU inventory)."""
    hypervisors, providers = list(hypervisors), list(providers)
    roots = [p for p in providers if not p.parent_provider_id]
    by_id = {p.id: p for p in providers}
    by_name = {p.name: p for p in providers}
    # since compute API 2.53 the hypervisor id is the compute node UUID, which is its provider's UUID;
    # older microversions give integer ids, then the provider name (= hypervisor_hostname) is used
    missing = [h for h in hypervisors if str(h.id) not in by_id and h.name not in by_name]
    known = {str(h.id) for h in hypervisors} | {h.name for h in hypervisors}
    # roots that are not compute nodes (sharing storage pools, ...) have no VCPU inventory: not orphans
    orphans = [p for p in roots if p.id not in known and p.name not in known and is_compute(p)]
    metrics = {"hypervisors": len(hypervisors), "resource_providers": len(providers),
               "hypervisors_without_provider": len(missing), "orphan_providers": len(orphans)}
    if missing:
        yield ctx.critical(f"hypervisor(s) without a placement resource provider: {names_list([h.name for h in missing])}",
                           metrics=metrics)
    if orphans:
        yield ctx.warning(f"resource provider(s) with no Nova hypervisor: {names_list([f'{p.name} ({p.id})' for p in orphans])}",
                          metrics=metrics)
    if not missing and not orphans:
        yield ctx.ok(f"{len(hypervisors)} hypervisor(s), {len(roots)} root resource provider(s): all matched",
                     metrics=metrics)


CHECKS = [API, resource_providers]
