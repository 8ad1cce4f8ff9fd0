"""File backups round trip: permissions, ownership, xattrs, symlinks, excludes, moving aside what is
replaced; keystone keys and swift rings as their own sets. Real tar/zstd on a temporary root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backup_helpers import opsctl, write_config  # noqa: E402

from opsctl.backup.store import Store  # noqa: E402


def _xattrs_supported(path: Path) -> bool:
    try:
        os.setxattr(path, "user.opsctl_probe", b"1")
        return True
    except OSError:
        return False


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    ks = root / "etc" / "keystone"
    (ks / "fernet-keys").mkdir(parents=True)
    (ks / "credential-keys").mkdir()
    (ks / "keystone.conf").write_text("[database]\nconnection = mysql+pymysql://keystone:kspw@db/keystone\n")
    os.chmod(ks / "keystone.conf", 0o640)
    os.chown(ks / "keystone.conf", 0, 42)
    for d in ("fernet-keys", "credential-keys"):
        os.chmod(ks / d, 0o700)
        os.chown(ks / d, 163, 163)
        for n in ("0", "1"):
            (ks / d / n).write_text(f"key-{d}-{n}\n")
            os.chmod(ks / d / n, 0o600)
            os.chown(ks / d / n, 163, 163)
    (ks / "policy.yaml.swp").write_text("editor junk")
    os.symlink("keystone.conf", ks / "current.conf")
    swift = root / "etc" / "swift"
    swift.mkdir(parents=True)
    for f in ("object.ring.gz", "object.builder", "account.ring.gz", "swift.conf"):
        (swift / f).write_bytes(os.urandom(64))
    xattr = _xattrs_supported(ks / "keystone.conf")
    if xattr:
        os.setxattr(ks / "keystone.conf", "user.origin", b"puppet")
    return root, xattr


def _cfg(tmp_path, root_components):
    return write_config(tmp_path / "c.yaml", tmp_path / "store", None, root_components,
                        components=["keystone", "swift"])


OVERRIDES = {"keystone": {"databases": []}, "swift": {"databases": []}}


def test_files_round_trip_with_metadata(tmp_path, tree):
    root, xattr = tree
    cfg = _cfg(tmp_path, OVERRIDES)
    out = opsctl(cfg, "backup", "run", "--root", str(root))
    assert out.returncode == 0, out.stderr
    backup = Store(tmp_path / "store").list()[0]
    sets = {(i.component, i.name) for i in backup.manifest.items}
    assert sets == {("keystone", "config"), ("keystone", "keys"), ("swift", "config"), ("swift", "rings")}
    keys = next(i for i in backup.manifest.items if i.name == "keys")
    assert sorted(keys.source["paths"]) == ["etc/keystone/credential-keys", "etc/keystone/fernet-keys"]
    config_item = next(i for i in backup.manifest.items if i.component == "keystone" and i.name == "config")
    rings = next(i for i in backup.manifest.items if i.name == "rings")
    assert sorted(rings.source["paths"]) == ["etc/swift/account.ring.gz", "etc/swift/object.builder", "etc/swift/object.ring.gz"]

    # restore everything into a fresh root: identical modes, owners, contents, symlinks, xattrs
    fresh = tmp_path / "fresh"
    out = opsctl(cfg, "restore", "--files", "all", "--root", str(fresh), "--yes")
    assert out.returncode == 0, out.stderr
    for src in (root / "etc").rglob("*"):
        rel = src.relative_to(root)
        dst = fresh / rel
        if src.name.endswith(".swp"):
            assert not dst.exists(), "excluded file restored"
            continue
        assert os.path.lexists(dst), rel
        s, d = os.lstat(src), os.lstat(dst)
        assert (s.st_mode, s.st_uid, s.st_gid) == (d.st_mode, d.st_uid, d.st_gid), rel
        if src.is_symlink():
            assert os.readlink(src) == os.readlink(dst)
        elif src.is_file():
            assert src.read_bytes() == dst.read_bytes()
    if xattr:
        assert os.getxattr(fresh / "etc/keystone/keystone.conf", "user.origin") == b"puppet"
    # the keystone config set does not carry the keys twice
    listing = subprocess.run(["tar", "--zstd", "-tf", str(backup.path / config_item.path)], capture_output=True, text=True).stdout
    assert "fernet-keys" not in listing


def test_restore_keys_moves_current_aside(tmp_path, tree):
    root, _ = tree
    cfg = _cfg(tmp_path, OVERRIDES)
    assert opsctl(cfg, "backup", "run", "--root", str(root), "--component", "keystone").returncode == 0
    fernet = root / "etc/keystone/fernet-keys"
    (fernet / "0").write_text("rotated-wrong\n")
    (fernet / "2").write_text("new\n")
    dry = opsctl(cfg, "restore", "--files", "keys", "--root", str(root), "--dry-run")
    assert dry.returncode == 0 and "would move" in dry.stdout
    assert (fernet / "0").read_text() == "rotated-wrong\n"
    refused = opsctl(cfg, "restore", "--files", "keys", "--root", str(root))
    assert refused.returncode == 64
    out = opsctl(cfg, "restore", "--files", "keys", "--root", str(root), "--yes")
    assert out.returncode == 0, out.stderr
    assert (fernet / "0").read_text() == "key-fernet-keys-0\n" and not (fernet / "2").exists()
    aside = [p for p in (root / "etc/keystone").iterdir() if p.name.startswith("fernet-keys.pre-restore-")]
    assert len(aside) == 1 and (aside[0] / "2").read_text() == "new\n" and (aside[0] / "0").read_text() == "rotated-wrong\n"


def test_corrupt_archive_refused_and_nothing_moved(tmp_path, tree):
    root, _ = tree
    cfg = _cfg(tmp_path, OVERRIDES)
    assert opsctl(cfg, "backup", "run", "--root", str(root), "--component", "swift").returncode == 0
    backup = Store(tmp_path / "store").list()[0]
    path = backup.path / next(i.path for i in backup.manifest.items if i.name == "rings")
    with open(path, "r+b") as f:
        f.seek(10)
        f.write(b"\x00\x01\x02")
    out = opsctl(cfg, "restore", "--files", "rings", "--root", str(root), "--yes")
    assert out.returncode == 65 and "corrupt" in out.stderr
    assert not [p for p in (root / "etc").iterdir() if "pre-restore" in p.name]


def test_missing_paths_are_warned_not_fatal(tmp_path, tree):
    root, _ = tree
    cfg = write_config(tmp_path / "c.yaml", tmp_path / "store", None,
                       {"keystone": {"databases": []}, "nova": {"databases": []}}, components=["keystone", "nova"])
    out = opsctl(cfg, "backup", "run", "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert "nova: config: none of /etc/nova exists" in out.stderr
    nothing = write_config(tmp_path / "n.yaml", tmp_path / "store2", None, {"nova": {"databases": []}}, components=["nova"])
    out = opsctl(nothing, "backup", "run", "--root", str(root))
    assert out.returncode == 64 and "nothing to back up" in out.stderr
    assert Store(tmp_path / "store2").list() == []


def test_restore_asks_on_a_terminal(tmp_path, tree):
    """On a TTY restore asks before overwriting: 'n' changes nothing, 'y' restores."""
    import pty

    from backup_helpers import CLI, env_for

    root, _ = tree
    cfg = _cfg(tmp_path, OVERRIDES)
    assert opsctl(cfg, "backup", "run", "--root", str(root), "--component", "keystone").returncode == 0
    conf = root / "etc/keystone/keystone.conf"
    conf.write_text("changed\n")
    for answer, code in (("n", 64), ("y", 0)):
        master, slave = pty.openpty()
        proc = subprocess.Popen([*CLI, "--config", str(cfg), "restore", "--files", "config", "--root", str(root)],
                                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_for())
        os.close(slave)
        os.write(master, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=60)
        os.close(master)
        assert proc.returncode == code, err
        if answer == "n":
            assert "cancelled" in err and conf.read_text() == "changed\n"
    assert conf.read_text().startswith("[database]")
