"""`opsctl exporter` command: --once prints a lint-clean exposition; bad input is a usage error."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone

import yaml

from opsctl.cli.main import main


def _config(tmp_path, store):
    cfg = tmp_path / "opsctl.yaml"
    cfg.write_text(yaml.safe_dump({"backup": {"store": str(store)}}))
    return str(cfg)


def test_once_prints_the_exposition_of_the_chosen_collector(tmp_path, capsysbinary):
    from opsctl.backup.store import Item, Store

    store = Store(tmp_path / "store")
    with store.lock():
        manifest, work = store.begin(now=datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc))
        (work / "k.tar").write_bytes(b"x" * 10)
        manifest.items.append(Item("files", "keystone", "config", "k.tar", "none", 10, "", 0.2))
        store.commit(manifest, work)
    rc = main(["--config", _config(tmp_path, tmp_path / "store"), "exporter", "--once", "--collector", "backup"])
    out = capsysbinary.readouterr().out
    assert rc == 0
    assert b'opsctl_backup_size_bytes{component="keystone",target="keystone/config",type="files"} 10.0' in out
    assert b'opsctl_collector_up{cloud="",collector="backup"} 1.0' in out
    lint = subprocess.run(["promtool", "check", "metrics"], input=out, capture_output=True)
    assert lint.returncode == 0 and not lint.stderr.strip(), lint


def test_unknown_collector_is_a_usage_error(tmp_path, capsys):
    rc = main(["--config", _config(tmp_path, tmp_path), "exporter", "--once", "--collector", "nope"])
    assert rc == 64
    assert "unknown collector(s): nope" in capsys.readouterr().err


def test_port_in_use_is_a_clear_error(tmp_path, capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc = main(["--config", _config(tmp_path, tmp_path), "exporter", "--collector", "backup", "--port", str(port)])
    assert rc == 69
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
