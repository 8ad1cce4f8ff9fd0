"""Evaluation logic of the cloud API checks, fed with real API response samples (../shared/data/api)
turned into openstacksdk resource objects exactly as the SDK builds them from a response body.

Failure cases start from a real sample and change one field (a service goes down, an agent dies...),
so the shapes stay those of the real APIs.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone

import pytest
from openstack.block_storage.v3.service import Service as CinderService
from openstack.block_storage.v3.volume import Volume
from openstack.compute.v2.hypervisor import Hypervisor
from openstack.compute.v2.server import Server
from openstack.compute.v2.service import Service as NovaService
from openstack.image.v2.image import Image
from openstack.network.v2.agent import Agent
from openstack.network.v2.network_ip_availability import NetworkIPAvailability
from openstack.network.v2.port import Port
from openstack.placement.v1.resource_provider import ResourceProvider

from opsctl.checkdef import CheckContext
from opsctl.checks import _api, cinder, glance, keystone, neutron, nova, placement, swift
from opsctl.components import CATALOG
from opsctl.config import Config
from opsctl.results import Status

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def ctx_for(chk, **thresholds):
    return CheckContext(chk, "testcloud", Config(), CATALOG, {**chk.thresholds, **thresholds})


def load(shared_data, rel):
    return json.loads((shared_data / "api" / rel).read_text())


def build(cls, items):
    """Resource objects filled from response bodies the way openstacksdk does it (_translate_response);
    a body may hold keys such as 'self' that cannot go through keyword arguments."""
    objs = []
    for item in items:
        obj = cls.existing()
        obj._body.attributes.update(obj._consume_body_attrs(copy.deepcopy(item)))
        obj._body.clean()
        objs.append(obj)
    return objs


def by_host(results):
    return {r.host: r for r in results}


# ------------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize("text", ["2012-10-29T13:42:02.000000", "2017-09-12 19:40:08", "2019-04-23T15:19:15Z",
                                  "2019-04-23T15:19:15+00:00"])
def test_parse_time_accepts_every_api_spelling(text):
    parsed = _api.parse_time(text)
    assert parsed is not None and parsed.tzinfo is not None


def test_parse_time_garbage_is_none():
    assert _api.parse_time("yesterday") is None and _api.parse_time(None) is None


def test_short_host_strips_cinder_backend_and_pool():
    assert _api.short_host("minios@fake#pool0") == "minios"
    assert _api.short_host(None) == "unknown"


# ------------------------------------------------------------------------------------ nova services
@pytest.mark.parametrize("rel", ["openstack-exporter/fixtures/nova_os_services.json",
                                 "nova_api_samples/os-services/v2.53/services-list-get-resp.json"])
def test_nova_services_sample_down_scheduler_is_critical_and_named(shared_data, rel):
    services = build(NovaService, load(shared_data, rel)["services"])
    results = by_host(nova.evaluate_services_up(ctx_for(nova.compute_services_up), services, NOW))
    assert results["host1"].status == Status.OK
    host2 = results["host2"]
    # nova-scheduler on host2 is down and enabled: CRITICAL; nova-compute there is down but disabled
    assert host2.status == Status.CRITICAL
    assert "nova-scheduler on host2" in host2.summary and "zone internal" in host2.summary
    assert host2.runbook == "service-down"
    assert host2.metrics["services_down"] == 2


def test_nova_compute_down_uses_the_compute_runbook(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/nova_os_services.json")["services"]
    for s in raw:
        s.update(status="enabled", disabled_reason=None)
        if s["host"] == "host2" and s["binary"] == "nova-scheduler":
            s["state"] = "up"
    results = by_host(nova.evaluate_services_up(ctx_for(nova.compute_services_up), build(NovaService, raw), NOW))
    r = results["host2"]
    assert r.status == Status.CRITICAL and r.runbook == "nova-compute-down"
    assert r.summary.startswith("down: nova-compute on host2 (zone nova, last report")


def test_nova_service_down_but_disabled_is_a_warning(shared_data):
    raw = [s for s in load(shared_data, "openstack-exporter/fixtures/nova_os_services.json")["services"]
           if s["binary"] == "nova-compute"]
    r = by_host(nova.evaluate_services_up(ctx_for(nova.compute_services_up), build(NovaService, raw), NOW))["host2"]
    assert r.status == Status.WARNING and "disabled: test4" in r.summary


def test_forced_down_service_counts_as_down(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/nova_os_services.json")["services"][:1]
    raw[0].update(forced_down=True, status="enabled")
    r = next(iter(nova.evaluate_services_up(ctx_for(nova.compute_services_up), build(NovaService, raw), NOW)))
    assert r.status == Status.CRITICAL and "forced down" in r.summary


def test_nova_disabled_services_name_reason_host_and_zone(shared_data):
    services = build(NovaService, load(shared_data, "openstack-exporter/fixtures/nova_os_services.json")["services"])
    results = by_host(_api.disabled_results(ctx_for(nova.services_disabled), services, NOW, "nova"))
    assert results["host1"].status == Status.WARNING
    assert "nova-compute on host1 (zone nova" in results["host1"].summary and "disabled: test2" in results["host1"].summary
    assert results["host1"].runbook == "nova-service-disabled"


def test_no_services_is_not_a_failure():
    assert [r.status for r in nova.evaluate_services_up(ctx_for(nova.compute_services_up), [], NOW)] == [Status.OK]


# ------------------------------------------------------------------------------------ hypervisors
def test_hypervisor_sample_up_is_ok_and_down_is_critical(shared_data):
    raw = load(shared_data, "nova_api_samples/os-hypervisors/v2.88/hypervisors-detail-resp.json")["hypervisors"]
    ok = list(nova.evaluate_hypervisors(ctx_for(nova.hypervisors), build(Hypervisor, raw)))
    assert [(r.host, r.status) for r in ok] == [("host2", Status.OK)]
    raw[0]["state"] = "down"
    down = list(nova.evaluate_hypervisors(ctx_for(nova.hypervisors), build(Hypervisor, raw)))[0]
    assert down.status == Status.CRITICAL and "host2" in down.summary and down.runbook == "nova-compute-down"


def test_disabled_hypervisor_warns_with_reason(shared_data):
    raw = load(shared_data, "nova_api_samples/os-hypervisors/v2.88/hypervisors-detail-resp.json")["hypervisors"]
    raw[0]["status"] = "disabled"
    raw[0]["service"]["disabled_reason"] = "maintenance"
    r = list(nova.evaluate_hypervisors(ctx_for(nova.hypervisors), build(Hypervisor, raw)))[0]
    assert r.status == Status.WARNING and "maintenance" in r.summary


# ------------------------------------------------------------------------------------ instances
def _servers(shared_data):
    return load(shared_data, "openstack-exporter/fixtures/nova_os_servers.json")["servers"]


def test_active_servers_are_ok_and_empty_cloud_is_ok(shared_data):
    ctx = ctx_for(nova.instances_error)
    assert list(nova.evaluate_instances_error(ctx, build(Server, _servers(shared_data)), NOW))[0].status == Status.OK
    assert list(nova.evaluate_instances_error(ctx, [], NOW))[0].status == Status.OK
    assert list(nova.evaluate_instances_stuck(ctx_for(nova.instances_stuck), [], NOW))[0].status == Status.OK


def test_server_in_error_is_reported_with_host_and_fault(shared_data):
    raw = _servers(shared_data)
    raw[0].update(status="ERROR", fault={"code": 500, "message": "No valid host was found."})
    r = list(nova.evaluate_instances_error(ctx_for(nova.instances_error), build(Server, raw), NOW))[0]
    assert r.status == Status.WARNING and r.runbook == "instance-error"
    assert "new-server-test" in r.summary and "host compute" in r.summary and "No valid host" in r.summary
    crit = list(nova.evaluate_instances_error(ctx_for(nova.instances_error, critical=1), build(Server, raw), NOW))[0]
    assert crit.status == Status.CRITICAL


def test_stuck_task_state_only_after_the_threshold(shared_data):
    raw = _servers(shared_data)
    raw[0]["OS-EXT-STS:task_state"] = "spawning"
    raw[0]["updated"] = (NOW - timedelta(minutes=30)).isoformat()
    ctx = ctx_for(nova.instances_stuck, stuck_after_seconds=3600)
    assert list(nova.evaluate_instances_stuck(ctx, build(Server, raw), NOW))[0].status == Status.OK
    raw[0]["updated"] = (NOW - timedelta(hours=3)).isoformat()
    r = list(nova.evaluate_instances_stuck(ctx, build(Server, raw), NOW))[0]
    assert r.status == Status.WARNING and "task spawning for 3.0h" in r.summary and r.runbook == "instance-stuck-task"


# ------------------------------------------------------------------------------------ neutron
@pytest.mark.parametrize("rel", ["neutron-lib_api_ref/agents-list-response.json",
                                 "openstack-exporter/fixtures/neutron_agents.json"])
def test_agents_samples_alive_are_ok_per_host(shared_data, rel):
    agents = build(Agent, load(shared_data, rel)["agents"])
    results = list(neutron.evaluate_agents_alive(ctx_for(neutron.agents_alive), agents, NOW))
    assert results and all(r.status == Status.OK for r in results)
    assert {r.host for r in results} == {_api.short_host(a.host) for a in agents}


def test_dead_agent_is_critical_naming_host_and_type(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/neutron_agents.json")["agents"]
    victim = next(a for a in raw if a["binary"] == "neutron-dhcp-agent")
    victim["alive"] = False
    results = by_host(neutron.evaluate_agents_alive(ctx_for(neutron.agents_alive), build(Agent, raw), NOW))
    r = results[victim["host"]]
    assert r.status == Status.CRITICAL and r.runbook == "neutron-agent-dead"
    assert f"DHCP agent (neutron-dhcp-agent) on {victim['host']} dead" in r.summary
    assert "last heartbeat" in r.summary
    others = [res for h, res in results.items() if h != victim["host"]]
    assert all(o.status == Status.OK for o in others)


def test_dead_agent_that_is_admin_down_only_warns(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/neutron_agents.json")["agents"][:1]
    raw[0].update(alive=False, admin_state_up=False)
    r = list(neutron.evaluate_agents_alive(ctx_for(neutron.agents_alive), build(Agent, raw), NOW))[0]
    assert r.status == Status.WARNING
    admin = list(neutron.evaluate_agents_admin_up(ctx_for(neutron.agents_admin_up), build(Agent, raw)))[0]
    assert admin.status == Status.WARNING and "admin down" in admin.summary


def test_ports_binding_failed(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/neutron_ports.json")["ports"]
    ctx = ctx_for(neutron.ports_binding_failed)
    assert list(neutron.evaluate_ports_binding_failed(ctx, build(Port, raw)))[0].status == Status.OK
    raw[0]["binding:vif_type"] = "binding_failed"
    raw[0]["binding:host_id"] = "compute7"
    r = list(neutron.evaluate_ports_binding_failed(ctx, build(Port, raw)))[0]
    assert r.status == Status.WARNING and "compute7" in r.summary and r.runbook == "neutron-port-binding-failed"


def test_ip_availability_sample_ignores_huge_ipv6_and_flags_full_networks(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/neutron_network_ip_availabilities.json")["network_ip_availabilities"]
    ctx = ctx_for(neutron.network_ip_availability)
    assert list(neutron.evaluate_ip_availability(ctx, build(NetworkIPAvailability, raw)))[0].status == Status.OK
    public = next(n for n in raw if n["network_name"] == "public")
    v4 = next(s for s in public["subnet_ip_availability"] if s["ip_version"] == 4)
    v4["used_ips"] = 240  # 240/253 = 95%
    r = list(neutron.evaluate_ip_availability(ctx, build(NetworkIPAvailability, raw)))[0]
    assert r.status == Status.CRITICAL and "public 240/253 (95%)" in r.summary and r.runbook == "network-ip-exhaustion"
    v4["used_ips"] = 210  # 83%
    assert list(neutron.evaluate_ip_availability(ctx, build(NetworkIPAvailability, raw)))[0].status == Status.WARNING


# ------------------------------------------------------------------------------------ cinder
@pytest.mark.parametrize("rel", ["cinder_api_ref/services-list-response.json",
                                 "openstack-exporter/fixtures/cinder_os_services.json"])
def test_cinder_services_samples(shared_data, rel):
    raw = load(shared_data, rel)["services"]
    results = list(cinder.evaluate_services_up(ctx_for(cinder.services_up), build(CinderService, raw), NOW))
    expected_down = {_api.short_host(s["host"]) for s in raw if s["state"] != "up" and s["status"] == "enabled"}
    assert {r.host for r in results if r.status == Status.CRITICAL} == expected_down


def test_cinder_volume_down_names_backend_host_and_runbook(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/cinder_os_services.json")["services"]
    for s in raw:
        s.update(state="up", status="enabled")
    vol = next(s for s in raw if s["binary"] == "cinder-volume")
    vol["state"] = "down"
    r = by_host(cinder.evaluate_services_up(ctx_for(cinder.services_up), build(CinderService, raw), NOW))[_api.short_host(vol["host"])]
    assert r.status == Status.CRITICAL and r.runbook == "cinder-volume-down"
    assert f"cinder-volume on {vol['host']}" in r.summary


def test_volumes_error_and_stuck(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/cinder_volumes.json")["volumes"]
    ctx = ctx_for(cinder.volumes_error)
    assert list(cinder.evaluate_volumes(ctx, build(Volume, raw), NOW))[0].status == Status.OK
    assert list(cinder.evaluate_volumes(ctx, [], NOW))[0].status == Status.OK  # empty cloud
    raw[0]["status"] = "error_deleting"
    raw[1]["status"] = "creating"
    raw[1]["updated_at"] = (NOW - timedelta(hours=2)).isoformat()
    r = list(cinder.evaluate_volumes(ctx, build(Volume, raw), NOW))[0]
    assert r.status == Status.WARNING and r.runbook == "volume-error"
    assert "1 in error" in r.summary and "error_deleting" in r.summary and "1 stuck" in r.summary
    assert r.metrics["volumes_error"] == 1 and r.metrics["volumes_stuck"] == 1


def test_volume_creating_recently_is_not_stuck(shared_data):
    raw = load(shared_data, "cinder_api_ref/volumes-list-detailed-response.v3.61.json")["volumes"]
    for v in raw:
        v["updated_at"] = (NOW - timedelta(minutes=1)).isoformat()
    r = list(cinder.evaluate_volumes(ctx_for(cinder.volumes_error), build(Volume, raw), NOW))[0]
    assert r.status == Status.OK


# ------------------------------------------------------------------------------------ glance, placement
def test_glance_images_sample_and_killed_image(shared_data):
    raw = load(shared_data, "openstack-exporter/fixtures/glance_images.json")["images"]
    ctx = ctx_for(glance.images)
    ok = list(glance.evaluate_images(ctx, build(Image, raw), 0.1))[0]
    assert ok.status == Status.OK and ok.metrics["images"] == len(raw)
    assert list(glance.evaluate_images(ctx, [], 0.1))[0].status == Status.OK
    raw[0]["status"] = "killed"
    assert list(glance.evaluate_images(ctx, build(Image, raw), 0.1))[0].status == Status.WARNING
    slow = list(glance.evaluate_images(ctx_for(glance.images, latency_warning=0.05), build(Image, raw[1:]), 0.5))[0]
    assert slow.status == Status.WARNING


def test_placement_providers_vs_hypervisors(shared_data):
    rps = build(ResourceProvider, load(shared_data, "openstack-exporter/fixtures/resource_providers.json")["resource_providers"])
    hyps = build(Hypervisor, load(shared_data, "openstack-exporter/fixtures/nova_os_hypervisors.json")["hypervisors"])
    ctx = ctx_for(placement.resource_providers)
    # the fixtures come from different clouds: host1 has no provider, the providers have no hypervisor
    results = list(placement.evaluate_providers(ctx, hyps, rps))
    assert [r.status for r in results] == [Status.CRITICAL, Status.WARNING]
    assert "host1" in results[0].summary and results[0].runbook == "placement-inventory-mismatch"
    # matched by UUID (compute API >= 2.53: hypervisor id = provider uuid)
    matched = [Hypervisor.existing(id=rp.id, hypervisor_hostname=rp.name, state="up", status="enabled") for rp in rps]
    assert [r.status for r in placement.evaluate_providers(ctx, matched, rps)] == [Status.OK]
    # providers without VCPU inventory (sharing pools) are not orphans
    assert [r.status for r in placement.evaluate_providers(ctx, matched[:1], rps, lambda p: False)] == [Status.OK]


# ------------------------------------------------------------------------------------ keystone
def test_catalog_endpoint_targets_from_real_catalogs(shared_data):
    entries = load(shared_data, "keystone_api_ref/get-service-catalog-response.json")["catalog"]
    targets = list(keystone.endpoint_targets(entries))
    assert targets and all(url.startswith("http") for _, _, url in targets)
    assert {i for _, i, _ in targets} <= {"public", "internal", "admin"}
    token = load(shared_data, "openstack-exporter/fixtures/tokens.json")["token"]["catalog"]
    regions = {ep.get("region_id") for e in token for ep in e["endpoints"]}
    region = sorted(r for r in regions if r)[0]
    in_region = set(keystone.endpoint_targets(token, region))
    wanted = {ep["url"] for e in token for ep in e["endpoints"] if ep.get("region_id") in (region, None)}
    assert in_region and {url for _, _, url in in_region} == wanted
    assert in_region <= set(keystone.endpoint_targets(token))


@pytest.mark.parametrize("outcome,status", [((200, 0.1, ""), Status.OK), ((401, 0.1, ""), Status.OK),
                                            ((300, 0.1, ""), Status.OK), ((503, 0.1, ""), Status.CRITICAL),
                                            ((None, 0.0, "ConnectFailure: refused"), Status.CRITICAL),
                                            ((200, 4.0, ""), Status.WARNING), ((200, 9.0, ""), Status.CRITICAL)])
def test_endpoint_evaluation(outcome, status):
    r = keystone.evaluate_endpoint(ctx_for(keystone.catalog_endpoints), "compute", "public", "http://n:8774/v2.1", outcome)
    assert r.status == status
    assert "compute public endpoint http://n:8774/v2.1" in r.summary
    if status != Status.OK:
        assert r.runbook == "api-endpoint-down"


def test_endpoint_probe_against_a_closed_port_is_critical_not_a_traceback():
    import socket

    from keystoneauth1 import session

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outcome = keystone.probe_url(session.Session(), f"http://127.0.0.1:{port}/v3", 2.0)
    assert outcome[0] is None and outcome[2].startswith("connection failed: ")
    r = keystone.evaluate_endpoint(ctx_for(keystone.catalog_endpoints), "identity", "public", f"http://127.0.0.1:{port}/v3", outcome)
    assert r.status == Status.CRITICAL and "unreachable" in r.summary


def test_endpoint_that_accepts_but_never_answers_times_out_within_the_limit():
    import socket
    import time

    from keystoneauth1 import session

    with socket.socket() as srv:  # a real listening socket that never answers
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        url = f"http://127.0.0.1:{srv.getsockname()[1]}/"
        t0 = time.monotonic()
        code, _, error = keystone.probe_url(session.Session(), url, 1.0)
        assert time.monotonic() - t0 < 5
    assert code is None and error.startswith("timed out: ") and "cloud.api_timeout" in error


def _cloud_with_catalog(entries):
    """A stand-in for the openstacksdk connection carrying only a real catalog sample (no cloud needed
    to test the missing-endpoint path); every other attribute access would fail loudly."""
    from types import SimpleNamespace

    access = SimpleNamespace(service_catalog=SimpleNamespace(catalog=entries))
    conn = SimpleNamespace(session=SimpleNamespace(auth=SimpleNamespace(get_access=lambda sess: access)))
    return SimpleNamespace(connection=lambda: conn, label="testcloud")


def test_missing_endpoint_is_critical_and_absent_swift_is_ok(shared_data):
    entries = [e for e in load(shared_data, "keystone_api_ref/get-service-catalog-response.json")["catalog"]
               if e["type"] not in ("compute", "object-store")]
    ctx = ctx_for(nova.API)
    ctx.cloud = _cloud_with_catalog(entries)
    r = list(nova.API.func(ctx))
    assert [x.status for x in r] == [Status.CRITICAL] and "no compute endpoint" in r[0].summary
    sctx = ctx_for(swift.API)
    sctx.cloud = _cloud_with_catalog(entries)
    r = list(swift.API.func(sctx))
    assert [x.status for x in r] == [Status.OK] and "not deployed" in r[0].summary


def test_block_storage_found_under_its_volumev3_alias(shared_data):
    entries = [{"type": "volumev3", "endpoints": []}]
    assert _api.find_service(entries, "block-storage") is not None


def test_api_check_ids_and_runbooks_match_the_shared_table():
    expected = {
        "keystone.token_issue": "keystone-token-failure", "keystone.catalog_endpoints": "api-endpoint-down",
        "nova.compute_services_up": "nova-compute-down", "nova.services_disabled": "nova-service-disabled",
        "nova.hypervisors": "nova-compute-down", "nova.instances_error": "instance-error",
        "nova.instances_stuck": "instance-stuck-task", "neutron.agents_alive": "neutron-agent-dead",
        "neutron.agents_admin_up": "neutron-agent-dead", "neutron.ports_binding_failed": "neutron-port-binding-failed",
        "neutron.network_ip_availability": "network-ip-exhaustion", "cinder.services_up": "cinder-volume-down",
        "cinder.volumes_error": "volume-error", "glance.images": "api-endpoint-down",
        "placement.resource_providers": "placement-inventory-mismatch", "swift.api": "api-endpoint-down",
        **{f"{c}.api": "api-endpoint-down" for c in ("keystone", "nova", "neutron", "cinder", "glance", "placement")},
    }
    checks = {c.id: c for m in (keystone, nova, neutron, cinder, glance, placement, swift) for c in m.CHECKS}
    assert {k: checks[k].runbook for k in expected} == expected
    assert all(c.scope == "cloud" and c.needs == {"cloud"} for c in checks.values())
    assert all(c.remediation for c in checks.values())
