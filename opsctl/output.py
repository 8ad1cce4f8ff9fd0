"""Render check results: rich table, JSON (the schema shared with the exporter and Elasticsearch), Nagios."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Sequence, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from opsctl.results import Result, Status, worst
from opsctl.secrets import mask, mask_obj

STYLE = {Status.OK: "green", Status.WARNING: "yellow", Status.CRITICAL: "bold red", Status.UNKNOWN: "magenta"}
FORMATS = ("table", "json", "nagios")


def sort_key(r: Result) -> tuple:
    return (-r.status.severity, r.component, r.check, r.host)


def render_table(results: Sequence[Result], console: Console, *, verbose: bool = False, plugin_errors: Sequence = (),
                 notes: Sequence[str] = ()) -> None:
    """The human view: problems first; runbook commands for what failed."""
    table = Table(show_header=True, header_style="bold", expand=False, show_lines=False)
    table.add_column("Status", no_wrap=True)
    table.add_column("Check", no_wrap=True)
    table.add_column("Host", no_wrap=True)
    table.add_column("Summary", overflow="fold")
    for r in sorted(results, key=sort_key):
        table.add_row(Text(r.status.name, style=STYLE[r.status]), r.check, r.host, Text(mask(r.summary)))
        if verbose and r.details:
            table.add_row("", "", "", Text(mask(r.details), style="dim"))
    console.print(table)
    counts = Counter(r.status for r in results)
    overall = worst(r.status for r in results)
    parts = [f"{counts.get(s, 0)} {s.name.lower()}" for s in (Status.CRITICAL, Status.WARNING, Status.UNKNOWN, Status.OK)]
    console.print(Text(f"{overall.name}: {len(results)} results: " + ", ".join(parts), style=STYLE[overall]))
    runbooks = sorted({(r.runbook, r.host) for r in results if r.status != Status.OK and r.runbook})
    for runbook, host in runbooks:
        console.print(f"  fix: opsctl runbook run {runbook} --host {host}" if host not in ("global",) else f"  fix: opsctl runbook run {runbook}")
    for err in plugin_errors:
        console.print(Text(f"warning: {err}", style="yellow"))
    for note in notes:
        console.print(Text(f"note: {note}", style="dim"))


def to_json(results: Sequence[Result], plugin_errors: Sequence = (), notes: Sequence[str] = ()) -> str:
    doc = {
        "status": worst(r.status for r in results).name,
        "code": int(worst(r.status for r in results)),
        "results": [r.to_dict() for r in sorted(results, key=sort_key)],
        "plugin_errors": [str(e) for e in plugin_errors],
        "notes": list(notes),
    }
    return json.dumps(mask_obj(doc), indent=2, sort_keys=False)


_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.:/@-]")


def _perf_label(r: Result, metric: str, multi_host: bool) -> str:
    label = f"{r.check}.{metric}" if not metric.startswith(r.check) else metric
    if multi_host:
        label = f"{r.host}/{label}"
    return _LABEL_BAD.sub("_", label)


def _perf_value(v: float) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def nagios_line(results: Sequence[Result], plugin_errors: Sequence = ()) -> str:
    """One line: `OPSCTL STATUS - summary | perfdata` (Nagios plugin guidelines)."""
    overall = worst(r.status for r in results)
    problems = sorted((r for r in results if r.status != Status.OK), key=sort_key)
    counts = Counter(r.status for r in results)
    if problems:
        shown = "; ".join(f"{r.check}@{r.host}: {r.summary}" for r in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        text = f"{shown}{more}"
    elif results:
        text = f"{counts[Status.OK]} checks OK"
    else:
        text = "no checks applied to the selection"
    if plugin_errors:
        text += f"; {len(plugin_errors)} plugin(s) failed to load"
    hosts = {r.host for r in results}
    perf = []
    for r in results:
        for name, value in r.metrics.items():
            perf.append(f"'{_perf_label(r, name, len(hosts) > 1)}'={_perf_value(value)}")
    line = f"OPSCTL {overall.name} - {text.replace('|', '/')}"
    if perf:
        line += " | " + " ".join(perf)
    return mask(line)


def emit(results: Sequence[Result], fmt: str, out: TextIO, *, verbose: bool = False, plugin_errors: Sequence = (),
         notes: Sequence[str] = ()) -> None:
    if fmt == "json":
        out.write(to_json(results, plugin_errors, notes) + "\n")
    elif fmt == "nagios":
        out.write(nagios_line(results, plugin_errors) + "\n")
    else:
        # A pipe or a cron mail gets full lines; a terminal gets its own width.
        width = None if out.isatty() else 200
        render_table(results, Console(file=out, soft_wrap=False, width=width), verbose=verbose,
                     plugin_errors=plugin_errors, notes=notes)
