"""Galera cluster recovery: which node may bootstrap a new primary component, by the safe rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

@dataclass(frozen=True)
class GaleraNode:
    """What a stopped Galera node's state files say."""

    host: str
    running: bool
    seqno: int | None  # None: grastate.dat missing or unreadable
    safe_to_bootstrap: bool = False
    has_gvwstate: bool = False
    uuid: str | None = None


def parse_grastate(text: str) -> dict[str, str]:
    """Key/values of grastate.dat (`# GALERA saved state` header, `key:   value` lines)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    return values


def galera_node(host: str, grastate: str | None, gvwstate_exists: bool, running: bool) -> GaleraNode:
    values = parse_grastate(grastate) if grastate is not None else {}
    try:
        seqno = int(values["seqno"]) if "seqno" in values else None
    except ValueError:
        seqno = None
    return GaleraNode(host, running, seqno, values.get("safe_to_bootstrap") == "1", gvwstate_exists, values.get("uuid"))


@dataclass(frozen=True)
class BootstrapDecision:
    host: str | None  # None: do not bootstrap automatically
    reason: str


def choose_bootstrap_node(nodes: Sequence[GaleraNode]) -> BootstrapDecision:
    """The node to bootstrap a stopped Galera cluster from, by the safe rules.

    Refuse while any node runs (join it instead). Prefer the node that wrote gvwstate.dat (it was
    in the last primary component); else `safe_to_bootstrap: 1`; never a node with seqno -1 (its
    state is unknown after a crash: recover it with --wsrep-recover first); else the highest seqno;
    a tie or no usable seqno is the operator's call.
    """
    if not nodes:
        return BootstrapDecision(None, "no controller hosts to inspect")
    running = [n.host for n in nodes if n.running]
    if running:
        return BootstrapDecision(None, f"MariaDB still runs on {', '.join(running)}: do not bootstrap; restart the "
                                       "stopped nodes so they join the running one (or stop all nodes first)")
    usable = [n for n in nodes if n.seqno is not None and n.seqno != -1]
    gvw = [n for n in nodes if n.has_gvwstate and n.seqno != -1]
    if len(gvw) == 1:
        return BootstrapDecision(gvw[0].host, f"{gvw[0].host} has gvwstate.dat: it was in the last primary component")
    if len(gvw) > 1:
        candidates = gvw
    else:
        safe = [n for n in usable if n.safe_to_bootstrap]
        if len(safe) == 1:
            return BootstrapDecision(safe[0].host, f"{safe[0].host} has safe_to_bootstrap: 1 (last node to leave)")
        candidates = usable
    if not candidates:
        unknown = [n.host for n in nodes if n.seqno in (None, -1)]
        return BootstrapDecision(None, f"no node has a usable seqno ({', '.join(unknown)} have -1 or no grastate.dat): "
                                       "run `mysqld --wsrep-recover` on each node to find its position, then decide")
    best = max(n.seqno for n in candidates)  # type: ignore[type-var]
    top = [n for n in candidates if n.seqno == best]
    if len(top) > 1:
        return BootstrapDecision(None, f"{', '.join(n.host for n in top)} share the highest seqno {best}: choose one yourself")
    skipped = [n.host for n in nodes if n.seqno == -1]
    note = f" (never {', '.join(skipped)}: seqno -1)" if skipped else ""
    return BootstrapDecision(top[0].host, f"{top[0].host} has the highest seqno {best}{note}")
