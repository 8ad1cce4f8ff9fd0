"""`opsctl schedule`: run backups and checks on the timetable of `backup.schedule` (foreground daemon),
or print the same timetable as crontab lines (`schedule cron`) or systemd timer + service units."""

from __future__ import annotations

import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Optional

import schedule as schedlib
import typer

from opsctl.cli.common import state
from opsctl.errors import UsageError
from opsctl.secrets import mask

log = logging.getLogger("opsctl.schedule")
app = typer.Typer(help="Run backups and checks on a timetable (backup.schedule in the config).", invoke_without_command=True)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
AT_RE = re.compile(r"^(?:([01]\d|2[0-3]))?:([0-5]\d)$")


def job_argv(job) -> list[str]:
    """The opsctl arguments a timetable entry runs."""
    return {
        "backup": ["backup", "run", "--kind", "scheduled"],
        "check": ["check"],
        "prune": ["backup", "prune"],
        "verify": ["backup", "verify"],
    }[job.run] + list(job.args)


def job_name(i: int, job) -> str:
    return f"opsctl-{job.run}-{i}"


def _at(job) -> tuple[int | None, int]:
    if job.at is None:
        return None, 0
    m = AT_RE.match(job.at)
    if not m:
        raise UsageError(f"backup.schedule: at {job.at!r}: use HH:MM (days, weekdays) or :MM (hours)")
    return (int(m.group(1)) if m.group(1) else None), int(m.group(2))


def _validate(jobs) -> None:
    for job in jobs:
        hour, _ = _at(job)
        if job.every in WEEKDAYS and job.interval != 1:
            raise UsageError(f"backup.schedule: every {job.every} takes no interval")
        if job.every.startswith(("second", "minute")) and job.at is not None:
            raise UsageError(f"backup.schedule: every {job.every} takes no 'at'")
        if job.every.startswith("hour") and hour is not None:
            raise UsageError("backup.schedule: every hour: give at as ':MM'")


def _jobs(ctx):
    st = state(ctx)
    jobs = list(st.config.backup.schedule)
    if not jobs:
        raise UsageError("no timetable: backup.schedule is empty in the config",
                         hint="e.g. backup: {schedule: [{every: day, at: '02:30', run: backup}, {every: hour, run: check}]}")
    _validate(jobs)
    return st, jobs


def _opsctl_prefix(st) -> list[str]:
    exe = shutil.which("opsctl") or f"{sys.executable} -m opsctl"
    prefix = exe.split(" ")
    if st.config_file:
        prefix += ["--config", str(st.config_file)]
    return prefix


def _run_job(prefix: list[str], argv: list[str]) -> int:
    started = time.monotonic()
    typer.echo(mask(f"schedule: running {' '.join(argv)}"), err=True)
    proc = subprocess.run([*prefix, *argv], capture_output=True, text=True)
    msg = f"schedule: {' '.join(argv)} exited {proc.returncode} after {time.monotonic() - started:.1f}s"
    typer.echo(mask(msg), err=True)
    if proc.returncode not in (0, 1, 2, 3) or proc.stderr.strip():
        for line in proc.stderr.strip().splitlines()[-5:]:
            typer.echo(mask(f"  {line}"), err=True)
    return proc.returncode


def build(scheduler: schedlib.Scheduler, jobs, prefix: list[str]) -> None:
    for job in jobs:
        if job.every in WEEKDAYS:
            entry = getattr(scheduler.every(), job.every)
        else:
            unit = job.every if job.every.endswith("s") else job.every + "s"
            entry = getattr(scheduler.every(job.interval), unit)
        if job.at:
            entry = entry.at(job.at)
        entry.do(_run_job, prefix, job_argv(job))


@app.callback()
def daemon(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="Run every job once now, then exit (worst exit code)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Stop after this long (tests, one-shot windows)."),
) -> None:
    """Foreground daemon: run the timetable until SIGTERM/SIGINT (for a systemd service or a container)."""
    if ctx.invoked_subcommand:
        return
    st, jobs = _jobs(ctx)
    prefix = _opsctl_prefix(st)
    if once:
        codes = [_run_job(prefix, job_argv(j)) for j in jobs]
        raise typer.Exit(max(codes))
    scheduler = schedlib.Scheduler()
    build(scheduler, jobs, prefix)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    typer.echo(f"schedule: {len(jobs)} job(s); next at {scheduler.next_run}", err=True)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    try:
        while not stopping and (deadline is None or time.monotonic() < deadline):
            scheduler.run_pending()
            idle = scheduler.idle_seconds
            time.sleep(max(0.05, min(1.0, idle if idle is not None else 1.0)))
    except KeyboardInterrupt:
        pass
    typer.echo("schedule: stopped", err=True)


def cron_fields(job) -> str:
    hour, minute = _at(job)
    if job.every.startswith("second"):
        raise UsageError("cron cannot run jobs every few seconds; use 'opsctl schedule' as a daemon")
    if job.every.startswith("minute"):
        return f"*/{job.interval} * * * *" if job.interval > 1 else "* * * * *"
    if job.every.startswith("hour"):
        return f"{minute} */{job.interval} * * *" if job.interval > 1 else f"{minute} * * * *"
    h = hour if hour is not None else 0
    if job.every in WEEKDAYS:
        return f"{minute} {h} * * {WEEKDAYS.index(job.every) + 1 if job.every != 'sunday' else 0}"
    return f"{minute} {h} */{job.interval} * *" if job.interval > 1 else f"{minute} {h} * * *"


def on_calendar(job) -> str:
    hour, minute = _at(job)
    if job.every.startswith("second"):
        raise UsageError("systemd timers here are for minutes and longer; use 'opsctl schedule' for seconds")
    if job.every.startswith("minute"):
        return f"*-*-* *:00/{job.interval}:00"
    if job.every.startswith("hour"):
        return f"*-*-* 00/{job.interval}:{minute:02d}:00"
    h = hour if hour is not None else 0
    if job.every in WEEKDAYS:
        return f"{job.every[:3].capitalize()} *-*-* {h:02d}:{minute:02d}:00"
    day = f"1/{job.interval}" if job.interval > 1 else "*"
    return f"*-*-{day} {h:02d}:{minute:02d}:00"


@app.command("cron")
def cron(ctx: typer.Context, user: str = typer.Option("root", "--user", help="User column (/etc/cron.d format).")) -> None:
    """Print the timetable as /etc/cron.d lines."""
    st, jobs = _jobs(ctx)
    prefix = " ".join(_opsctl_prefix(st))
    typer.echo("# opsctl timetable (from backup.schedule); install as /etc/cron.d/opsctl")
    typer.echo("SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    for job in jobs:
        typer.echo(f"{cron_fields(job)} {user} {prefix} {' '.join(job_argv(job))}")


@app.command("systemd")
def systemd(ctx: typer.Context) -> None:
    """Print a .service + .timer unit pair per job (write them to /etc/systemd/system, enable the timers)."""
    st, jobs = _jobs(ctx)
    prefix = " ".join(_opsctl_prefix(st))
    for i, job in enumerate(jobs):
        name = job_name(i, job)
        typer.echo(f"# --- {name}.service\n[Unit]\nDescription=opsctl {' '.join(job_argv(job))}\n"
                   f"After=network-online.target\n\n[Service]\nType=oneshot\nExecStart={prefix} {' '.join(job_argv(job))}\n"
                   f"Nice=10\nIOSchedulingClass=idle\n")
        typer.echo(f"# --- {name}.timer\n[Unit]\nDescription=opsctl {job.run} timetable\n\n[Timer]\n"
                   f"OnCalendar={on_calendar(job)}\nPersistent=true\nUnit={name}.service\n\n[Install]\nWantedBy=timers.target\n")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="schedule")
