"""Runbooks: YAML repair procedures linked from failing checks, and the engine that runs them.

A runbook names the checks that point to it and lists steps. A `diagnostic` step is read-only
(a command, a check, a log tail or a decision) and runs automatically; an `action` step changes
something and is shown in full and confirmed first (`yes` skips, `dry_run` shows without running).
Commands are argv lists whose elements are templated from variables; nothing is ever passed to a
shell built from data. After the steps the originating check is re-run (with a bounded retry) and
decides the outcome. Every run is appended to the audit log.

This module is the engine and the public face; the schema and loading are in runbook_schema, the
templating in runbook_template and the audit log in runbook_audit.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from opsctl.checkdef import Check
from opsctl.components import Component, find_service
from opsctl.config import Config
from opsctl.errors import DataError, OpsctlError, UsageError
from opsctl.galera import BootstrapDecision, GaleraNode, choose_bootstrap_node, galera_node
from opsctl.hosts import CommandNotFound, CommandTimeout, Host, HostError
from opsctl.inventory import HostSpec, Inventory
from opsctl.results import Result, Status, worst
from opsctl.runbook_audit import append_audit, audit_user, ensure_audit_writable
from opsctl.secrets import mask
from opsctl.runbook_schema import (  # noqa: F401 - re-exported: opsctl.runbook is the public face
    Expect, Retry, Runbook, Step, Verify, When, get_runbook, load_file, load_runbooks, parse_runbook, runbook_dir)
from opsctl.runbook_template import render_argv, render_text, template_vars  # noqa: F401 - re-exported

OUTPUT_LIMIT = 8192  # characters of a step's output kept in the audit record
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colour codes some tools print even into a pipe


# ------------------------------------------------------------------------------------------ engine
@dataclass
class StepRecord:
    id: str
    kind: str
    title: str
    host: str | None = None
    argv: list[str] | None = None
    rc: int | None = None
    output: str = ""
    outcome: str = ""  # passed, failed, unexpected, done, skipped, dry-run, declined, error
    expected: str = ""
    duration: float = 0.0
    stdout: str = field(default="", repr=False)  # standard output alone: what `foreach` iterates over

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v not in (None, "") and k != "stdout"}
        out = self.output
        if len(out) > OUTPUT_LIMIT:
            half = OUTPUT_LIMIT // 2
            out = f"{out[:half]}\n... [{len(out) - 2 * half} characters cut] ...\n{out[-half:]}"
        d["output"] = out
        d["duration"] = round(self.duration, 3)
        return d


@dataclass
class RunOutcome:
    exit_code: int
    result: str  # repaired, ok, not-repaired, aborted, stopped, dry-run
    status: Status | None
    steps: list[StepRecord] = field(default_factory=list)
    verify: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""


class Declined(OpsctlError):
    exit_code = 130


class Stopped(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


Printer = Callable[[str], None]
Confirm = Callable[[str], bool]
CheckRunner = Callable[[Sequence[str], Sequence[str]], list[Result]]


@dataclass
class Context:
    """Everything a run needs from the outside world."""

    config: Config
    catalog: Mapping[str, Component]
    inventory: Inventory
    checks: Sequence[Check]
    out: Printer = print
    confirm: Confirm = lambda prompt: False
    check_runner: CheckRunner | None = None  # tests may replace how checks are run
    choose: Callable[[str, list[str]], str | None] = lambda prompt, options: None  # operator picks one
    sleep: Callable[[float], None] = time.sleep


def _names_host(spec: HostSpec, name: str) -> bool:
    """Whether `name` (as a check or the cloud reports it) is this inventory host."""
    short = name.split(".", 1)[0]
    if spec.is_local and name in ("localhost", "127.0.0.1", "::1", socket.gethostname()):
        return True
    return (name in (spec.name, spec.address) or name in spec.labels.values()
            or short == spec.name.split(".", 1)[0])


def resolve_target(book: Runbook, inventory: Inventory, host: str | None, cloud_labels: Sequence[str] = ()) -> tuple[HostSpec, str]:
    """The inventory host the runbook acts on, and the host name the cloud knows it by.

    `host` is what `opsctl check` printed: an inventory host, a name the cloud uses for it (matched by
    address, a label value or the short name), or a cloud label / "global" for cloud-wide results, in
    which case the one inventory host with the runbook's role is used.
    """
    specs = list(inventory.hosts)
    named = host and host not in ("global", *cloud_labels)
    if named:
        for spec in specs:
            if _names_host(spec, host):  # type: ignore[arg-type]
                return spec, host  # type: ignore[return-value]
        if not book.uses_target:  # e.g. galera-not-synced: every step names its hosts; `host` may be a VIP
            return HostSpec(socket.gethostname(), frozenset()), host  # type: ignore[return-value]
        raise UsageError(f"host {host!r} is not in the inventory",
                         hint=f"hosts: {', '.join(s.name for s in specs)} (a label value such as labels: {{nova_host: {host}}} maps a cloud host name)")
    candidates = [s for s in specs if not book.role or book.role in s.roles] or (specs if len(specs) == 1 else [])
    if len(candidates) == 1:
        return candidates[0], candidates[0].name
    if not book.uses_target:
        local = HostSpec(socket.gethostname(), frozenset())
        return local, local.name
    names = ", ".join(s.name for s in candidates or specs)
    what = f"{len(candidates)} {book.role} hosts" if book.role else f"{len(specs)} hosts"
    raise UsageError(f"runbook {book.id} needs a host: the inventory has {what}", hint=f"pass --host (one of: {names})")


def process_regex(names: Sequence[str]) -> str:
    """An extended regex (pgrep -f) matching a command line whose program is one of `names`.

    Anchored on a path separator or the start, so `opsctl runbook run nova-compute-down` or
    `tail nova-compute.log` do not count as a running nova-compute.
    """
    escaped = [re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", n) for n in names]
    return f"(^|/)({'|'.join(escaped)})( |$)"


def base_variables(book: Runbook, config: Config, catalog: Mapping[str, Component], target: HostSpec, subject: str,
                   service: str | None, overrides: Mapping[str, str]) -> dict[str, Any]:
    """The variables a runbook's templates may use."""
    variables: dict[str, Any] = dict(book.vars)
    variables.update(host=subject, target=target.name, address=target.address or "localhost")
    svc_name = service or overrides.get("service") or book.service
    if svc_name:
        found = find_service(catalog, svc_name)
        if found is None:
            raise UsageError(f"unknown service {svc_name!r}", hint="services are named as in the catalog, e.g. nova-api, cinder-volume")
        component, svc = found
        variables.update(service=svc.name, component=component.name, unit=svc.units[0] if svc.units else svc.name,
                         restart_argv=list(svc.restart_argv()), process=svc.processes[0] if svc.processes else svc.name,
                         process_regex=process_regex(svc.processes or (svc.name,)),
                         port=str(svc.ports[0]) if svc.ports else "")
    rb = config.runbooks
    openstack = list(rb.openstack_cli)
    if config.cloud.clouds and "--os-cloud" not in openstack:
        openstack += ["--os-cloud", config.cloud.clouds[0]]
    variables.update(openstack=openstack, rabbitmqctl=list(config.rabbitmq.rabbitmqctl), mysql=list(rb.mysql_cli),
                     mysql_datadir=rb.mysql_datadir, galera_bootstrap=list(rb.galera_bootstrap),
                     opsctl=[sys.executable, "-m", "opsctl"], backup_store=config.backup.store)
    variables.update({k: v for k, v in overrides.items() if k != "service"})
    missing = sorted(k for k, v in variables.items() if v is None)
    if missing:
        raise UsageError(f"runbook {book.id} needs {', '.join(missing)}", hint=" ".join(f"--set {m}=VALUE" for m in missing))
    return variables


def needs_service(book: Runbook, service: str | None, overrides: Mapping[str, str]) -> bool:
    """The runbook is generic over services (vars.service: null) and none was given."""
    return "service" in book.vars and book.vars["service"] is None and not service and not overrides.get("service")


def services_in(results: Sequence[Result], book_id: str, catalog: Mapping[str, Component]) -> list[str]:
    """Catalog services named by the failing results that point to this runbook.

    Host checks name the service in their metric keys (`processes:nova-api`); cloud checks in their summary.
    """
    known = {svc.name for comp in catalog.values() for svc in comp.services}
    found: list[str] = []
    for r in results:
        if r.status == Status.OK or r.runbook != book_id:
            continue
        names = [k.split(":", 1)[1] for k in r.metrics if ":" in k and k.split(":", 1)[1] in known]
        if not names:
            names = [n for n in sorted(known, key=len, reverse=True) if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", r.summary)]
        if not names and r.check.endswith(".api") and r.component in catalog:  # <component>.api: its API service
            names = [svc.name for svc in catalog[r.component].services if svc.ports][:1]
        found.extend(n for n in names if n not in found)
    return found


def infer_service(ctx: Context, book: Runbook, target: HostSpec, fallback: str | None = None) -> str:
    """The one service the runbook's failing checks name on the target (else `fallback`); a usage error when
    none or several."""
    installed = {c.id for c in ctx.checks}
    ids = [c for c in book.checks if c in installed]
    results = run_named_checks(ctx, ids, target) if ids else []
    names = {target.name}
    results = [r for r in results if r.host in names or r.host not in {s.name for s in ctx.inventory.hosts}]
    services = services_in(results, book.id, ctx.catalog)
    if len(services) == 1:
        return services[0]
    if not services and fallback:
        return fallback
    if not services:
        raise UsageError(f"runbook {book.id} needs a service and no check reports one failing on {target.name}",
                         hint="pass --service NAME (a catalog service, e.g. nova-api)")
    raise UsageError(f"several services need {book.id} on {target.name}: {', '.join(services)}",
                     hint=f"run it once per service: --service {services[0]}")


class Engine:
    """Runs one runbook once: steps in order, then the re-check, then the audit record."""

    def __init__(self, book: Runbook, ctx: Context, target: HostSpec, variables: dict[str, Any], *,
                 yes: bool = False, dry_run: bool = False, verify_checks: Sequence[str] | None = None,
                 verify_timeout: float | None = None):
        self.book, self.ctx, self.target = book, ctx, target
        self.vars = variables
        self.yes, self.dry_run = yes, dry_run
        self.verify_checks = list(verify_checks or book.verify_checks)
        self.verify_timeout = book.verify.timeout if verify_timeout is None else verify_timeout
        self.records: list[StepRecord] = []
        self._by_step: dict[str, list[StepRecord]] = {}
        self._hosts: dict[str, Host] = {}
        self._stdout = ""

    # -- hosts ---------------------------------------------------------------------------------
    def _host(self, spec: HostSpec) -> Host:
        key = f"{spec.name}@{'local' if spec.is_local else spec.address}"
        if key not in self._hosts:
            host = spec.connect()
            connect = getattr(host, "connect", None)
            if connect:
                connect()
            self._hosts[key] = host
        return self._hosts[key]

    def _where(self, step: Step) -> list[HostSpec]:
        if step.where == "target":
            return [self.target]
        if step.where == "local":
            return [HostSpec(socket.gethostname(), frozenset())]
        if step.where.startswith("role:"):
            specs = self.ctx.inventory.select(roles=[step.where[5:]])
            if step.exclude:
                left_out = render_text(step.exclude, self.vars)
                specs = [s for s in specs if left_out not in (s.name, s.address)]
                if not specs:
                    self.ctx.out(f"  no other {step.where[5:]} host besides {left_out}")
            elif not specs:
                raise Stopped(f"step {step.id}: no host with role {step.where[5:]} in the inventory")
            return specs
        name = render_text(step.where[5:], self.vars)
        return [self.ctx.inventory.get(name)]

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()

    # -- running ---------------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        started = dt.datetime.now(dt.timezone.utc)
        out = self.ctx.out
        mode = " (dry run: actions are shown, not run)" if self.dry_run else ""
        out(f"runbook {self.book.id}: {self.book.title}{mode}")
        out(f"  host: {self.target.name}" + (f" ({self.vars['host']})" if self.vars.get("host") != self.target.name else ""))
        self._require_checks()
        ensure_audit_writable(self.ctx.config.runbooks.audit_log)
        outcome: RunOutcome
        try:
            try:
                for number, step in enumerate(self.book.steps, 1):
                    self._step(number, step)
            except Stopped as stop:
                out(f"stopped: {stop.message}")
                outcome = self._final(stopped=stop.message)
            except Declined as exc:
                out(f"aborted: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""))
                outcome = RunOutcome(exc.exit_code, "aborted", None, self.records, message=exc.message)
            except OpsctlError as exc:  # e.g. a host:{var} not in the inventory, a variable without a value
                out(f"stopped: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""))
                outcome = self._final(stopped=exc.message)
            else:
                outcome = self._final()
        except KeyboardInterrupt:
            self._audit(started, RunOutcome(130, "interrupted", None, self.records, message="interrupted by the operator"))
            raise
        finally:
            self.close()
        self._audit(started, outcome)
        return outcome

    def _require_checks(self) -> None:
        """Every check this run will use is installed (before anything runs)."""
        installed = {c.id for c in self.ctx.checks}
        wanted = set(self.verify_checks) | {s.check for s in self.book.steps if s.check}
        missing = sorted(wanted - installed)
        if missing and self.ctx.check_runner is None:
            raise DataError(f"runbook {self.book.id} needs check(s) that are not installed: {', '.join(missing)}",
                            hint="list them with: opsctl check --list")

    def _step(self, number: int, step: Step) -> None:
        out = self.ctx.out
        out(f"\n[{number}/{len(self.book.steps) + 1}] {step.kind}: {step.title}")
        if step.when and not self._condition(step.when):
            out(f"  skipped: step {step.when.step} did not {'pass' if step.when.outcome == 'passed' else 'fail'}")
            self._record(StepRecord(step.id, step.kind, step.title, outcome="skipped"))
            return
        empty = sorted(v for v in template_vars([*(step.run or []), step.where, step.exclude or ""])
                       if self.vars.get(v) == "")
        if empty:
            out(f"  skipped: give {' '.join(f'--set {v}=...' for v in empty)} to run this step")
            self._record(StepRecord(step.id, step.kind, step.title, outcome="skipped"))
            return
        if step.note:
            out(f"  note: {render_text(step.note, self.vars) if _all_known(step.note, self.vars) else step.note}")
        if step.check:
            self._check_step(step)
        elif step.builtin == "tail_logs":
            for spec in self._where(step):
                self._tail_logs(step, spec)
        elif step.builtin == "galera_bootstrap":
            self._galera_step(step)
        elif step.run is None:
            self._manual_step(step)
        else:
            for item in self._items(step):
                variables = {**self.vars, "item": item} if item is not None else self.vars
                argv = render_argv(step.run, variables)
                for spec in self._where(step) if not step.where.startswith("host:") else [self.ctx.inventory.get(render_text(step.where[5:], variables))]:
                    if step.kind == "diagnostic":
                        self._diagnostic(step, spec, argv)
                    else:
                        self._action(step, spec, argv)

    def _items(self, step: Step) -> list[str | None]:
        if not step.foreach:
            return [None]
        source = self._by_step.get(step.foreach, [])
        if not source or any(r.outcome != "passed" for r in source):
            if not self.dry_run:
                raise Stopped(f"step {step.foreach} did not succeed, so {step.id} has nothing trustworthy to act on")
            self.ctx.out(f"  (step {step.foreach} did not succeed: a real run would stop here)")
            return []
        lines = [ln.strip() for r in source for ln in r.stdout.splitlines() if ln.strip()]
        if not lines:
            self.ctx.out(f"  nothing to do: step {step.foreach} listed no items")
        return list(dict.fromkeys(lines))

    def _condition(self, when: When) -> bool:
        records = self._by_step.get(when.step, [])
        failed = any(r.outcome in ("unexpected", "error", "failed") for r in records)
        passed = bool(records) and all(r.outcome == "passed" for r in records)
        return failed if when.outcome == "failed" else passed

    def _record(self, rec: StepRecord) -> StepRecord:
        self.records.append(rec)
        self._by_step.setdefault(rec.id, []).append(rec)
        return rec

    def _exec(self, spec: HostSpec, argv: list[str], timeout: float, stdin: str | None = None) -> tuple[int | None, str, str]:
        """Run argv on a host: (rc, combined output, error text); standard output alone is kept in self._stdout."""
        self._stdout = ""
        try:
            res = self._host(spec).run(argv, timeout=timeout, input=stdin.encode() if stdin is not None else None)
        except (CommandNotFound, CommandTimeout, HostError) as exc:
            return None, "", exc.message
        self._stdout = _ANSI.sub("", res.stdout)
        text = res.stdout + (("\n" if res.stdout and not res.stdout.endswith("\n") else "") + res.stderr if res.stderr else "")
        return res.rc, _ANSI.sub("", text), ""

    def _show(self, text: str, limit: int = 60) -> None:
        lines = mask(text).rstrip("\n").splitlines()
        for line in lines[:limit]:
            self.ctx.out(f"    {line}")
        if len(lines) > limit:
            self.ctx.out(f"    ... {len(lines) - limit} more lines (see the audit log)")

    def _diagnostic(self, step: Step, spec: HostSpec, argv: list[str]) -> None:
        out = self.ctx.out
        out(f"  on {spec.name}: {mask(shlex.join(argv))}")
        expect = step.expect
        if expect:
            out(f"  expected: {expect.describe()}")
        retry = step.retry if not self.dry_run else None  # in a dry run nothing changes that we could wait for
        deadline = time.monotonic() + (retry.timeout if retry else 0)
        t0 = time.monotonic()
        while True:
            rc, text, error = self._exec(spec, argv, step.timeout)
            met = error == "" and _meets(expect, rc, text)
            if met or not retry or time.monotonic() >= deadline:
                break
            out(f"  not yet ({_short(rc, error)}); retrying in {retry.interval:g}s")
            self.ctx.sleep(min(retry.interval, max(0.0, deadline - time.monotonic())))
        self._show(text or error)
        outcome = "error" if error else ("passed" if met else "unexpected")
        out(f"  -> {outcome}" + (f" ({_short(rc, error)})" if outcome != "passed" else ""))
        self._record(StepRecord(step.id, "diagnostic", step.title, spec.name, argv, rc, text or error, outcome,
                                expect.describe() if expect else "", time.monotonic() - t0, stdout=self._stdout))
        if step.required and outcome != "passed" and self.dry_run:
            out("  (a real run would stop here; the dry run goes on to show the remaining steps)")
        elif step.required and outcome != "passed":
            raise Stopped(f"step {step.id} did not show what is needed to go on ({expect.describe() if expect else 'success'})")

    def _action(self, step: Step, spec: HostSpec, argv: list[str]) -> None:
        out = self.ctx.out
        shown = mask(shlex.join(argv))
        out(f"  on {spec.name}: {shown}")
        if self.dry_run:
            out("  -> dry run: not run")
            self._record(StepRecord(step.id, "action", step.title, spec.name, argv, outcome="dry-run"))
            return
        if not self.yes and not self.ctx.confirm(f"  run this on {spec.name}?"):
            self._record(StepRecord(step.id, "action", step.title, spec.name, argv, outcome="declined"))
            raise Declined(f"action {step.id} declined by the operator; nothing further was changed")
        t0 = time.monotonic()
        stdin = render_text(step.input, self.vars) if step.input is not None else None
        if stdin is not None:
            self._show(f"with input:\n{stdin}")
        rc, text, error = self._exec(spec, argv, step.timeout, stdin)
        self._show(text or error)
        ok = error == "" and _meets(step.expect or Expect(rc=0), rc, text)
        rec = self._record(StepRecord(step.id, "action", step.title, spec.name, argv, rc, text or error,
                                      "done" if ok else "failed", (step.expect or Expect(rc=0)).describe(), time.monotonic() - t0))
        out(f"  -> {rec.outcome}" + ("" if ok else f" ({_short(rc, error)})"))
        if not ok:
            raise Stopped(f"action {step.id} failed on {spec.name}")

    def _manual_step(self, step: Step) -> None:
        out = self.ctx.out
        out("  (manual step: do this by hand)")
        if self.dry_run or self.yes:
            self._record(StepRecord(step.id, "action", step.title, outcome="dry-run" if self.dry_run else "acknowledged"))
            return
        if not self.ctx.confirm("  done, continue?"):
            self._record(StepRecord(step.id, "action", step.title, outcome="declined"))
            raise Declined(f"manual step {step.id} not confirmed")
        self._record(StepRecord(step.id, "action", step.title, outcome="acknowledged"))

    # -- checks ----------------------------------------------------------------------------------
    def _run_checks(self, check_ids: Sequence[str]) -> list[Result]:
        if self.ctx.check_runner is not None:
            return self.ctx.check_runner(check_ids, [self.target.name])
        return run_named_checks(self.ctx, check_ids, self.target)

    def _relevant(self, results: list[Result]) -> list[Result]:
        """Results about the host repaired when there are any, else all (cloud-wide checks)."""
        names = {self.target.name, str(self.vars.get("host"))}
        mine = [r for r in results if r.host in names]
        return mine or results

    def _check_step(self, step: Step) -> None:
        t0 = time.monotonic()
        results = self._relevant(self._run_checks([step.check]))  # type: ignore[list-item]
        text = "\n".join(f"{r.status.name:8} {r.check} @ {r.host}: {r.summary}" for r in results) or "(no results)"
        self._show(text)
        status = worst(r.status for r in results)
        met = step.expect is None or step.expect.status is None or status.name == step.expect.status
        outcome = "passed" if met else "unexpected"
        self.ctx.out(f"  -> {status.name}")
        self._record(StepRecord(step.id, "diagnostic", step.title, self.target.name, None, int(status), text, outcome,
                                step.expect.describe() if step.expect else "", time.monotonic() - t0))
        if step.required and not met:
            raise Stopped(f"step {step.id}: check {step.check} is {status.name}")

    def _final(self, stopped: str | None = None) -> RunOutcome:
        out = self.ctx.out
        ids = self.verify_checks
        timeout = 0 if (self.dry_run or stopped) else self.verify_timeout
        out(f"\n[{len(self.book.steps) + 1}/{len(self.book.steps) + 1}] verify: re-run {', '.join(ids)}"
            + (f" (up to {timeout:g}s)" if timeout else ""))
        deadline = time.monotonic() + timeout
        while True:
            results = self._relevant(self._run_checks(ids))
            status = worst(r.status for r in results)
            if status == Status.OK or time.monotonic() >= deadline:
                break
            out(f"  still {status.name}; re-checking in {self.book.verify.interval:g}s")
            self.ctx.sleep(min(self.book.verify.interval, max(0.0, deadline - time.monotonic())))
        for r in results:
            out(mask(f"    {r.status.name:8} {r.check} @ {r.host}: {r.summary}"))
        verify = [r.to_dict() for r in results]
        if stopped:
            return RunOutcome(int(status), "stopped", status, self.records, verify, stopped)
        if self.dry_run:
            out(f"dry run: nothing changed; the check is {status.name}")
            return RunOutcome(int(status), "dry-run", status, self.records, verify)
        acted = any(r.kind == "action" and r.outcome == "done" for r in self.records)
        if status == Status.OK:
            result = "repaired" if acted else "ok"
            out(f"{'REPAIRED' if acted else 'OK'}: {', '.join(ids)} now OK")
            return RunOutcome(0, result, status, self.records, verify)
        out(f"NOT REPAIRED: {', '.join(ids)} is still {status.name}")
        return RunOutcome(int(status), "not-repaired", status, self.records, verify)

    # -- builtins ----------------------------------------------------------------------------------
    def _tail_logs(self, step: Step, spec: HostSpec) -> None:
        out = self.ctx.out
        t0 = time.monotonic()
        patterns = []
        svc = find_service(self.ctx.catalog, str(self.vars.get("service", "")))
        if svc:
            patterns = list(svc[1].logs)
        pattern = re.compile(step.pattern) if step.pattern else None
        chunks: list[str] = []
        try:
            host = self._host(spec)
            files = [f for p in patterns for f in host.glob(p)]
            for path in files[:8]:
                lines = _tail(host, path, step.lines * (20 if pattern else 1))
                if pattern:
                    lines = [ln for ln in lines if pattern.search(ln)]
                chunks.append(f"==> {path} <==\n" + "\n".join(lines[-step.lines:]))
            text = "\n".join(chunks) if files else f"no log files match {', '.join(patterns) or '(no service)'}"
            outcome = "passed"
        except (HostError, OSError) as exc:
            text, outcome = f"cannot read logs: {getattr(exc, 'message', None) or exc}", "error"
        out(f"  on {spec.name}: last {step.lines} lines" + (f" matching /{step.pattern}/" if pattern else "")
            + f" of {', '.join(patterns) or '-'}")
        self._show(text)
        self._record(StepRecord(step.id, "diagnostic", step.title, spec.name, None, None, text, outcome, "", time.monotonic() - t0))

    def _galera_step(self, step: Step) -> None:
        t0 = time.monotonic()
        datadir = str(self.vars.get("mysql_datadir") or "/var/lib/mysql")
        nodes, lines = [], []
        for spec in self._where(step):
            try:
                host = self._host(spec)
                grastate = _read_text(host, f"{datadir}/grastate.dat")
                gvw = host.exists(f"{datadir}/gvwstate.dat")
                procs = host.run(["pgrep", "-x", "mariadbd|mysqld"], timeout=step.timeout)
                running = procs.rc == 0
            except (HostError, OSError, CommandNotFound, CommandTimeout) as exc:
                lines.append(f"{spec.name}: cannot inspect: {getattr(exc, 'message', None) or exc}")
                nodes.append(GaleraNode(spec.name, running=False, seqno=None))
                continue
            node = galera_node(spec.name, grastate, gvw, running)
            nodes.append(node)
            lines.append(f"{spec.name}: mariadb {'RUNNING' if running else 'stopped'}, "
                         f"seqno {node.seqno if node.seqno is not None else '(no grastate.dat)'}, "
                         f"safe_to_bootstrap {int(node.safe_to_bootstrap)}, gvwstate.dat {'present' if gvw else 'absent'}")
        self._show("\n".join(lines))
        decision = choose_bootstrap_node(nodes)
        usable = [n.host for n in nodes if n.seqno not in (None, -1)]
        if decision.host is None and usable and not any(n.running for n in nodes) and not (self.yes or self.dry_run):
            self._show(f"no automatic choice: {decision.reason}")
            chosen = self.ctx.choose("  bootstrap from which node? (empty: none, stop here)", usable)
            if chosen:
                decision = BootstrapDecision(chosen, f"chosen by the operator (automatic rules: {decision.reason})")
        lines.append(f"bootstrap node: {decision.host or 'NONE'}: {decision.reason}")
        self._show(lines[-1])
        text = "\n".join(lines)
        outcome = "passed" if decision.host else "unexpected"
        self._record(StepRecord(step.id, "diagnostic", step.title, None, None, None, text, outcome,
                                "every node stopped and one safe bootstrap candidate", time.monotonic() - t0))
        if decision.host is None:
            raise Stopped(f"no safe Galera bootstrap node: {decision.reason}")
        self.vars["bootstrap_host"] = decision.host

    # -- audit -------------------------------------------------------------------------------------
    def _audit(self, started: dt.datetime, outcome: RunOutcome) -> None:
        record = {
            "time": started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "user": audit_user(),
            "runbook": self.book.id,
            "host": self.target.name,
            "subject": self.vars.get("host"),
            "service": self.vars.get("service"),
            "vars": {k: v for k, v in self.vars.items() if k not in ("openstack", "rabbitmqctl", "mysql", "galera_bootstrap", "opsctl")},
            "dry_run": self.dry_run,
            "yes": self.yes,
            "steps": [r.to_dict() for r in outcome.steps],
            "verify": outcome.verify,
            "result": outcome.result,
            "status": outcome.status.name if outcome.status is not None else None,
            "exit_code": outcome.exit_code,
            "message": outcome.message,
        }
        append_audit(self.ctx.config.runbooks.audit_log, record)


def run_named_checks(ctx: Context, check_ids: Sequence[str], target: HostSpec) -> list[Result]:
    """Run checks by id: host-scoped ones on the target host only, the others cloud-/infra-wide."""
    from opsctl.runner import Selection, run_checks

    by_id = {c.id: c for c in ctx.checks}
    missing = [c for c in check_ids if c not in by_id]
    if missing:
        raise DataError(f"check(s) {', '.join(missing)} are not installed", hint="list them with: opsctl check --list")
    host_ids = tuple(c for c in check_ids if by_id[c].scope == "host")
    other_ids = tuple(c for c in check_ids if by_id[c].scope != "host")
    results: list[Result] = []
    if host_ids:
        inventory = Inventory((target,), "runbook target")
        results += run_checks(ctx.checks, inventory, ctx.config, ctx.catalog, Selection(checks=host_ids)).results
    if other_ids:
        results += run_checks(ctx.checks, ctx.inventory, ctx.config, ctx.catalog, Selection(checks=other_ids)).results
    return results


def _meets(expect: Expect | None, rc: int | None, text: str) -> bool:
    if expect is None:
        return rc == 0
    if expect.rc is not None:
        wanted = [expect.rc] if isinstance(expect.rc, int) else expect.rc
        if rc not in wanted:
            return False
    elif rc is None:
        return False
    if expect.regex and not re.search(expect.regex, text, re.M):
        return False
    if expect.not_regex and re.search(expect.not_regex, text, re.M):
        return False
    return True


def _short(rc: int | None, error: str) -> str:
    return error.splitlines()[0] if error else f"exit code {rc}"


def _all_known(text: str, variables: Mapping[str, Any]) -> bool:
    return all(variables.get(v) is not None for v in template_vars(text))


def _read_text(host: Host, path: str) -> str | None:
    try:
        return host.read_file(path, max_bytes=65536).decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == 2:
            return None
        raise


def _tail(host: Host, path: str, lines: int) -> list[str]:
    """The last `lines` lines of a file, reading at most 4 MiB from its end."""
    size = host.stat(path).size
    want = min(size, max(65536, lines * 400), 4 << 20)
    with host.open(path) as fh:
        fh.seek(size - want)
        data = fh.read(want)
    text = data.decode("utf-8", "replace").splitlines()
    if want < size and text:
        text = text[1:]
    return text[-lines:]
