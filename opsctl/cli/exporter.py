"""`opsctl exporter`: serve Prometheus metrics (checks, OpenStack APIs, Galera, RabbitMQ, backups) over HTTP."""

from __future__ import annotations

import signal
import sys
import threading
from typing import List, Optional

import typer

from opsctl.cli.common import state
from opsctl.errors import UnavailableError, UsageError


def exporter(
    ctx: typer.Context,
    listen: Optional[str] = typer.Option(None, "--listen", help="Address to bind (default: exporter.listen)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port to bind (default: exporter.port, 9180)."),
    once: bool = typer.Option(False, "--once", help="Collect once, print the exposition and exit."),
    cloud: List[str] = typer.Option([], "--cloud", help="Cloud name from clouds.yaml (repeatable; default cloud.clouds)."),
    collector: List[str] = typer.Option([], "--collector", help="Only this collector plugin (repeatable)."),
) -> None:
    """Serve Prometheus metrics; collectors refresh in the background, a scrape never waits for an API."""
    from opsctl.exporters.prometheus import Exporter, ExporterContext, load_sources

    st = state(ctx)
    cfg = st.config
    if port is not None and not 0 <= port <= 65535:
        raise UsageError(f"invalid port {port}", hint="use 1-65535 (0: any free port)")
    ectx = ExporterContext(cfg, st.catalog, st.inventory, clouds=tuple(cloud))
    sources, problems = load_sources(ectx, tuple(collector))
    for p in problems:
        typer.echo(f"warning: {p}", err=True)
    interval = cfg.exporter.refresh_interval
    max_age = cfg.exporter.max_cache_age or 5 * max(interval, cfg.exporter.checks_interval or 0)
    exp = Exporter(sources, max_cache_age=max_age, isolate=not once)
    if once:
        exp.refresher.run_all_once()
        sys.stdout.buffer.write(exp.exposition())
        sys.stdout.flush()
        failed = [s for s in exp.cache.states() if not s.up]
        for s in failed:
            typer.echo(f"warning: collector {s.name}{'/' + s.cloud if s.cloud else ''} failed: {s.last_error}", err=True)
        raise typer.Exit(0)
    address = listen or cfg.exporter.listen
    exp.start()  # the collectors' process first: it must not inherit the listening socket
    try:
        server = exp.serve(address, cfg.exporter.port if port is None else port)
    except OSError as exc:
        exp.stop()
        raise UnavailableError(f"cannot listen on {address}:{port or cfg.exporter.port}: {exc.strerror}",
                               hint="choose another --port or stop what is using it") from None
    typer.echo(f"opsctl exporter listening on http://{server.server_address[0]}:{server.server_address[1]}/metrics "
               f"({len(sources)} collectors)", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    exp.stop()
    server.shutdown()


def register(app: typer.Typer) -> None:
    app.command("exporter", help=exporter.__doc__)(exporter)
