"""Runbooks and checks agree: every runbook validates, names real checks, and every check that can fail
points to a runbook that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from opsctl import registry
from opsctl import runbook as rb

CHECKS_DIR = Path(__file__).resolve().parents[2] / "checks"

# The runbook ids the project agreed on (helper brief, "Shared ids").
AGREED = {
    "host-overload", "host-memory-pressure", "disk-full", "time-sync", "raise-nofile-limit", "nova-compute-down",
    "cinder-volume-down", "neutron-agent-dead", "mariadb-down", "rabbitmq-down", "service-down",
    "keystone-token-failure", "api-endpoint-down", "nova-service-disabled", "instance-error", "instance-stuck-task",
    "neutron-port-binding-failed", "network-ip-exhaustion", "volume-error", "placement-inventory-mismatch",
    "mariadb-connections", "galera-not-synced", "rabbitmq-alarm", "rabbitmq-partitioned", "rabbitmq-queue-backlog",
    "memcached-down", "compute-maintenance",
}


@pytest.fixture(scope="module")
def runbooks():
    return rb.load_runbooks()


@pytest.fixture(scope="module")
def checks():
    loaded, errors = registry.load_checks()
    assert not errors, "check plugins failed to load: " + "; ".join(map(str, errors))
    return {c.id: c for c in loaded}


def test_every_runbook_file_validates():
    files = sorted(rb.runbook_dir().glob("*.yaml"))
    assert len(files) >= len(AGREED)
    for path in files:
        book = rb.load_file(path)  # raises with every problem listed
        assert book.id == path.stem


def test_every_agreed_runbook_exists(runbooks):
    assert AGREED <= set(runbooks), f"missing: {sorted(AGREED - set(runbooks))}"


def test_every_check_a_runbook_names_exists(runbooks, checks):
    missing = {b.id: sorted(b.check_ids() - set(checks)) for b in runbooks.values() if b.check_ids() - set(checks)}
    assert not missing, f"runbooks name checks that are not installed: {missing}"


def test_every_check_names_an_existing_runbook(runbooks, checks):
    without = sorted(c.id for c in checks.values() if not c.runbook)
    dangling = sorted(f"{c.id} -> {c.runbook}" for c in checks.values() if c.runbook and c.runbook not in runbooks)
    assert not without, f"checks that can fail but name no runbook: {without}"
    assert not dangling, f"checks pointing to runbooks that do not exist: {dangling}"


def test_runbook_ids_used_in_check_sources_exist(runbooks):
    """Results may carry their own runbook id (e.g. host.processes per service): those must exist too."""
    pattern = re.compile(r"""runbook\s*[=:]\s*["']([a-z0-9-]+)["']|["'][a-z0-9-]+["']\s*:\s*["']([a-z0-9-]+-(?:down|dead|failure|full|sync|pressure|overload|limit|disabled))["']""")
    used = set()
    for path in sorted(CHECKS_DIR.glob("*.py")):
        for m in pattern.finditer(path.read_text()):
            used.add((path.name, m.group(1) or m.group(2)))
    unknown = sorted(f"{f}: {r}" for f, r in used if r not in runbooks)
    assert not unknown, f"runbook ids in check code that do not exist: {unknown}"


def test_checks_and_runbooks_point_at_each_other(runbooks, checks):
    """A check pointing to a runbook is listed in that runbook's `checks` (so `runbook show` tells the truth)."""
    unlisted = sorted(f"{c.id} -> {c.runbook}" for c in checks.values()
                      if c.runbook in runbooks and c.id not in runbooks[c.runbook].checks)
    assert not unlisted, f"runbooks that do not list the checks pointing to them: {unlisted}"


def test_templates_only_use_known_variables(runbooks):
    builtin = {"host", "target", "address", "service", "component", "unit", "restart_argv", "process", "process_regex", "port",
               "openstack", "rabbitmqctl", "mysql", "mysql_datadir", "galera_bootstrap", "item", "bootstrap_host", "opsctl", "backup_store"}
    problems = []
    for b in runbooks.values():
        known = builtin | set(b.vars)
        for s in b.steps:
            used = rb.template_vars([*(s.run or []), s.where, s.exclude or "", s.input or ""])
            if used - known:
                problems.append(f"{b.id}.{s.id}: {sorted(used - known)}")
            if "{service}" in " ".join(s.run or []) + s.where and not (b.service or "service" in b.vars):
                problems.append(f"{b.id}.{s.id}: uses service but the runbook names none")
            if ({"unit", "restart_argv", "process", "process_regex", "port", "component"} & used) - set(b.vars) and not (b.service or "service" in b.vars):
                problems.append(f"{b.id}.{s.id}: needs a service (set 'service' or vars.service)")
    assert not problems, problems


def test_every_runbook_has_an_action_or_says_what_to_do(runbooks):
    for b in runbooks.values():
        assert any(s.kind == "action" for s in b.steps) or any(s.note for s in b.steps), b.id
        assert b.verify_checks, b.id
