"""Throwaway real servers for tests and benchmarks: MariaDB, RabbitMQ, sshd hosts in network
namespaces, Prometheus, memcached and an Elasticsearch-API server (noida-db).

Every server binds loopback (or its own network namespace address in 198.18.0.0/24), lives in a
temporary directory and is stopped by `stop()`. Nothing here is a fake: these are the Debian
packages' daemons (noida-db is a reimplementation of the Elasticsearch 8 API, the only ES-API server
that can run here; the code under test talks to it through the official client only).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

RABBIT_BIN = "/usr/lib/rabbitmq/bin"
BRIDGE = "opsbr0"
SUBNET = "198.18.0"
BRIDGE_ADDR = f"{SUBNET}.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}" + (f": {last_exc}" if last_exc else ""))


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _kill(proc: subprocess.Popen | None, grace: float = 10) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _kill_group(proc: subprocess.Popen | None, grace: float = 10) -> None:
    """Stop a process started with start_new_session=True and everything it spawned."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; give its children the same grace
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


# ---------------------------------------------------------------------------------------- MariaDB
@dataclass
class MariaDB:
    """A MariaDB server on 127.0.0.1:port with root password auth."""

    base: Path
    port: int = 0
    password: str = "rootpw-test"
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> str:
        return str(self.base / "mysqld.sock")

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    def start(self) -> "MariaDB":
        self.port = self.port or free_port()
        fresh = not (self.datadir / "mysql").exists()
        if fresh:
            self.datadir.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={self.datadir}",
                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                check=True, capture_output=True,
            )
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--user=root", f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.base / 'mysqld.pid'}",
             f"--log-error={self.base / 'mysqld.err'}", "--innodb-buffer-pool-size=64M", "--skip-name-resolve",
             "--performance-schema=OFF", "--max-connections=200", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: os.path.exists(self.socket) and port_open("127.0.0.1", self.port), 60, "mariadbd")
        if fresh:
            # mariadb-install-db creates root@localhost and root@127.0.0.1 without a password
            self.sql(f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{self.password}'; "
                     f"CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '{self.password}'; "
                     f"ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '{self.password}'; "
                     "GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION; FLUSH PRIVILEGES;", password="")
        return self

    def client_args(self, password: str | None = None) -> list[str]:
        pw = self.password if password is None else password
        return ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", *( [f"-p{pw}"] if pw else [] )]

    def sql(self, statement: str, database: str | None = None, password: str | None = None) -> str:
        argv = self.client_args(password) + ["-N", "-B", "-e", statement] + ([database] if database else [])
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout

    def stop(self) -> None:
        _kill(self.proc, grace=30)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------------------------- RabbitMQ
@dataclass
class RabbitMQ:
    """A RabbitMQ node with its own epmd, AMQP and management ports (guest/guest on loopback)."""

    base: Path
    node_port: int = 0
    dist_port: int = 0
    epmd_port: int = 0
    mgmt_port: int = 0
    nodename: str = ""

    def env(self) -> dict[str, str]:
        b = self.base
        return {
            **os.environ,
            "HOME": str(b / "home"),
            "RABBITMQ_NODENAME": self.nodename,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.node_port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONFIG_FILE": str(b / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(b / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(b / "mnesia"),
            "RABBITMQ_LOG_BASE": str(b / "log"),
            "RABBITMQ_PID_FILE": str(b / "rabbit.pid"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    @property
    def ctl(self) -> list[str]:
        """argv prefix for rabbitmqctl against this node, usable as the `rabbitmq.rabbitmqctl` config.

        The bin/ scripts, not the /usr/sbin wrappers, which switch to the rabbitmq user (another cookie).
        """
        return ["env", f"HOME={self.base / 'home'}", f"ERL_EPMD_PORT={self.epmd_port}",
                "RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
                f"{RABBIT_BIN}/rabbitmqctl", "-n", self.nodename]

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.node_port}/"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.mgmt_port}"

    def start(self) -> "RabbitMQ":
        for attr in ("node_port", "dist_port", "epmd_port", "mgmt_port"):
            if not getattr(self, attr):
                setattr(self, attr, free_port())
        self.nodename = self.nodename or f"opsctltest{self.node_port}@localhost"
        for d in ("home", "mnesia", "log"):
            (self.base / d).mkdir(parents=True, exist_ok=True)
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.node_port}\nloopback_users.guest = true\n"
            f"management.tcp.port = {self.mgmt_port}\nmanagement.tcp.ip = 127.0.0.1\n"
        )
        subprocess.run([f"{RABBIT_BIN}/rabbitmq-server", "-detached"], env=self.env(), check=True, capture_output=True)
        time.sleep(1)
        wait_for(lambda: (self.base / "rabbit.pid").exists(), 60, "rabbitmq pid file")
        subprocess.run(self.ctl + ["wait", "--timeout", "90", str(self.base / "rabbit.pid")], env=self.env(),
                       check=True, capture_output=True)
        return self

    def rabbitmqctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(self.ctl + list(args), env=self.env(), check=check, capture_output=True, text=True, timeout=60)

    def wait_management(self, timeout: float = 60) -> None:
        import urllib.request
        import base64

        def ready() -> bool:
            req = urllib.request.Request(self.management_url + "/api/overview")
            req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
            with urllib.request.urlopen(req, timeout=2) as resp:
                return resp.status == 200

        wait_for(ready, timeout, "rabbitmq management API", interval=0.5)

    def stop(self) -> None:
        self.rabbitmqctl("stop", check=False)
        pid_file = self.base / "rabbit.pid"
        # its private epmd
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True, env=self.env())
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------------------------- sshd hosts
def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    argv = (["ip", "netns", "exec", netns] if netns else []) + ["ip", *args]
    return subprocess.run(argv, check=check, capture_output=True, text=True)


@dataclass
class SSHHostSpec:
    name: str
    address: str
    netns: str
    port: int = 22
    proc: subprocess.Popen | None = None
    host_key: paramiko.PKey | None = None


@dataclass
class SSHHosts:
    """N hosts, each a network namespace with its own address on a bridge, running a real sshd.

    The client key and a known_hosts file with every host key are in `base`. Host processes share
    the machine's PID namespace and filesystem (what `ps` on a host shows is this machine's).
    """

    base: Path
    names: list[str]
    prefix: str = "ops"
    first_octet: int = 10
    sshd_extra: str = ""  # more sshd_config lines
    hosts: dict[str, SSHHostSpec] = field(default_factory=dict)

    @property
    def key_file(self) -> str:
        return str(self.base / "id_ed25519")

    @property
    def known_hosts(self) -> str:
        return str(self.base / "known_hosts")

    def start(self) -> "SSHHosts":
        self.base.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", self.key_file], check=True)
        (self.base / "authorized_keys").write_text(Path(self.key_file + ".pub").read_text())
        os.chmod(self.base / "authorized_keys", 0o600)
        if _ip("link", "show", BRIDGE, check=False).returncode != 0:
            _ip("link", "add", BRIDGE, "type", "bridge")
            _ip("addr", "add", f"{BRIDGE_ADDR}/24", "dev", BRIDGE)
            _ip("link", "set", BRIDGE, "up")
        known = []
        for i, name in enumerate(self.names):
            octet = self.first_octet + i
            ns = f"{self.prefix}-{name}"
            spec = SSHHostSpec(name, f"{SUBNET}.{octet}", ns)
            self._make_netns(spec, octet)
            self._start_sshd(spec)
            known.append(f"{spec.address} {spec.host_key.get_name()} {spec.host_key.get_base64()}")
            self.hosts[name] = spec
        Path(self.known_hosts).write_text("\n".join(known) + "\n")
        for spec in self.hosts.values():
            wait_for(lambda s=spec: port_open(s.address, s.port), 20, f"sshd on {spec.name}")
        return self

    def _make_netns(self, spec: SSHHostSpec, octet: int) -> None:
        veth = f"{self.prefix}v{octet}"
        _ip("netns", "del", spec.netns, check=False)
        _ip("link", "del", veth, check=False)
        _ip("netns", "add", spec.netns)
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", spec.netns)
        _ip("link", "set", veth, "master", BRIDGE)
        _ip("link", "set", veth, "up")
        _ip("addr", "add", f"{spec.address}/24", "dev", "eth0", netns=spec.netns)
        # a host re-created on the same address has a new MAC: forget the old neighbour entry
        _ip("neigh", "flush", "to", spec.address, check=False)
        _ip("link", "set", "eth0", "up", netns=spec.netns)
        _ip("link", "set", "lo", "up", netns=spec.netns)

    def _start_sshd(self, spec: SSHHostSpec) -> None:
        d = self.base / spec.name
        d.mkdir(exist_ok=True)
        key = d / "ssh_host_ed25519_key"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        spec.host_key = paramiko.Ed25519Key.from_private_key_file(str(key))
        conf = d / "sshd_config"
        conf.write_text(
            f"Port {spec.port}\nListenAddress {spec.address}\nHostKey {key}\nPidFile {d / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "Subsystem sftp internal-sftp\nMaxSessions 100\nMaxStartups 200\nLogLevel ERROR\n" + self.sshd_extra
        )
        spec.proc = subprocess.Popen(
            ["ip", "netns", "exec", spec.netns, "/usr/sbin/sshd", "-D", "-e", "-f", str(conf)],
            stdout=subprocess.DEVNULL, stderr=open(d / "sshd.log", "ab"),
        )

    def stop_sshd(self, name: str) -> None:
        _kill(self.hosts[name].proc)

    def start_sshd(self, name: str) -> None:
        spec = self.hosts[name]
        self._start_sshd(spec)
        wait_for(lambda: port_open(spec.address, spec.port), 20, f"sshd on {name}")

    def inventory(self, roles: dict[str, list[str]] | None = None) -> dict:
        """The `inventory:` config section for these hosts."""
        roles = roles or {}
        return {
            "defaults": {"ssh": {"user": "root", "key_file": self.key_file, "known_hosts": self.known_hosts,
                                 "connect_timeout": 5}},
            "hosts": {n: {"address": s.address, "roles": roles.get(n, [])} for n, s in self.hosts.items()},
        }

    def stop(self) -> None:
        for spec in self.hosts.values():
            _kill(spec.proc, grace=5)
            _ip("netns", "del", spec.netns, check=False)
        for i, _ in enumerate(self.names):
            _ip("link", "del", f"{self.prefix}v{self.first_octet + i}", check=False)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------------------------- Prometheus
@dataclass
class Prometheus:
    """A real Prometheus scraping the given loopback targets every second."""

    base: Path
    targets: list[str]
    rule_files: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        import yaml

        self.port = self.port or free_port()
        self.base.mkdir(parents=True, exist_ok=True)
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": self.rule_files,
            "scrape_configs": [{"job_name": "opsctl", "static_configs": [{"targets": self.targets}]}],
        }
        (self.base / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.base / 'prometheus.yml'}", f"--storage.tsdb.path={self.base / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=open(self.base / "prometheus.log", "ab"),
        )
        wait_for(lambda: port_open("127.0.0.1", self.port), 30, "prometheus")
        return self

    def query(self, expr: str) -> list[dict]:
        import json
        import urllib.parse
        import urllib.request

        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.load(resp)["data"]["result"]

    def cleanup(self) -> None:
        _kill(self.proc)
        shutil.rmtree(self.base, ignore_errors=True)


# ---------------------------------------------------------------------------------------- memcached
@dataclass
class Memcached:
    port: int = 0
    proc: subprocess.Popen | None = None

    def start(self) -> "Memcached":
        self.port = self.port or free_port()
        self.proc = subprocess.Popen(["memcached", "-u", "root", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: port_open("127.0.0.1", self.port), 10, "memcached")
        return self

    def cleanup(self) -> None:
        _kill(self.proc)


# ---------------------------------------------------------------------------------------- ES API
@dataclass
class ElasticsearchAPI:
    """noida-db serving the Elasticsearch 8 REST API on loopback (real ES cannot be installed here).

    `noida-db` is a Python wrapper that runs the server binary as a child: it is started in its own
    session and stopped as a process group, so no server outlives the fixture.
    """

    base: Path
    url: str = ""
    proc: subprocess.Popen | None = None

    def _spawn(self, port: int) -> None:
        self.proc = subprocess.Popen(
            ["noida-db", "start", "--data-dir", str(self.base / "data"), "--host", "127.0.0.1", "--only", "elasticsearch",
             "--elasticsearch-port", str(port)],
            stdout=open(self.base / "noida.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        wait_for(lambda: port_open("127.0.0.1", port), 30, "noida-db elasticsearch API")

    def start(self) -> "ElasticsearchAPI":
        self.base.mkdir(parents=True, exist_ok=True)
        self._spawn(free_port())
        return self

    def stop(self) -> None:
        _kill_group(self.proc)

    def restart(self) -> None:
        self.stop()
        self._spawn(int(self.url.rsplit(":", 1)[1]))

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def tempdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"opsctl-{prefix}-"))
