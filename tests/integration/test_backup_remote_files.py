"""File sets backed up from, and restored to, other hosts over SSH (real sshd hosts in network namespaces).

tar runs on the host; its stream comes back over the SSH channel and is compressed and hashed here.
The namespace hosts share this machine's file system, so each test gives them their own --root tree;
what proves the SSH path is the manifest (host, remote), the per-host store paths, and a host whose
sshd is stopped failing alone while the others are kept.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backup_helpers import opsctl, write_config  # noqa: E402

import yaml  # noqa: E402

ROLES = {"controller": ["controller"], "compute1": ["compute"], "network1": ["network"]}
COMPONENTS = {
    "keystone": {"databases": [], "config_dirs": ["/etc/keystone"], "key_dirs": ["/etc/keystone/fernet-keys"]},
    "nova": {"databases": [], "config_dirs": ["/etc/nova"], "state_dirs": []},
}


def _tree(root: Path) -> None:
    ks = root / "etc" / "keystone"
    (ks / "fernet-keys").mkdir(parents=True)
    (ks / "keystone.conf").write_text("[database]\nconnection = mysql+pymysql://keystone:kspw@db/keystone\n")
    os.chmod(ks / "keystone.conf", 0o640)
    os.chown(ks / "keystone.conf", 0, 42)
    os.chmod(ks / "fernet-keys", 0o700)
    os.chown(ks / "fernet-keys", 163, 163)
    for n in ("0", "1"):
        (ks / "fernet-keys" / n).write_text(f"fernet-{n}\n")
        os.chmod(ks / "fernet-keys" / n, 0o600)
        os.chown(ks / "fernet-keys" / n, 163, 163)
    nova = root / "etc" / "nova"
    nova.mkdir(parents=True)
    (nova / "nova.conf").write_bytes(os.urandom(300_000))  # more than one SSH window/packet


@pytest.fixture
def setup(tmp_path, ssh_hosts):
    root = tmp_path / "root"
    _tree(root)
    cfg = write_config(tmp_path / "opsctl.yaml", tmp_path / "store", None, COMPONENTS, components=["keystone", "nova"])
    data = yaml.safe_load(cfg.read_text())
    data["inventory"] = ssh_hosts.inventory(ROLES)
    cfg.write_text(yaml.safe_dump(data))
    return cfg, root, tmp_path / "store"


def _listing(cfg) -> list[dict]:
    out = opsctl(cfg, "backup", "list", "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _tar_tv(path: Path) -> str:
    return subprocess.run(["tar", "--numeric-owner", "-tvf", str(path)], capture_output=True, text=True, check=True).stdout


def test_files_come_from_the_hosts_with_the_role(setup, ssh_hosts):
    cfg, root, store = setup
    dry = opsctl(cfg, "backup", "run", "--no-databases", "--root", str(root), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "on controller over SSH" in dry.stdout and "on compute1 over SSH" in dry.stdout
    assert "network1" not in dry.stdout  # neither keystone nor nova runs on a network node

    out = opsctl(cfg, "backup", "run", "--no-databases", "--root", str(root))
    assert out.returncode == 0, out.stderr + out.stdout
    [b] = _listing(cfg)
    got = {(i["source"]["host"], i["component"], i["name"]): i for i in b["items"]}
    assert set(got) == {("controller", "keystone", "config"), ("controller", "keystone", "keys"),
                        ("controller", "nova", "config"), ("compute1", "nova", "config")}
    item = got[("controller", "keystone", "keys")]
    assert item["source"]["remote"] is True and item["path"] == "files/controller/keystone-keys.tar.zst"
    path = next(store.rglob("keystone-keys.tar.zst"))
    listing = _tar_tv(path)
    assert "-rw------- 163/163" in listing and "etc/keystone/fernet-keys/1" in listing
    conf = _tar_tv(next(p for p in store.rglob("keystone-config.tar.zst")))
    assert "-rw-r----- 0/42" in conf and "fernet-keys/0" not in conf  # keys are their own set
    ver = opsctl(cfg, "backup", "verify")
    assert ver.returncode == 0, ver.stdout + ver.stderr

    # --host: the named host only, whatever its roles
    out = opsctl(cfg, "backup", "run", "--no-databases", "--root", str(root), "-c", "keystone", "--host", "network1")
    assert out.returncode == 0, out.stderr
    newest = _listing(cfg)[-1]
    assert {(i["source"]["host"], i["name"]) for i in newest["items"]} == {("network1", "config"), ("network1", "keys")}


def test_restore_goes_back_to_the_host_keeping_what_it_replaces(setup):
    cfg, root, _ = setup
    assert opsctl(cfg, "backup", "run", "--no-databases", "--root", str(root), "-c", "keystone").returncode == 0
    keys = root / "etc" / "keystone" / "fernet-keys"
    (keys / "1").write_text("rotated-wrong\n")
    dry = opsctl(cfg, "restore", "--component", "keystone", "--root", str(root), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would move controller:{root}/etc/keystone aside" in dry.stdout
    assert "on controller over SSH" in dry.stdout
    assert (keys / "1").read_text() == "rotated-wrong\n"  # dry-run changed nothing

    refused = opsctl(cfg, "restore", "--component", "keystone", "--root", str(root), input="n\n")
    assert refused.returncode == 64 and (keys / "1").read_text() == "rotated-wrong\n"

    out = opsctl(cfg, "restore", "--component", "keystone", "--root", str(root), "--yes")
    assert out.returncode == 0, out.stderr + out.stdout
    assert "restored under" in out.stdout and "on controller" in out.stdout
    st = os.stat(keys / "1")
    assert (keys / "1").read_text() == "fernet-1\n"
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, 163, 163)
    conf = os.stat(root / "etc" / "keystone" / "keystone.conf")
    assert (conf.st_mode & 0o777, conf.st_gid) == (0o640, 42)
    kept = [p for p in (root / "etc").iterdir() if p.name.startswith("keystone.pre-restore-")]
    assert len(kept) == 1 and (kept[0] / "fernet-keys" / "1").read_text() == "rotated-wrong\n"
    assert "kept: controller:" in out.stdout


def test_one_unreachable_host_fails_alone(setup, ssh_hosts):
    cfg, root, store = setup
    ssh_hosts.stop_sshd("controller")
    try:
        out = opsctl(cfg, "backup", "run", "--no-databases", "--root", str(root), "-c", "nova")
    finally:
        ssh_hosts.start_sshd("controller")
    assert out.returncode == 69, out.stdout + out.stderr
    assert "INCOMPLETE" in out.stdout
    assert "files of host controller not backed up" in out.stderr
    assert "Traceback" not in out.stderr
    [b] = _listing(cfg)  # what could be read is kept, and says what is missing
    assert [(i["source"]["host"], i["component"]) for i in b["items"]] == [("compute1", "nova")]
    assert any("controller" in w for w in b["warnings"])
    assert not list(store.rglob("controller"))  # no partial archive of the dead host

    # every host down: nothing is stored, nothing half-written
    ssh_hosts.stop_sshd("controller")
    try:
        out = opsctl(cfg, "backup", "run", "--no-databases", "--root", str(root), "-c", "keystone")
    finally:
        ssh_hosts.start_sshd("controller")
    assert out.returncode == 69 and "nothing backed up" in out.stderr
    assert len(_listing(cfg)) == 1
