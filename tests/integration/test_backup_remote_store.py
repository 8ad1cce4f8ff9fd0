"""The remote store over rsync+ssh to a real sshd host: push after each run, list it, pull it back after the
local store is lost (checksums verified before the backup is listed), refuse a corrupt remote copy."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backup_helpers import opsctl, write_config  # noqa: E402

COMPONENTS = {"keystone": {"databases": [], "config_dirs": ["/etc/keystone"], "key_dirs": []}}


@pytest.fixture
def setup(tmp_path, ssh_hosts):
    root = tmp_path / "root"
    (root / "etc" / "keystone").mkdir(parents=True)
    (root / "etc" / "keystone" / "keystone.conf").write_text("[token]\nprovider = fernet\n")
    vault = tmp_path / "vault"  # the namespace host shares this file system; reached only through its sshd
    vault.mkdir()
    spec = ssh_hosts.hosts["network1"]
    ssh = ["ssh", "-i", ssh_hosts.key_file, "-o", f"UserKnownHostsFile={ssh_hosts.known_hosts}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    cfg = write_config(tmp_path / "opsctl.yaml", tmp_path / "store", None, COMPONENTS, components=["keystone"],
                       remote=f"root@{spec.address}:{vault}", remote_ssh=ssh)
    return cfg, root, tmp_path / "store", vault


def _run(cfg, *args, code=0):
    out = opsctl(cfg, *args)
    assert out.returncode == code, out.stdout + out.stderr
    return out


def test_push_list_pull_after_losing_the_local_store(setup):
    cfg, root, store, vault = setup
    ids = []
    for _ in range(2):
        _run(cfg, "backup", "run", "--root", str(root))
        ids.append(json.loads(_run(cfg, "backup", "list", "--format", "json").stdout)[-1]["id"])
    assert sorted(p.name for p in vault.iterdir()) == sorted(ids)
    (vault / "20200101T000000Z").mkdir()  # an interrupted push: data without a manifest
    (vault / "20200101T000000Z" / "files").mkdir()
    remote = json.loads(_run(cfg, "backup", "list", "--remote", "--format", "json").stdout)
    assert [m["id"] for m in remote] == ids

    shutil.rmtree(store)  # the backup host was rebuilt
    assert "no backups" in _run(cfg, "backup", "list").stdout
    out = _run(cfg, "backup", "pull")
    assert f"pulled {ids[-1]}" in out.stdout and "checksums verified" in out.stdout
    assert [b["id"] for b in json.loads(_run(cfg, "backup", "list", "--format", "json").stdout)] == [ids[-1]]
    assert "already in" in _run(cfg, "backup", "pull", ids[-1]).stdout
    _run(cfg, "backup", "pull", "all")
    assert len(json.loads(_run(cfg, "backup", "list", "--format", "json").stdout)) == 2

    (root / "etc" / "keystone" / "keystone.conf").write_text("broken\n")
    _run(cfg, "restore", "--files", "config", "--root", str(root), "--yes")
    assert (root / "etc" / "keystone" / "keystone.conf").read_text() == "[token]\nprovider = fernet\n"


def test_corrupt_remote_copy_is_refused_and_nothing_is_listed(setup):
    cfg, root, store, vault = setup
    _run(cfg, "backup", "run", "--root", str(root))
    [bid] = [p.name for p in vault.iterdir()]
    archive = next((vault / bid).rglob("*.tar.zst"))
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    shutil.rmtree(store)
    out = _run(cfg, "backup", "pull", bid, code=65)
    assert "corrupt" in out.stderr and "sha256" in out.stderr and "Traceback" not in out.stderr
    assert "no backups" in _run(cfg, "backup", "list").stdout
    assert not any((store / ".inprogress").iterdir())
    assert _run(cfg, "backup", "pull", "20990101T000000Z", code=64).stderr.startswith("error: no complete backup")


def test_prune_remote_keeps_what_the_policy_keeps(setup):
    cfg, root, store, vault = setup
    data = yaml.safe_load(cfg.read_text())
    data["backup"]["retention"] = {"daily": 1}
    cfg.write_text(yaml.safe_dump(data))
    for _ in range(3):
        _run(cfg, "backup", "run", "--root", str(root))
    ids = sorted(p.name for p in vault.iterdir())
    assert len(ids) == 3
    dry = _run(cfg, "backup", "prune", "--remote", "--dry-run").stdout
    assert dry.count("would delete") == 2 and f"keep   {ids[-1]}" in dry
    assert len(list(vault.iterdir())) == 3
    _run(cfg, "backup", "prune", "--remote")
    assert [p.name for p in vault.iterdir()] == [ids[-1]]
    assert [m["id"] for m in json.loads(_run(cfg, "backup", "list", "--remote", "--format", "json").stdout)] == [ids[-1]]
    assert len(json.loads(_run(cfg, "backup", "list", "--format", "json").stdout)) == 3  # the local store is its own
