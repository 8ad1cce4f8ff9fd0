"""The runbook engine on the local host: real commands, real checks through the real runner."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from opsctl import config as configmod
from opsctl import runbook as rb
from opsctl.checkdef import check
from opsctl.components import CATALOG, apply_overrides
from opsctl.errors import LockedError, UsageError
from opsctl.runbook_audit import RunLock, append_audit
from opsctl.inventory import HostSpec, Inventory
from opsctl.secrets import clear_registered, register_secret
from tests_runbook_helpers import GRASTATE, GVWSTATE


def make_check(marker: Path, delay: float = 0.0):
    """A real check: OK once `marker` exists (and is older than `delay` seconds)."""

    @check("demo.marker", runbook="demo-fix", scope="host")
    def run(ctx):
        """The marker file exists."""
        if marker.exists() and time.time() - marker.stat().st_mtime >= delay:
            yield ctx.ok("marker present")
        else:
            yield ctx.critical("marker missing")

    return run


def book(steps, verify_timeout=5, **extra):
    data = {"id": "demo-fix", "title": "Demo", "symptoms": ["marker missing"], "checks": ["demo.marker"],
            "steps": steps, "verify": {"timeout": verify_timeout, "interval": 0.2}, **extra}
    return rb.parse_runbook(data, "<test>")


class Harness:
    def __init__(self, tmp_path: Path, delay: float = 0.0, config: dict | None = None, roles=("controller",)):
        self.marker = tmp_path / "marker"
        self.audit = tmp_path / "audit" / "sub" / "runbooks.log"
        cfg = {"runbooks": {"audit_log": str(self.audit)}, **(config or {})}
        self.config = configmod.parse(cfg)
        self.catalog = apply_overrides(CATALOG, self.config.component_overrides())
        self.target = HostSpec("node1", frozenset(roles))
        self.inventory = Inventory((self.target,), "test")
        self.lines: list[str] = []
        self.answers: list[bool] = []
        self.check = make_check(self.marker, delay)

    def run(self, runbook, *, yes=False, dry_run=False, sets=None, service=None):
        ctx = rb.Context(self.config, self.catalog, self.inventory, [self.check], out=self.lines.append,
                         confirm=lambda prompt: self.answers.pop(0) if self.answers else False)
        variables = rb.base_variables(runbook, self.config, self.catalog, self.target, "node1", service,
                                      {"marker": str(self.marker), **(sets or {})})
        return rb.Engine(runbook, ctx, self.target, variables, yes=yes, dry_run=dry_run).run()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


FIX = [
    {"id": "look", "diagnostic": "Is the marker there?", "run": ["ls", "{marker}"], "expect": {"rc": 0}},
    {"id": "fix", "action": "Create the marker", "run": ["touch", "{marker}"]},
]


def test_action_with_yes_repairs_and_exits_0(tmp_path):
    h = Harness(tmp_path)
    out = h.run(book(FIX), yes=True)
    assert out.exit_code == 0 and out.result == "repaired"
    assert h.marker.exists()
    assert "REPAIRED" in h.text and f"touch {h.marker}" in h.text
    look = out.steps[0]
    assert look.outcome == "unexpected" and look.rc != 0 and "No such file" in look.output
    rec = h.records()[-1]
    assert rec["runbook"] == "demo-fix" and rec["result"] == "repaired" and rec["exit_code"] == 0
    assert rec["user"] and rec["time"] and rec["host"] == "node1"
    assert [s["id"] for s in rec["steps"]] == ["look", "fix"]
    assert rec["verify"][0]["status"] == "OK"
    assert stat.S_IMODE(h.audit.stat().st_mode) == 0o600


def test_dry_run_changes_nothing_and_returns_the_check_status(tmp_path):
    h = Harness(tmp_path)
    out = h.run(book(FIX), dry_run=True)
    assert not h.marker.exists()
    assert out.exit_code == 2 and out.result == "dry-run"
    assert f"touch {h.marker}" in h.text and "dry run: not run" in h.text
    assert h.records()[-1]["steps"][1]["outcome"] == "dry-run"


def test_declined_action_aborts_without_change(tmp_path):
    h = Harness(tmp_path)
    h.answers = [False]
    out = h.run(book(FIX))
    assert out.exit_code == 130 and out.result == "aborted"
    assert not h.marker.exists()
    assert h.records()[-1]["result"] == "aborted"


def test_confirmed_action_runs(tmp_path):
    h = Harness(tmp_path)
    h.answers = [True]
    assert h.run(book(FIX)).exit_code == 0 and h.marker.exists()


def test_failing_action_stops_and_reports_the_check_status(tmp_path):
    h = Harness(tmp_path)
    steps = [{"id": "broken", "action": "Fails", "run": ["false"]}, FIX[1]]
    out = h.run(book(steps), yes=True)
    assert out.exit_code == 2 and out.result == "stopped"
    assert not h.marker.exists()  # the later action did not run
    assert [s.id for s in out.steps] == ["broken"]


def test_missing_command_is_a_failed_action_not_a_crash(tmp_path):
    h = Harness(tmp_path)
    out = h.run(book([{"id": "x", "action": "No such tool", "run": ["opsctl-no-such-command-xyz"]}]), yes=True)
    assert out.result == "stopped" and "command not found" in out.steps[0].output


def test_verify_retries_until_ok_within_the_bound(tmp_path):
    h = Harness(tmp_path, delay=1.0)
    t0 = time.monotonic()
    out = h.run(book(FIX, verify_timeout=10), yes=True)
    assert out.exit_code == 0 and 1.0 <= time.monotonic() - t0 < 10
    assert "still CRITICAL" in h.text


def test_verify_gives_up_at_its_bound(tmp_path):
    h = Harness(tmp_path)
    t0 = time.monotonic()
    out = h.run(book([{"id": "noop", "action": "Does not fix it", "run": ["true"]}], verify_timeout=1.5), yes=True)
    assert out.exit_code == 2 and out.result == "not-repaired"
    assert 1.5 <= time.monotonic() - t0 < 6
    assert "NOT REPAIRED" in h.text


def test_already_ok_is_exit_0_result_ok(tmp_path):
    h = Harness(tmp_path)
    h.marker.touch()
    out = h.run(book([{"id": "look", "diagnostic": "ls", "run": ["ls", "{marker}"]}]), yes=True)
    assert out.exit_code == 0 and out.result == "ok"


def test_diagnostic_retry_is_bounded(tmp_path):
    h = Harness(tmp_path)
    steps = [{"id": "wait", "diagnostic": "wait for marker", "run": ["ls", "{marker}"], "expect": {"rc": 0},
              "retry": {"timeout": 1, "interval": 0.2}, "required": True}, FIX[1]]
    t0 = time.monotonic()
    out = h.run(book(steps), yes=True)
    assert time.monotonic() - t0 < 5
    assert out.result == "stopped" and not h.marker.exists()


def test_when_and_foreach(tmp_path):
    h = Harness(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    steps = [
        {"id": "list", "diagnostic": "names (and a warning on stderr)",
         "run": ["sh", "-c", 'printf "%s\\n%s\\n" "$1" "$2"; echo "WARNING: deprecated" >&2', "sh", str(a), str(b)]},
        {"id": "make", "action": "create each", "run": ["touch", "{item}"], "foreach": "list"},
        {"id": "ok", "diagnostic": "passes", "run": ["true"]},
        {"id": "never", "action": "only if ok failed", "run": ["touch", "{marker}"], "when": {"step": "ok", "outcome": "failed"}},
        {"id": "yes", "action": "only if ok passed", "run": ["touch", "{marker}"], "when": {"step": "ok", "outcome": "passed"}},
    ]
    out = h.run(book(steps), yes=True)
    assert a.exists() and b.exists()
    assert [s.argv[-1] for s in out.steps if s.id == "make"] == [str(a), str(b)]  # stderr is not an item
    assert [s.outcome for s in out.steps if s.id == "never"] == ["skipped"]
    assert out.exit_code == 0


def test_argv_templating_never_builds_shell_strings(tmp_path):
    h = Harness(tmp_path)
    evil = f"$(touch {tmp_path}/pwned); rm -rf /nonexistent"
    steps = [{"id": "echo", "diagnostic": "echo the value", "run": ["echo", "{value}"]}]
    out = h.run(book(steps, vars={"value": ""}), sets={"value": evil})
    assert out.steps[0].output.strip() == evil
    assert not (tmp_path / "pwned").exists()


def test_list_variables_splice_into_argv():
    argv = rb.render_argv(["{restart_argv}", "--x={unit}", "%{{http_code}}"], {"restart_argv": ["docker", "restart", "nova_compute"], "unit": "u"})
    assert argv == ["docker", "restart", "nova_compute", "--x=u", "%{http_code}"]
    with pytest.raises(UsageError):
        rb.render_argv(["{nope}"], {})


def test_catalog_restart_override_reaches_the_runbook(tmp_path):
    h = Harness(tmp_path, config={"components": {"nova": {"services": {"nova-compute": {"restart": ["echo", "restarted"]}}}}})
    variables = rb.base_variables(book(FIX), h.config, h.catalog, h.target, "node1", "nova-compute", {})
    assert variables["restart_argv"] == ["echo", "restarted"] and variables["unit"] == "nova-compute"
    default = rb.base_variables(book(FIX), configmod.Config(), CATALOG, h.target, "node1", "cinder-volume", {})
    assert default["restart_argv"] == ["systemctl", "restart", "cinder-volume"]


def test_missing_required_variable_is_a_usage_error(tmp_path):
    h = Harness(tmp_path)
    with pytest.raises(UsageError) as err:
        rb.base_variables(book(FIX, vars={"server": None}), h.config, h.catalog, h.target, "node1", None, {})
    assert "--set server=" in err.value.hint


def test_empty_optional_variable_skips_its_step(tmp_path):
    h = Harness(tmp_path)
    steps = [{"id": "show", "diagnostic": "show server", "run": ["echo", "{server}"]}, FIX[1]]
    out = h.run(book(steps, vars={"server": ""}), yes=True)
    assert out.steps[0].outcome == "skipped" and "--set server=" in h.text and out.exit_code == 0


def test_secrets_are_masked_in_output_and_audit(tmp_path):
    h = Harness(tmp_path)
    register_secret("Sup3rS3cretValue")
    try:
        steps = [{"id": "leak", "diagnostic": "prints a secret", "run": ["echo", "password=Sup3rS3cretValue"]}, FIX[1]]
        h.run(book(steps), yes=True)
    finally:
        clear_registered()
    assert "Sup3rS3cretValue" not in h.text
    assert "Sup3rS3cretValue" not in h.audit.read_text()


def test_tail_logs_reads_the_catalog_logs(tmp_path):
    log = tmp_path / "svc.log"
    log.write_text("".join(f"2026-11-24 12:00:{i % 60:02d} INFO line {i}\n" for i in range(5000))
                   + "2026-11-24 12:01:00 ERROR oslo.messaging AMQP server is unreachable\n")
    h = Harness(tmp_path, config={"components": {"nova": {"services": {"nova-compute": {"logs": [str(tmp_path / "*.log")]}}}}})
    steps = [{"id": "log", "diagnostic": "errors", "builtin": "tail_logs", "pattern": "ERROR", "lines": 5}, FIX[1]]
    out = h.run(book(steps), yes=True, service="nova-compute")
    assert "AMQP server is unreachable" in out.steps[0].output and "INFO" not in out.steps[0].output


def test_galera_step_reads_state_files_and_refuses_while_mariadb_runs(tmp_path):
    (tmp_path / "grastate.dat").write_text(GRASTATE.format(seqno=8204503945773, safe=0))
    (tmp_path / "gvwstate.dat").write_text(GVWSTATE)
    h = Harness(tmp_path, config={"runbooks": {"audit_log": str(tmp_path / "a.log"), "mysql_datadir": str(tmp_path)}})
    h.audit = tmp_path / "a.log"
    steps = [{"id": "choose", "diagnostic": "choose", "builtin": "galera_bootstrap", "where": "role:controller"},
             {"id": "boot", "action": "bootstrap", "run": ["touch", "{marker}"], "where": "host:{bootstrap_host}"}]
    out = h.run(book(steps), yes=True)
    text = out.steps[0].output
    assert "seqno 8204503945773" in text and "gvwstate.dat present" in text
    running = subprocess.run(["pgrep", "-x", "mariadbd|mysqld"], capture_output=True).returncode == 0
    if running:  # e.g. the testbed's MariaDB on this machine: bootstrapping must be refused
        assert out.result == "stopped" and "RUNNING" in text and not h.marker.exists()
    else:
        assert "bootstrap node: node1" in text and h.marker.exists()


def _append_many(path: str, worker: int) -> None:
    for i in range(200):
        append_audit(path, {"worker": worker, "i": i, "pad": "x" * 3000})


def test_audit_append_is_concurrency_safe_and_private(tmp_path):
    path = tmp_path / "deep" / "dir" / "audit.log"
    old = os.umask(0o022)
    try:
        procs = [multiprocessing.Process(target=_append_many, args=(str(path), w)) for w in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
    finally:
        os.umask(old)
    lines = path.read_text().splitlines()
    assert len(lines) == 800
    assert {(d["worker"], d["i"]) for d in map(json.loads, lines)} == {(w, i) for w in range(4) for i in range(200)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_audit_log_unwritable_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(rb.OpsctlError) as err:
        append_audit(blocker / "audit.log", {"x": 1})
    assert "audit log" in err.value.message


def test_missing_check_fails_before_any_step_runs(tmp_path):
    h = Harness(tmp_path)
    b = rb.parse_runbook({"id": "demo-fix", "title": "Demo", "symptoms": ["s"], "checks": ["demo.not_installed"],
                          "steps": FIX}, "<test>")
    with pytest.raises(rb.DataError):
        h.run(b, yes=True)
    assert not h.marker.exists() and not h.audit.exists()


def test_service_is_inferred_from_the_failing_results(tmp_path):
    from opsctl.results import Result, Status

    def res(check, status, runbook, summary="", metrics=None):
        return Result(check=check, host="node1", status=status, summary=summary, runbook=runbook, metrics=metrics or {})

    results = [
        res("host.processes", Status.OK, None, "nova-api: 4 process(es)", {"processes:nova-api": 4}),
        res("host.processes", Status.CRITICAL, "service-down", "nova-conductor is NOT running", {"processes:nova-conductor": 0}),
        res("host.processes", Status.CRITICAL, "nova-compute-down", "nova-compute is NOT running", {"processes:nova-compute": 0}),
        res("nova.compute_services_up", Status.CRITICAL, "service-down", "down: nova-scheduler on minios (last seen 40s ago)"),
    ]
    assert rb.services_in(results, "service-down", CATALOG) == ["nova-conductor", "nova-scheduler"]
    assert rb.services_in(results, "nova-compute-down", CATALOG) == ["nova-compute"]


def test_infer_service_runs_the_runbooks_checks_on_the_target(tmp_path):
    from opsctl.checkdef import check as mkcheck

    @mkcheck("demo.procs", runbook="demo-fix")
    def procs(ctx):
        """One failing service."""
        yield ctx.critical("glance-api is NOT running", metrics={"processes:glance-api": 0})
        yield ctx.ok("keystone fine", metrics={"processes:keystone": 1})

    h = Harness(tmp_path)
    ctx = rb.Context(h.config, h.catalog, h.inventory, [procs])
    b = book(FIX, vars={"service": None}, checks=["demo.procs"])
    assert rb.needs_service(b, None, {})
    assert rb.infer_service(ctx, b, h.target) == "glance-api"
    assert not rb.needs_service(b, "nova-api", {})


def test_foreach_never_acts_on_the_output_of_a_failed_step(tmp_path):
    h = Harness(tmp_path)
    steps = [
        {"id": "list", "diagnostic": "fails but prints", "run": ["sh", "-c", 'echo "$1"; exit 3', "sh", "{marker}"]},
        {"id": "make", "action": "create each", "run": ["touch", "{item}"], "foreach": "list"},
    ]
    out = h.run(book(steps), yes=True)
    assert out.result == "stopped" and not h.marker.exists()
    dry = h.run(book(steps), dry_run=True)
    assert dry.result == "dry-run" and "a real run would stop here" in h.text


def test_infer_service_falls_back_to_the_runbook_default(tmp_path):
    from opsctl.checkdef import check as mkcheck

    @mkcheck("demo.agents", runbook="demo-fix", scope="cloud", needs=("cloud",))
    def agents(ctx):
        """A dead DHCP agent on node1, as neutron.agents_alive words it."""
        yield ctx.critical("DHCP agent (neutron-dhcp-agent) on node1 dead (last heartbeat 40s ago)", host="node1")

    @mkcheck("demo.quiet", runbook="demo-fix", scope="cloud", needs=("cloud",))
    def quiet(ctx):
        """Nothing wrong."""
        yield ctx.ok("fine", host="node1")

    h = Harness(tmp_path)
    ctx = rb.Context(h.config, h.catalog, h.inventory, [agents, quiet])
    b = book(FIX, checks=["demo.agents"], service="neutron-openvswitch-agent", infer_service=True)
    assert rb.infer_service(ctx, b, h.target, fallback=b.service) == "neutron-dhcp-agent"
    b2 = book(FIX, checks=["demo.quiet"], service="neutron-openvswitch-agent", infer_service=True)
    assert rb.infer_service(ctx, b2, h.target, fallback=b2.service) == "neutron-openvswitch-agent"


def test_one_run_per_runbook_and_host_at_a_time(tmp_path):
    audit_log = tmp_path / "logs" / "runbooks.log"
    with RunLock(audit_log, "demo-fix", "node1"):
        with pytest.raises(LockedError) as err:
            with RunLock(audit_log, "demo-fix", "node1"):
                pass
        assert f"pid {os.getpid()}" in err.value.message and err.value.exit_code == 75
        with RunLock(audit_log, "demo-fix", "node2"):  # another host is fine
            pass
    with RunLock(audit_log, "demo-fix", "node1"):  # released
        pass


def test_step_error_mid_run_is_audited_as_stopped(tmp_path):
    h = Harness(tmp_path)
    steps = [FIX[0], {"id": "where", "action": "on a host not in the inventory", "run": ["true"], "where": "host:{other}"}]
    out = h.run(book(steps, vars={"other": "nowhere"}), yes=True)
    assert out.result == "stopped" and out.exit_code == 2
    assert "nowhere" in h.records()[-1]["message"]


def test_api_check_results_name_the_components_api_service():
    from opsctl.results import Result, Status

    results = [Result(check="nova.api", host="cloud", status=Status.CRITICAL, summary="compute API: connection refused",
                      runbook="api-endpoint-down")]
    assert rb.services_in(results, "api-endpoint-down", CATALOG) == ["nova-api"]


def test_unwritable_audit_log_stops_before_any_step(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    h = Harness(tmp_path, config={"runbooks": {"audit_log": str(blocker / "audit.log")}})
    with pytest.raises(rb.OpsctlError) as err:
        h.run(book(FIX), yes=True)
    assert "audit log" in err.value.message and not h.marker.exists()


def test_audit_records_the_variables(tmp_path):
    h = Harness(tmp_path)
    h.run(book(FIX), yes=True, sets={"server": "abc-123"})
    rec = h.records()[-1]
    assert rec["vars"]["server"] == "abc-123" and rec["vars"]["marker"] == str(h.marker)


def test_runbooks_that_name_their_hosts_need_no_target():
    inventory = Inventory((HostSpec("db1", frozenset({"controller"}), "10.0.0.1"), HostSpec("db2", frozenset({"controller"}), "10.0.0.2")), "t")
    galera = rb.load_runbooks()["galera-not-synced"]
    assert not galera.uses_target
    spec, subject = rb.resolve_target(galera, inventory, "10.0.0.100")  # the database VIP the check reported
    assert spec.is_local and subject == "10.0.0.100"
    assert rb.resolve_target(galera, inventory, None)[0].is_local
    nova = rb.load_runbooks()["mariadb-down"]
    assert nova.uses_target
    with pytest.raises(UsageError):
        rb.resolve_target(nova, inventory, None)
    assert rb.resolve_target(nova, inventory, "10.0.0.2")[0].name == "db2"
