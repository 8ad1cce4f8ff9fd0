"""The check contract: what a check declares and the context it runs in.

A check is a function `run(ctx) -> Iterable[Result]` with declared metadata. Use the `@check`
decorator; a module exports its checks as `CHECKS` and registers it under the `opsctl.checks`
entry point group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Iterable, Literal, Mapping

from opsctl.results import Result, Status

if TYPE_CHECKING:  # pragma: no cover
    from opsctl.cloud import CloudAccess
    from opsctl.components import Component
    from opsctl.config import Config
    from opsctl.hosts import Host
    from opsctl.inventory import HostSpec

Scope = Literal["host", "cloud", "global"]
NEEDS = frozenset({"host", "cloud", "db", "rabbitmq", "memcached"})


@dataclass(frozen=True)
class Check:
    """A check definition.

    scope: "host" runs once per selected host whose roles match (`roles` empty: every host);
    "cloud" runs once per configured cloud (openstacksdk); "global" runs once (infrastructure
    endpoints from config, e.g. the database).
    """

    id: str
    func: Callable[["CheckContext"], Iterable[Result]]
    description: str = ""
    component: str = ""
    roles: frozenset[str] = frozenset()
    needs: frozenset[str] = frozenset()
    scope: Scope = "host"
    runbook: str | None = None
    remediation: str = ""
    thresholds: Mapping[str, Any] = field(default_factory=dict)
    profiles: frozenset[str] = frozenset({"daily"})

    def __post_init__(self) -> None:
        if "." not in self.id:
            raise ValueError(f"check id {self.id!r} must be component.assertion")
        if not self.component:
            object.__setattr__(self, "component", self.id.split(".", 1)[0])
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"check {self.id}: unknown needs {sorted(unknown)}")
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))

    def applies_to(self, roles: frozenset[str]) -> bool:
        return not self.roles or bool(self.roles & roles)


def check(
    id: str,
    *,
    roles: Iterable[str] = (),
    needs: Iterable[str] = ("host",),
    scope: Scope = "host",
    runbook: str | None = None,
    remediation: str = "",
    thresholds: Mapping[str, Any] | None = None,
    profiles: Iterable[str] = ("daily",),
) -> Callable[[Callable[["CheckContext"], Iterable[Result]]], Check]:
    """Decorator turning `def run(ctx)` into a registered-ready `Check`; the docstring is its description."""

    def wrap(func: Callable[["CheckContext"], Iterable[Result]]) -> Check:
        return Check(
            id=id, func=func, description=(func.__doc__ or "").strip().split("\n")[0], roles=frozenset(roles),
            needs=frozenset(needs), scope=scope, runbook=runbook, remediation=remediation,
            thresholds=thresholds or {}, profiles=frozenset(profiles),
        )

    return wrap


@dataclass
class CheckContext:
    """What a check may use: its host, thresholds, config, the catalog, cloud access."""

    check: Check
    host_name: str
    config: "Config"
    catalog: Mapping[str, "Component"]
    thresholds: Mapping[str, Any]
    host: "Host | None" = None
    spec: "HostSpec | None" = None
    cloud: "CloudAccess | None" = None
    timeout: float = 30.0

    @property
    def roles(self) -> frozenset[str]:
        return self.spec.roles if self.spec else frozenset()

    def result(self, status: Status, summary: str, *, check_id: str | None = None, **kw: Any) -> Result:
        """A Result pre-filled with this check's id, host, runbook and remediation."""
        failing = Status(status) != Status.OK
        kw.setdefault("runbook", self.check.runbook if failing else None)
        kw.setdefault("remediation", self.check.remediation if failing else "")
        host = kw.pop("host", None) or self.host_name
        return Result(check=check_id or self.check.id, host=host, status=status, summary=summary, **kw)

    def ok(self, summary: str, **kw: Any) -> Result:
        return self.result(Status.OK, summary, **kw)

    def warning(self, summary: str, **kw: Any) -> Result:
        return self.result(Status.WARNING, summary, **kw)

    def critical(self, summary: str, **kw: Any) -> Result:
        return self.result(Status.CRITICAL, summary, **kw)

    def unknown(self, summary: str, **kw: Any) -> Result:
        return self.result(Status.UNKNOWN, summary, **kw)
