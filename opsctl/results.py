"""Status codes (Nagios) and the Result every check returns."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping


class Status(enum.IntEnum):
    """Nagios plugin codes; the worst status of a run is its exit code."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def severity(self) -> int:
        """Ordering for 'worst wins': CRITICAL > UNKNOWN > WARNING > OK."""
        return {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}[self]


def worst(statuses: Iterable[Status]) -> Status:
    """The worst status; OK for no statuses (an empty run is not a failure)."""
    return max(statuses, key=lambda s: s.severity, default=Status.OK)


def threshold_status(value: float, warn: float | None, crit: float | None, *, higher_is_worse: bool = True) -> Status:
    """Compare a value against warning/critical thresholds."""

    def breached(limit: float | None) -> bool:
        if limit is None:
            return False
        return value >= limit if higher_is_worse else value <= limit

    if breached(crit):
        return Status.CRITICAL
    if breached(warn):
        return Status.WARNING
    return Status.OK


@dataclass(frozen=True)
class Result:
    """The outcome of one assertion of one check on one host."""

    check: str
    host: str
    status: Status
    summary: str
    details: str = ""
    remediation: str = ""
    runbook: str | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration: float = 0.0
    component: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))
        object.__setattr__(self, "summary", " ".join(str(self.summary).split()))
        if not self.component:
            object.__setattr__(self, "component", self.check.split(".", 1)[0])

    def with_(self, **changes: Any) -> "Result":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON schema shared by `--format json`, the exporter and Elasticsearch."""
        return {
            "check": self.check,
            "component": self.component,
            "host": self.host,
            "status": self.status.name,
            "code": int(self.status),
            "summary": self.summary,
            "details": self.details,
            "remediation": self.remediation,
            "runbook": self.runbook,
            "metrics": dict(self.metrics),
            "duration": round(self.duration, 4),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        return cls(
            check=data["check"],
            host=data["host"],
            status=Status[data["status"]],
            summary=data.get("summary", ""),
            details=data.get("details", ""),
            remediation=data.get("remediation", ""),
            runbook=data.get("runbook"),
            metrics=data.get("metrics", {}),
            duration=data.get("duration", 0.0),
            component=data.get("component", ""),
        )
