"""Shared fixtures: real servers (tests/servers.py) and the real OpenStack testbed (tests/testbed/).

The testbed is one shared control plane on 127.0.0.1. Tests that break it on purpose take the
`testbed_faults` fixture, which serialises them with a file lock and waits for the bed to be healthy
again afterwards.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import servers  # noqa: E402

TESTBED = Path(os.environ.get("OPSCTL_TESTBED", "/tmp/minios"))
TESTBED_SCRIPTS = Path(__file__).parent / "testbed"
SHARED_DATA = Path(os.environ.get("OPSCTL_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def mariadb():
    db = servers.MariaDB(servers.tempdir("mariadb")).start()
    yield db
    db.cleanup()


@pytest.fixture(scope="session")
def rabbitmq():
    rmq = servers.RabbitMQ(servers.tempdir("rabbitmq")).start()
    yield rmq
    rmq.cleanup()


@pytest.fixture(scope="session")
def ssh_hosts():
    """Three real sshd hosts in network namespaces: controller, compute1, network1."""
    # OPSCTL_TEST_SSH_PREFIX/_OCTET: a second test run on the same machine gets its own namespaces
    hosts = servers.SSHHosts(servers.tempdir("ssh"), ["controller", "compute1", "network1"],
                             prefix=os.environ.get("OPSCTL_TEST_SSH_PREFIX", "opt"),
                             first_octet=int(os.environ.get("OPSCTL_TEST_SSH_OCTET", "10"))).start()
    yield hosts
    hosts.cleanup()


@pytest.fixture(scope="session")
def es_server():
    es = servers.ElasticsearchAPI(servers.tempdir("es")).start()
    yield es
    es.cleanup()


@pytest.fixture(scope="session")
def memcached():
    mc = servers.Memcached().start()
    yield mc
    mc.cleanup()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.fail(f"shared test data not found at {SHARED_DATA} (set OPSCTL_SHARED_DATA)")
    return SHARED_DATA


# ------------------------------------------------------------------------------------------ testbed
def _testbed_clouds_yaml() -> Path:
    return TESTBED / "etc" / "clouds.yaml"


@pytest.fixture(scope="session")
def testbed():
    """The running real OpenStack testbed (started by tests/run.sh through tests/testbed/up.sh)."""
    clouds = _testbed_clouds_yaml()
    if not clouds.exists():
        if os.environ.get("OPSCTL_SKIP_E2E") == "1":
            pytest.skip("OPSCTL_SKIP_E2E=1 and the testbed is not running")
        pytest.fail(f"the OpenStack testbed is not up ({clouds} missing): run tests/testbed/up.sh")
    return Testbed(TESTBED)


class Testbed:
    """Handles on the testbed: its clouds.yaml, pid files, logs and restart helpers."""

    def __init__(self, base: Path):
        self.base = base
        self.clouds_yaml = base / "etc" / "clouds.yaml"
        self.cloud = "testbed"
        self.logs = base / "logs"
        self.pids = base / "pids"

    def env(self) -> dict[str, str]:
        return {**os.environ, "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml), "OS_CLOUD": self.cloud}

    def pid(self, service: str) -> int | None:
        f = self.pids / f"{service}.pid"
        try:
            pid = int(f.read_text().strip())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def kill(self, service: str, sig: int = 9) -> None:
        """Kill a testbed daemon (nova-compute, cinder-volume, fake-neutron-agents, ...) and its children."""
        import psutil

        pid = self.pid(service)
        if pid is None:
            return
        proc = psutil.Process(pid)
        for p in proc.children(recursive=True) + [proc]:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        proc.wait(30)

    def up(self) -> None:
        """Restart whatever is not running (up.sh is idempotent)."""
        import subprocess

        env = {**os.environ, "OPSCTL_TESTBED": str(self.base), "SKIP_SMOKE": "1", "OPSCTL_TESTBED_FAST": "1"}
        out = subprocess.run(["bash", str(TESTBED_SCRIPTS / "up.sh")], env=env, capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            raise RuntimeError(f"testbed up.sh failed: {out.stdout[-2000:]}{out.stderr[-2000:]}")


@pytest.fixture
def testbed_faults(testbed):
    """Exclusive use of the testbed for fault injection; brought back up (up.sh) afterwards."""
    lock_path = Path(os.environ.get("OPSCTL_TESTBED_LOCK", "/tmp/opsctl-testbed.lock"))
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield testbed
        finally:
            testbed.up()
