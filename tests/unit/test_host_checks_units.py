"""host.systemd_units decisions. No systemd runs on this test machine (PID 1 is not systemd, so no real
unit can be started or failed here): a stand-in host answers `systemctl show` with the key=value blocks
systemd prints. The no-systemd skip path is tested for real in the integration and e2e tests."""

from opsctl.checkdef import CheckContext
from opsctl.checks.host import systemd_units
from opsctl.components import CATALOG, apply_overrides
from opsctl.config import Config, parse
from opsctl.hosts import CommandResult
from opsctl.inventory import HostSpec
from opsctl.results import Status

STATES = {
    "nova-compute.service": ("loaded", "failed", "failed", "enabled"),
    "site-api.service": ("loaded", "active", "running", "enabled"),
    "site-worker.service": ("loaded", "active", "running", "disabled"),
    "site-masked.service": ("masked", "inactive", "dead", "masked"),
    "site-starting.service": ("loaded", "activating", "start", "enabled"),
}


class SystemctlHost:
    """Answers `systemctl show -p ... -- UNIT...` like systemd 252; /run/systemd/system exists."""

    name = "cmp1"

    def __init__(self):
        self.calls = []

    def exists(self, path):
        return path == "/run/systemd/system"

    def run(self, argv, timeout=30, input=None):
        self.calls.append(list(argv))
        units = argv[argv.index("--") + 1:]
        blocks = []
        for unit in units:
            load, active, sub, file_state = STATES.get(unit, ("not-found", "inactive", "dead", ""))
            blocks.append(f"Id={unit}\nLoadState={load}\nActiveState={active}\nSubState={sub}\nUnitFileState={file_state}\n")
        return CommandResult(tuple(argv), 0, "\n".join(blocks), "", 0.01)


def _results(roles, components=None, monkeypatch=None):
    from opsctl.checks import _hostfacts as facts

    # every component counts as installed on the stand-in host (its config dirs exist); nothing runs
    monkeypatch.setattr(facts, "processes", lambda ctx: [])
    monkeypatch.setattr(facts, "path_exists", lambda ctx, path: True)
    monkeypatch.setattr(facts, "glob", lambda ctx, pattern: [])
    catalog = apply_overrides(CATALOG, components or {})
    host = SystemctlHost()
    config = parse({"components": components or {}})
    ctx = CheckContext(systemd_units, "cmp1", config, catalog, dict(systemd_units.thresholds), host=host,
                       spec=HostSpec("cmp1", frozenset(roles)))
    return {r.summary.split()[0].rstrip(":"): r for r in systemd_units.func(ctx)}, host


def test_failed_unit_is_critical_with_the_service_runbook(monkeypatch):
    results, host = _results(["compute"], {"neutron": {"services": {"neutron-openvswitch-agent": {"roles": []}}}}, monkeypatch)
    r = results["nova-compute"]
    assert r.status == Status.CRITICAL and "nova-compute.service failed (failed) on cmp1" in r.summary
    assert r.runbook == "nova-compute-down" and "journalctl -u nova-compute.service" in r.remediation
    assert len(host.calls) == 1  # one systemctl call for every unit of the host


def test_missing_unit_names_what_was_tried(monkeypatch):
    # the operator lists the agent for this deployment, so it is expected although it never ran here
    results, _ = _results(["compute"], {"neutron": {"services": {"neutron-openvswitch-agent": {"roles": ["compute"]}}}}, monkeypatch)
    r = results["neutron-openvswitch-agent"]
    assert r.status == Status.WARNING and "no unit installed (tried neutron-openvswitch-agent, neutron-plugin-openvswitch-agent)" in r.summary
    assert r.runbook == "neutron-agent-dead" and "components.neutron.services.neutron-openvswitch-agent.units" in r.remediation


def test_active_disabled_masked_and_starting_units(monkeypatch):
    site = {"site": {"services": {
        "site-api": {"roles": ["controller"], "units": ["site-api"]},
        "site-worker": {"roles": ["controller"], "units": ["site-worker.service"]},
        "site-masked": {"roles": ["controller"], "units": ["site-masked"]},
        "site-starting": {"roles": ["controller"], "units": ["site-starting"]},
        "site-nounits": {"roles": ["controller"], "processes": ["x"]},
    }}}
    only_site = {c: {"services": {s.name: {"roles": []} for s in comp.services}} for c, comp in CATALOG.items()}
    results, _ = _results(["controller"], {**only_site, **site}, monkeypatch)
    assert set(results) == {"site-api", "site-worker", "site-masked", "site-starting"}
    assert results["site-api"].status == Status.OK and results["site-api"].runbook is None
    assert results["site-worker"].status == Status.WARNING and "disabled: will not start at boot" in results["site-worker"].summary
    assert results["site-masked"].status == Status.CRITICAL and "is masked" in results["site-masked"].summary
    assert results["site-starting"].status == Status.WARNING


def test_no_units_expected_is_ok(monkeypatch):
    results, host = _results([], monkeypatch=monkeypatch)
    assert [r.status for r in results.values()] == [Status.OK] and not host.calls


class TimedatectlHost:
    """A systemd host without chronyd/ntpd: `ps` shows systemd only, `timedatectl show` answers as given."""

    name = "ctl1"

    def __init__(self, show: str):
        self.show = show

    def exists(self, path):
        return path == "/run/systemd/system"

    def run(self, argv, timeout=30, input=None):
        if argv[0] == "ps":
            out = "    1     0 systemd         /sbin/init\n  412     1 systemd-journal /lib/systemd/systemd-journald\n"
        else:
            out = self.show
        return CommandResult(tuple(argv), 0, out, "", 0.01)


def _time_result(show):
    from opsctl.checks.host import time_sync

    ctx = CheckContext(time_sync, "ctl1", Config(), CATALOG, dict(time_sync.thresholds), host=TimedatectlHost(show),
                       spec=HostSpec("ctl1", frozenset()))
    results = list(time_sync.func(ctx))
    assert len(results) == 1
    return results[0]


def test_timedatectl_paths_on_a_systemd_host():
    synced = _time_result("Timezone=UTC\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n")
    assert synced.status == Status.OK and "timedatectl" in synced.summary
    unsynced = _time_result("Timezone=UTC\nCanNTP=yes\nNTP=yes\nNTPSynchronized=no\n")
    assert unsynced.status == Status.CRITICAL and "clock of ctl1 is NOT synchronised" in unsynced.summary
    assert unsynced.runbook == "time-sync"
    none = _time_result("Timezone=UTC\nCanNTP=no\nNTP=no\nNTPSynchronized=no\n")
    assert none.status == Status.WARNING and "no time synchronisation daemon runs on ctl1" in none.summary
    assert "NTP=no" in none.summary
