"""`opsctl inventory`: show the hosts and roles opsctl will use, test SSH, import Ansible inventories."""

from __future__ import annotations

import json

import typer
import yaml
from rich.console import Console
from rich.table import Table

from opsctl import inventory as inv
from opsctl.cli.common import state
from opsctl.errors import EXIT_UNAVAILABLE
from opsctl.fanout import fan_out
from opsctl.hosts import HostError

app = typer.Typer(help="Show and test the inventory.", no_args_is_help=False, invoke_without_command=True)


@app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    ping: bool = typer.Option(False, "--ping", help="Connect to every host (SSH) and report reachability."),
    as_json: bool = typer.Option(False, "--json", help="JSON output."),
) -> None:
    """List the hosts with roles and address (default subcommand)."""
    if ctx.invoked_subcommand:
        return
    st = state(ctx)
    inventory = st.inventory
    reach: dict[str, str] = {}
    failed = 0
    if ping:
        def probe(spec: inv.HostSpec) -> str:
            host = spec.connect()
            try:
                result = host.run(["true"], timeout=10)
                return "ok" if result.ok else f"rc={result.rc}"
            finally:
                host.close()

        for out in fan_out(inventory.hosts, probe, concurrency=st.config.inventory.concurrency, timeout=30):
            if out.error is not None:
                failed += 1
                msg = out.error.message if isinstance(out.error, HostError) else f"{type(out.error).__name__}: {out.error}"
                reach[out.item.name] = f"FAILED: {msg}"
            elif out.timed_out:
                failed += 1
                reach[out.item.name] = "FAILED: timed out"
            else:
                reach[out.item.name] = out.value or ""
    rows = [
        {"name": h.name, "roles": sorted(h.roles), "address": h.address or "local",
         "ssh": f"{h.ssh.user}@{h.ssh.address}:{h.ssh.port}" if h.ssh else None,
         **({"reachable": reach[h.name]} if ping else {})}
        for h in inventory.hosts
    ]
    if as_json:
        typer.echo(json.dumps({"source": inventory.source, "hosts": rows}, indent=2))
    else:
        table = Table("Host", "Roles", "Address", *(["Reachable"] if ping else []), title=f"inventory: {inventory.source}")
        for row in rows:
            table.add_row(row["name"], ",".join(row["roles"]) or "-", row["address"], *([row["reachable"]] if ping else []))
        Console().print(table)
    if failed:
        raise typer.Exit(EXIT_UNAVAILABLE)


@app.command("import")
def import_ini(path: str = typer.Argument(..., help="kolla-ansible multinode or OpenStack-Ansible INI inventory.")) -> None:
    """Convert an Ansible INI inventory to the opsctl `inventory:` config section (YAML on stdout)."""
    imported = inv.from_ansible_ini(path)
    hosts = {}
    for h in imported.hosts:
        entry: dict = {"roles": sorted(h.roles)}
        if h.ssh is None:
            entry["local"] = True
        else:
            entry["address"] = h.ssh.address
            ssh = {k: v for k, v in (("user", h.ssh.user), ("port", h.ssh.port), ("key_file", h.ssh.key_file)) if v not in (None, 22, "root")}
            if ssh:
                entry["ssh"] = ssh
        hosts[h.name] = entry
    typer.echo(yaml.safe_dump({"inventory": {"hosts": hosts}}, sort_keys=False), nl=False)
