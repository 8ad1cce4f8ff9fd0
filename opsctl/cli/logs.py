"""opsctl logs: find and group errors, trace a request across hosts, ship to and search Elasticsearch."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import List, Optional

import typer

from opsctl.cli import common
from opsctl.errors import OpsctlError, UsageError
from opsctl.hosts import Host
from opsctl.logs.collect import Window, collect_errors, parse_when, trace_in_file
from opsctl.logs.discovery import LogFile, discover
from opsctl.logs.parser import ERROR_LEVELS, epoch_to_iso, set_log_timezone
from opsctl.logs.state import SeenFingerprints
from opsctl.secrets import mask, mask_obj

app = typer.Typer(no_args_is_help=True, help=__doc__, context_settings={"help_option_names": ["-h", "--help"]})

HostOpt = typer.Option(None, "--host", "-H", help="Only these inventory hosts (repeatable).")
RoleOpt = typer.Option(None, "--role", help="Only hosts with this role (repeatable).")
ServiceOpt = typer.Option(None, "--service", "-s", help="Only these services, e.g. nova-compute (repeatable).")
ComponentOpt = typer.Option(None, "--component", "-c", help="Only these components, e.g. nova (repeatable).")
PathOpt = typer.Option(None, "--path", "-p", help="Read these files/globs instead of the catalog's (repeatable).")
SinceOpt = typer.Option(None, "--since", help="Start of the window: 30m, 2h, 1d ago or an ISO time.")
UntilOpt = typer.Option(None, "--until", help="End of the window: a duration ago or an ISO time.")
FormatOpt = typer.Option("table", "--format", "-f", help="table or json.")


def register(app_: typer.Typer) -> None:
    app_.add_typer(app, name="logs")


@dataclass
class Sources:
    hosts: list[Host]
    files: dict[str, list[LogFile]]
    problems: list[str]
    window: Window


def _sources(ctx: typer.Context, hosts, roles, services, components, paths, since, until) -> Sources:
    st = common.state(ctx)
    journal = st.config.logs.journal
    set_log_timezone(st.config.logs.timezone)
    window = Window(parse_when(since), parse_when(until))
    if window.since and window.until and window.since > window.until:
        raise UsageError("--since is after --until")
    specs = _select_hosts(st, roles, hosts)
    if not specs:
        raise UsageError("no host matches the selection", hint="see `opsctl inventory list`")
    connected: list[Host] = []
    files: dict[str, list[LogFile]] = {}
    problems: list[str] = []

    def one(spec):
        host = spec.connect()
        return host, discover(host, st.catalog, components=components or (), services=services or (),
                              since=window.since, paths=paths or (), journal=journal)

    from opsctl.fanout import fan_out

    for outcome in fan_out(specs, one, concurrency=st.config.inventory.concurrency, timeout=120):
        if outcome.error is not None or outcome.timed_out:
            reason = "timed out" if outcome.timed_out else getattr(outcome.error, "message", None) or str(outcome.error)
            problems.append(f"{outcome.item.name}: {reason}")
            continue
        host, found = outcome.value
        connected.append(host)
        files[host.name] = found
    if not connected and problems:
        raise OpsctlError(f"no host could be read: {problems[0]}", exit_code=69)
    if not any(files.values()):
        problems.append("no log files found" + (f" for {', '.join(paths)}" if paths else
                        "; point the catalog at them (config components.<name>.log_dirs / services.<svc>.logs) or use --path"))
    return Sources(connected, files, problems, window)


def _select_hosts(st, roles, hosts):
    """Inventory hosts; without any inventory, this machine (without the cost of detecting its roles)."""
    inv_cfg = st.config.inventory
    if not (st.inventory_path or inv_cfg.hosts or inv_cfg.ansible_ini or roles or hosts):
        import socket

        from opsctl.inventory import HostSpec

        return [HostSpec(socket.gethostname(), frozenset())]
    return st.inventory.select(roles or (), hosts or ())


def _close(src: Sources) -> None:
    for host in src.hosts:
        host.close()


def _warn(problems: list[str]) -> None:
    for p in problems:
        typer.echo(mask(f"warning: {p}"), err=True)


def _check_format(fmt: str) -> str:
    if fmt not in ("table", "json"):
        raise UsageError(f"unknown format {fmt!r}", hint="use --format table or --format json")
    return fmt


# ------------------------------------------------------------------------------------------ errors
@app.command("errors")
def errors_cmd(
    ctx: typer.Context,
    hosts: Optional[List[str]] = HostOpt, roles: Optional[List[str]] = RoleOpt, services: Optional[List[str]] = ServiceOpt,
    components: Optional[List[str]] = ComponentOpt, paths: Optional[List[str]] = PathOpt,
    since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
    warnings: bool = typer.Option(False, "--warnings", "-w", help="Include WARNING events."),
    new: bool = typer.Option(False, "--new", help="Only fingerprints not seen by the previous run."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="Show at most this many groups."),
    tracebacks: bool = typer.Option(False, "--tracebacks", "-t", help="Print a sample traceback per group (table)."),
    fmt: str = FormatOpt,
) -> None:
    """ERROR/CRITICAL events grouped by fingerprint, with counts per host and service."""
    _check_format(fmt)
    st = common.state(ctx)
    levels = ERROR_LEVELS | ({"WARNING"} if warnings else set())
    src = _sources(ctx, hosts, roles, services, components, paths, since, until)
    try:
        started = time.monotonic()
        report = collect_errors(src.hosts, src.files, levels=frozenset(levels), window=src.window,
                                max_line_bytes=st.config.logs.max_line_bytes, workers=st.config.logs.workers)
        elapsed = time.monotonic() - started
    finally:
        _close(src)
    seen = SeenFingerprints(st.config.logs.state_dir)
    groups = report.groups.sorted()
    for g in groups:
        g.new = seen.is_new(g.fingerprint)
    seen.record(groups)
    shown = [g for g in groups if g.new] if new else groups
    _warn(src.problems + report.problems)
    if fmt == "json":
        doc = {"files": report.files, "bytes": report.bytes, "events": report.groups.events, "groups": len(groups),
               "new_groups": sum(1 for g in groups if g.new), "window": {"since": epoch_to_iso(src.window.since),
                                                                          "until": epoch_to_iso(src.window.until)},
               "errors": [g.to_dict() for g in shown[:limit]]}
        typer.echo(json.dumps(mask_obj(doc), indent=2))
        return
    _errors_table(shown[:limit], report, len(groups), elapsed, new, tracebacks)


def _errors_table(groups, report, total_groups: int, elapsed: float, only_new: bool, tracebacks: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=200)
    title = (f"{report.groups.events} error events in {total_groups} groups, {report.files} files "
             f"({report.bytes / 1e6:.1f} MB) in {elapsed:.1f}s" + (" — new fingerprints only" if only_new else ""))
    if not groups:
        console.print(mask(title) + ("; nothing new" if only_new else ""))
        return
    table = Table(title=mask(title), title_justify="left", show_lines=False)
    for col in ("count", "level", "fingerprint", "exception", "message", "hosts/services", "first seen", "last seen"):
        table.add_column(col, overflow="fold", no_wrap=col in ("count", "level", "fingerprint", "first seen", "last seen"),
                         ratio=3 if col == "message" else None)
    for g in groups:
        where = ", ".join(f"{h}:{n}" for h, n in sorted(g.by_host.items())) + " / " + \
                ", ".join(f"{s}:{n}" for s, n in sorted(g.by_service.items()))
        table.add_row(str(g.count), g.level, g.fingerprint + (" *" if g.new else ""), g.exception or "-",
                      mask(g.message[:300]), mask(where), _short(g.first_seen), _short(g.last_seen))
    console.print(table)
    console.print("* new since the previous run", style="dim")
    if tracebacks:
        for g in groups:
            if g.sample_traceback:
                console.print(f"\n[bold]{g.fingerprint}[/bold] {mask(g.sample_where)}", highlight=False)
                console.print(mask(g.sample_traceback), markup=False, highlight=False)


def _short(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


# ------------------------------------------------------------------------------------------ trace
@app.command("trace")
def trace_cmd(
    ctx: typer.Context,
    ident: str = typer.Argument(..., help="Request id (req-...), global request id, or instance uuid."),
    hosts: Optional[List[str]] = HostOpt, roles: Optional[List[str]] = RoleOpt, services: Optional[List[str]] = ServiceOpt,
    components: Optional[List[str]] = ComponentOpt, paths: Optional[List[str]] = PathOpt,
    since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt, fmt: str = FormatOpt,
) -> None:
    """Every line for a request id, global request id or instance uuid, across services and hosts, in time order."""
    _check_format(fmt)
    ident = ident.strip()
    if len(ident) < 8 or any(c.isspace() for c in ident):
        raise UsageError(f"{ident!r} does not look like a request id or uuid")
    st = common.state(ctx)
    src = _sources(ctx, hosts, roles, services, components, paths, since, until)
    events = []
    problems = list(src.problems)
    try:
        from opsctl.fanout import fan_out

        by_name = {h.name: h for h in src.hosts}

        def one_host(name: str):
            out, errs = [], []
            for lf in src.files.get(name, []):
                try:
                    out.extend(trace_in_file(by_name[name], lf, ident, src.window, st.config.logs.max_line_bytes))
                except (OSError, EOFError) as exc:
                    errs.append(f"{name}:{lf.path}: {exc}")
            return out, errs

        for outcome in fan_out(list(src.files), one_host, concurrency=st.config.inventory.concurrency):
            if outcome.error is not None:
                problems.append(f"{outcome.item}: {outcome.error}")
            else:
                events.extend(outcome.value[0])
                problems.extend(outcome.value[1])
    finally:
        _close(src)
    events.sort(key=lambda e: (e.ts if e.ts is not None else float("inf"), e.host, e.path, e.offset))
    _warn(problems)
    if fmt == "json":
        typer.echo(json.dumps(mask_obj([_event_dict(e) for e in events]), indent=2))
        return
    if not events:
        typer.echo(f"no log lines mention {ident}")
        return
    for e in events:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts)) + f".{int((e.ts % 1) * 1000):03d}" if e.ts else "-"
        typer.echo(mask(f"{stamp} {e.host} {e.service} {e.level} {e.logger} {e.message}"))
        for line in e.lines:
            typer.echo(mask(f"    {line}"))
    services_seen = sorted({e.service for e in events})
    typer.echo(f"-- {len(events)} events on {len({e.host for e in events})} host(s), services: {', '.join(services_seen)}", err=True)


def _event_dict(e) -> dict:
    return {"@timestamp": epoch_to_iso(e.ts), "host": e.host, "service": e.service, "level": e.level, "logger": e.logger,
            "pid": e.pid, "request_id": e.request_id, "global_request_id": e.global_request_id, "instance": e.instance,
            "message": e.message, "traceback": e.traceback or None, "path": e.path, "offset": e.offset}


# ------------------------------------------------------------------------------------------ ship / search
@app.command("ship")
def ship_cmd(
    ctx: typer.Context,
    hosts: Optional[List[str]] = HostOpt, roles: Optional[List[str]] = RoleOpt, services: Optional[List[str]] = ServiceOpt,
    components: Optional[List[str]] = ComponentOpt, paths: Optional[List[str]] = PathOpt,
) -> None:
    """Bulk-index new log events into Elasticsearch (ECS fields), resuming from per-file checkpoints."""
    from opsctl.exporters.elasticsearch import ship

    st = common.state(ctx)
    src = _sources(ctx, hosts, roles, services, components, paths, None, None)
    try:
        report = ship(st.config, src.hosts, src.files)
    finally:
        _close(src)
    _warn(src.problems + report.problems)
    typer.echo(f"shipped {report.shipped} events from {report.files} files in {report.batches} bulk requests "
               f"to {st.config.elasticsearch.index}")


@app.command("search")
def search_cmd(
    ctx: typer.Context,
    query: Optional[str] = typer.Argument(None, help="Query string (Lucene syntax), e.g. 'error.type:DBConnectionError'."),
    levels: Optional[List[str]] = typer.Option(None, "--level", "-l", help="Only these levels (repeatable)."),
    services: Optional[List[str]] = ServiceOpt,
    hosts: Optional[List[str]] = typer.Option(None, "--host", "-H", help="Only these hosts (repeatable)."),
    trace_id: Optional[str] = typer.Option(None, "--trace", help="Only events of this request id / instance."),
    since: Optional[str] = SinceOpt, until: Optional[str] = UntilOpt,
    size: int = typer.Option(50, "--size", "-n", min=1, max=10000),
    fmt: str = FormatOpt,
) -> None:
    """Search shipped log events in Elasticsearch, newest first."""
    from opsctl.exporters.elasticsearch import search

    _check_format(fmt)
    st = common.state(ctx)
    total, docs = search(st.config, query, size=size, levels=levels or (), services=services or (), hosts=hosts or (),
                         since=parse_when(since), until=parse_when(until), trace_id=trace_id)
    if fmt == "json":
        typer.echo(json.dumps({"total": total, "hits": docs}, indent=2))
        return
    for d in docs:
        typer.echo(f"{d.get('@timestamp', '-')} {d.get('host', {}).get('name', '-')} {d.get('service', {}).get('name', '-')} "
                   f"{d.get('log', {}).get('level', '-')} {d.get('message', '')}")
    typer.echo(f"-- {len(docs)} of {total} matching events", err=True)
