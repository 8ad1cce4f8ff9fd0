"""A non-root login user with `become: true` (sudo -n), against real sshd hosts and the real sudo.

kolla-ansible deployments log in as `kolla` and become root; without become, root-only files and
commands fail. Two local users are created for this module (the namespace hosts share /etc/passwd):
one with a NOPASSWD sudo rule, one without.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from opsctl.backup import files as filesmod
from opsctl.backup.compression import codec
from opsctl.hosts import CommandTimeout, HostAuthError, SSHHost, SSHSettings

OP, NOSUDO = "opsctl-op", "opsctl-nosudo"
SUDOERS = Path("/etc/sudoers.d/opsctl-test")


@pytest.fixture(scope="module")
def users(ssh_hosts):
    if shutil.which("sudo") is None:
        pytest.fail("sudo is not installed (tests/run.sh installs it)")
    for user in (OP, NOSUDO):
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", user], check=True)
        # '*': no password, but not locked ('!'), which sshd without PAM would refuse
        subprocess.run(["usermod", "-p", "*", user], check=True)
    SUDOERS.write_text(f"{OP} ALL=(ALL) NOPASSWD: ALL\n")
    os.chmod(SUDOERS, 0o440)
    # the users must be able to read the shared authorized_keys file
    os.chmod(ssh_hosts.base, 0o711)
    os.chmod(ssh_hosts.base / "authorized_keys", 0o644)
    yield
    SUDOERS.unlink(missing_ok=True)
    for user in (OP, NOSUDO):
        subprocess.run(["userdel", user], check=False)


def _host(ssh_hosts, user: str, become: bool) -> SSHHost:
    spec = ssh_hosts.hosts["controller"]
    return SSHHost("controller", SSHSettings(spec.address, user=user, key_file=ssh_hosts.key_file,
                                             known_hosts=ssh_hosts.known_hosts, connect_timeout=5, become=become))


@pytest.fixture
def secret_dir(tmp_path):
    os.chmod(tmp_path, 0o755)
    d = tmp_path / "fernet-keys"
    d.mkdir(mode=0o700)
    (d / "0").write_text("root-only key\n")
    os.chmod(d / "0", 0o600)
    return d


def test_without_become_the_login_user_has_its_own_rights(users, ssh_hosts, secret_dir):
    host = _host(ssh_hosts, OP, become=False)
    try:
        assert host.run(["id", "-un"]).stdout.strip() == OP
        with pytest.raises(PermissionError):
            host.read_file(str(secret_dir / "0"))
    finally:
        host.close()


def test_become_runs_commands_and_reads_files_as_root(users, ssh_hosts, secret_dir, tmp_path):
    host = _host(ssh_hosts, OP, become=True)
    try:
        res = host.run(["id", "-un"])
        assert res.ok and res.stdout.strip() == "root"
        assert host.read_file(str(secret_dir / "0")) == b"root-only key\n"
        assert host.glob(str(secret_dir / "*")) == [str(secret_dir / "0")]
        with host.open(str(secret_dir / "0")) as fh:
            assert fh.read() == b"root-only key\n"
        # a file set only root can read, archived through sudo tar
        fs = filesmod.FileSet("keys", (str(secret_dir),))
        out = filesmod.archive_on(host, fs, tmp_path / "keys.tar.zst", codec("zstd", None))
        listing = subprocess.run(["tar", "-tvf", str(tmp_path / "keys.tar.zst")], capture_output=True, text=True).stdout
        assert out.result.size > 0 and "-rw-------" in listing and listing.rstrip().endswith("/fernet-keys/0")
        # the remote timeout runs under sudo too, so it can stop what it started
        t0 = time.monotonic()
        with pytest.raises(CommandTimeout):
            host.run(["sleep", "37.25"], timeout=1)
        assert time.monotonic() - t0 < 5
        deadline = time.monotonic() + 6
        while subprocess.run(["pgrep", "-f", "^sleep 37.25$"], capture_output=True).returncode == 0:
            assert time.monotonic() < deadline, "the command outlived its timeout"
            time.sleep(0.2)
    finally:
        host.close()


def test_become_without_a_sudo_rule_is_a_clear_error(users, ssh_hosts, secret_dir):
    host = _host(ssh_hosts, NOSUDO, become=True)
    try:
        with pytest.raises(HostAuthError, match="sudo as opsctl-nosudo failed"):
            host.run(["id", "-un"])
        with pytest.raises(HostAuthError, match="sudo"):
            host.read_file(str(secret_dir / "0"))
        with pytest.raises(HostAuthError, match="sudo"):
            filesmod.archive_on(host, filesmod.FileSet("k", ("/etc/hostname",)), secret_dir.parent / "x.tar", codec("none", None))
    finally:
        host.close()
