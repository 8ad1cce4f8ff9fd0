"""Runbook files: the YAML schema (pydantic), and loading the shipped and site runbooks.

See opsctl/runbook.py for what a runbook is and how it runs.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from opsctl.errors import ConfigError, UsageError

_ID = r"^[a-z0-9][a-z0-9-]*$"


# ------------------------------------------------------------------------------------------ schema
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Expect(_Strict):
    """What a diagnostic should show when things are healthy (or what it needs to go on)."""

    rc: int | list[int] | None = None
    regex: str | None = None  # must match stdout (multiline search)
    not_regex: str | None = None  # must not match stdout
    status: Literal["OK", "WARNING", "CRITICAL", "UNKNOWN"] | None = None  # for check steps: worst status

    @model_validator(mode="after")
    def _regexes_compile(self) -> "Expect":
        for pattern in (self.regex, self.not_regex):
            if pattern is not None:
                re.compile(pattern)
        return self

    def describe(self) -> str:
        parts = []
        if self.rc is not None:
            parts.append(f"exit code {self.rc if isinstance(self.rc, int) else ' or '.join(map(str, self.rc))}")
        if self.regex:
            parts.append(f"output matches /{self.regex}/")
        if self.not_regex:
            parts.append(f"output does not match /{self.not_regex}/")
        if self.status:
            parts.append(f"check status {self.status}")
        return ", ".join(parts) or "anything"


class Retry(_Strict):
    timeout: float = Field(60, gt=0, le=3600)
    interval: float = Field(5, gt=0, le=600)


class When(_Strict):
    step: str
    outcome: Literal["passed", "failed"]


class Step(_Strict):
    """One step: exactly one of `diagnostic` or `action` (its title), and what it runs."""

    id: str = Field(pattern=_ID)
    diagnostic: str | None = None
    action: str | None = None
    run: list[str] | None = None  # argv template
    input: str | None = None  # text (template) given to the command on stdin
    check: str | None = None  # a check id to run (diagnostic only)
    builtin: Literal["tail_logs", "galera_bootstrap"] | None = None
    where: str = "target"  # target | local | role:<role> | host:<template>
    expect: Expect | None = None
    retry: Retry | None = None  # diagnostics: repeat until the expectation is met
    required: bool = False  # diagnostics: stop the runbook when the expectation is not met
    when: When | None = None
    exclude: str | None = None  # a host (template) left out of role:<role>, e.g. "{bootstrap_host}"
    foreach: str | None = None  # run once per non-empty output line of that earlier step, as {item}
    timeout: float = Field(60, gt=0, le=3600)
    note: str = ""  # shown to the operator (what to look at, what to do by hand)
    lines: int = Field(40, ge=1, le=2000)  # tail_logs
    pattern: str | None = None  # tail_logs: only lines matching

    @model_validator(mode="after")
    def _shape(self) -> "Step":
        if (self.diagnostic is None) == (self.action is None):
            raise ValueError("give exactly one of 'diagnostic' or 'action' (the step title)")
        doers = [x for x in (self.run, self.check, self.builtin) if x is not None]
        if len(doers) > 1:
            raise ValueError("give at most one of 'run', 'check', 'builtin'")
        if self.action is not None and (self.check or self.builtin or self.retry or self.required):
            raise ValueError("an action runs a command ('run') or is a manual step (no 'run')")
        if self.diagnostic is not None and not doers:
            raise ValueError("a diagnostic needs 'run', 'check' or 'builtin'")
        if self.run is not None and (not self.run or not self.run[0] or not all(isinstance(a, str) for a in self.run)):
            raise ValueError("'run' is an argv list of strings with a command first")
        if not (self.where in ("target", "local") or self.where.startswith(("role:", "host:"))):
            raise ValueError("'where' is target, local, role:<role> or host:<name or {var}>")
        if self.retry and not self.expect:
            raise ValueError("'retry' needs an 'expect' to wait for")
        return self

    @property
    def kind(self) -> str:
        return "action" if self.action is not None else "diagnostic"

    @property
    def title(self) -> str:
        return self.action if self.action is not None else self.diagnostic  # type: ignore[return-value]


class Verify(_Strict):
    """The final re-check: these checks (default: the runbook's), retried until OK or the timeout."""

    checks: list[str] = []
    timeout: float = Field(60, gt=0, le=1800)
    interval: float = Field(5, gt=0, le=300)


class Runbook(_Strict):
    id: str = Field(pattern=_ID)
    title: str
    symptoms: list[str] = Field(min_length=1)
    checks: list[str] = []
    role: str | None = None  # where the target host is chosen from when --host is not given
    service: str | None = None  # default {service}
    infer_service: bool = False  # without --service, use the one service the failing checks name (else `service`)
    vars: dict[str, str | None] = {}  # defaults; None: must be given with --set
    steps: list[Step] = Field(min_length=1)
    verify: Verify = Verify()
    references: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> "Runbook":
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"duplicate step id {step.id!r}")
            for ref in (step.when.step if step.when else None, step.foreach):
                if ref is not None and ref not in seen:
                    raise ValueError(f"step {step.id!r} refers to {ref!r}, which is not an earlier step")
            seen.add(step.id)
        if not self.checks and not self.verify.checks:
            raise ValueError("name the checks that point here ('checks') or the checks to re-run ('verify.checks')")
        return self

    @property
    def uses_target(self) -> bool:
        """Whether any step runs on the one target host (else steps name their hosts: local, role:, host:)."""
        return any(s.where == "target" and not s.check for s in self.steps)

    @property
    def verify_checks(self) -> list[str]:
        return list(self.verify.checks or self.checks)

    def check_ids(self) -> set[str]:
        """Every check id this runbook names (pointers, check steps, verification)."""
        return set(self.checks) | set(self.verify.checks) | {s.check for s in self.steps if s.check}


# ------------------------------------------------------------------------------------------ loading
def runbook_dir() -> Path:
    return Path(str(resources.files("opsctl.runbooks")))


def parse_runbook(data: Any, source: str) -> Runbook:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a runbook is a mapping (id, title, symptoms, checks, steps)")
    try:
        return Runbook.model_validate(data)
    except ValidationError as err:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
                    for e in err.errors()]
        raise ConfigError(f"{source}: invalid runbook ({len(problems)} problem(s))", problems) from None


def load_file(path: Path) -> Runbook:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read runbook {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    book = parse_runbook(data, str(path))
    if book.id != path.stem:
        raise ConfigError(f"{path}: runbook id {book.id!r} does not match the file name", hint=f"rename it {book.id}.yaml")
    return book


def load_runbooks(directory: Path | None = None) -> dict[str, Runbook]:
    """Every runbook shipped (or in `directory`), by id."""
    directory = directory or runbook_dir()
    return {b.id: b for b in (load_file(p) for p in sorted(directory.glob("*.yaml")))}


def get_runbook(book_id: str, directory: Path | None = None) -> Runbook:
    path = (directory or runbook_dir()) / f"{book_id}.yaml"
    if not re.match(_ID, book_id) or not path.exists():
        known = ", ".join(sorted(load_runbooks(directory)))
        raise UsageError(f"no runbook {book_id!r}", hint=f"runbooks: {known}")
    return load_file(path)
