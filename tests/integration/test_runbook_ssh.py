"""Runbook steps run on the right inventory host over SSH (real sshd hosts in network namespaces)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import servers
from opsctl import config as configmod
from opsctl import runbook as rb
from opsctl.cli.common import build_inventory
from opsctl.components import CATALOG
from opsctl.checkdef import check


@pytest.fixture(scope="module")
def rb_hosts():
    hosts = servers.SSHHosts(servers.tempdir("rbssh"), ["db1", "db2", "cmp1"], prefix="rbk", first_octet=170).start()
    yield hosts
    hosts.cleanup()


@check("demo.remote", scope="host")
def remote_check(ctx):
    """Reports the host's eth0 address (runs over SSH)."""
    out = ctx.host.run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"], timeout=10)
    yield ctx.ok(out.stdout.split()[3] if out.ok else "no eth0")


def setup(tmp_path: Path, hosts):
    inv = hosts.inventory({"db1": ["controller"], "db2": ["controller"], "cmp1": ["compute"]})
    config = configmod.parse({"inventory": inv, "runbooks": {"audit_log": str(tmp_path / "audit.log")}})
    inventory = build_inventory(config, CATALOG)
    lines: list[str] = []
    ctx = rb.Context(config, CATALOG, inventory, [remote_check], out=lines.append)
    return config, inventory, ctx, lines


def book(steps, role="compute"):
    return rb.parse_runbook({"id": "demo", "title": "t", "symptoms": ["s"], "role": role, "steps": steps,
                             "verify": {"checks": ["demo.remote"], "timeout": 1}}, "<test>")


ADDR = ["ip", "-o", "-4", "addr", "show", "dev", "eth0"]


def test_steps_run_on_target_role_and_named_hosts(tmp_path, rb_hosts):
    config, inventory, ctx, lines = setup(tmp_path, rb_hosts)
    b = book([
        {"id": "here", "diagnostic": "target", "run": ADDR},
        {"id": "ctl", "diagnostic": "every controller", "run": ADDR, "where": "role:controller"},
        {"id": "one", "action": "on a named host", "run": ADDR, "where": "host:{pick}"},
    ])
    target, subject = rb.resolve_target(b, inventory, None)
    assert target.name == "cmp1"  # the only compute host
    variables = rb.base_variables(b, config, CATALOG, target, subject, None, {"pick": "db2"})
    out = rb.Engine(b, ctx, target, variables, yes=True).run()
    by = {(s.id, s.host): s for s in out.steps}
    addr = {n: s.address for n, s in rb_hosts.hosts.items()}
    assert addr["cmp1"] in by[("here", "cmp1")].output
    assert addr["db1"] in by[("ctl", "db1")].output and addr["db2"] in by[("ctl", "db2")].output
    assert addr["db2"] in by[("one", "db2")].output and by[("one", "db2")].outcome == "done"
    assert out.exit_code == 0 and out.verify[0]["summary"].startswith(addr["cmp1"])  # the re-check ran on cmp1 too
    rec = json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])
    assert rec["host"] == "cmp1" and rec["result"] == "repaired"


def test_unreachable_host_is_an_error_step_not_a_crash(tmp_path, rb_hosts):
    config, inventory, ctx, lines = setup(tmp_path, rb_hosts)
    rb_hosts.stop_sshd("db2")
    try:
        b = book([{"id": "ctl", "diagnostic": "every controller", "run": ADDR, "where": "role:controller"}])
        target, subject = rb.resolve_target(b, inventory, "cmp1")
        variables = rb.base_variables(b, config, CATALOG, target, subject, None, {})
        out = rb.Engine(b, ctx, target, variables, yes=True).run()
    finally:
        rb_hosts.start_sshd("db2")
    outcomes = {s.host: s.outcome for s in out.steps}
    assert outcomes == {"db1": "passed", "db2": "error"}
    assert "cannot connect" in next(s.output for s in out.steps if s.host == "db2")


def test_ambiguous_target_needs_host(tmp_path, rb_hosts):
    config, inventory, ctx, lines = setup(tmp_path, rb_hosts)
    with pytest.raises(rb.UsageError) as err:
        rb.resolve_target(book([{"id": "x", "diagnostic": "x", "run": ["true"]}], role="controller"), inventory, None)
    assert "db1" in err.value.hint and "db2" in err.value.hint
    spec, subject = rb.resolve_target(book([{"id": "x", "diagnostic": "x", "run": ["true"]}], role="controller"), inventory,
                                      rb_hosts.hosts["db2"].address)
    assert spec.name == "db2"
