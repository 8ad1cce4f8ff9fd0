"""Where commands run: `LocalHost` (subprocess, psutil) and `SSHHost` (paramiko), one interface.

Commands are argv lists, never shell strings built from data. SSH host keys are verified against
known_hosts: unknown or changed keys are refused, never added.
"""

from __future__ import annotations

import errno
import fnmatch
import importlib
import glob as globmod
import os
import posixpath
import select
import shlex
import signal
import socket
import stat as statmod
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Protocol, Sequence


from opsctl.errors import OpsctlError, UnavailableError

DEFAULT_TIMEOUT = 30.0


class _Lazy:
    """A module imported on first attribute access (paramiko costs ~0.1 s of start-up otherwise)."""

    def __init__(self, name: str):
        self._name = name
        self._module = None
        self._lock = threading.Lock()

    def __getattr__(self, attr: str):
        if self._module is None:
            with self._lock:
                if self._module is None:
                    self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


paramiko = _Lazy("paramiko")


class HostError(UnavailableError):
    """A host could not be reached or used."""


class HostUnreachable(HostError):
    pass


class HostKeyError(HostError):
    pass


class HostAuthError(HostError):
    pass


class CommandTimeout(OpsctlError):
    pass


class CommandNotFound(OpsctlError):
    pass


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    rc: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.rc == 0


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime: float
    mode: int
    uid: int
    gid: int

    @property
    def is_dir(self) -> bool:
        return statmod.S_ISDIR(self.mode)


class Host(Protocol):
    name: str

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, input: bytes | None = None) -> CommandResult: ...
    def read_file(self, path: str, max_bytes: int | None = None) -> bytes: ...
    def exists(self, path: str) -> bool: ...
    def open(self, path: str) -> IO[bytes]: ...
    def stat(self, path: str) -> FileStat: ...
    def glob(self, pattern: str) -> list[str]: ...
    def close(self) -> None: ...


def _check_argv(argv: Sequence[str]) -> tuple[str, ...]:
    if isinstance(argv, (str, bytes)) or not argv:
        raise TypeError("argv must be a non-empty list of strings, not a shell string")
    return tuple(str(a) for a in argv)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class LocalHost:
    """The machine opsctl runs on."""

    def __init__(self, name: str | None = None):
        self.name = name or socket.gethostname()
        self.address = "localhost"

    def __repr__(self) -> str:
        return f"LocalHost({self.name!r})"

    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, input: bytes | None = None) -> CommandResult:
        args = _check_argv(argv)
        start = time.monotonic()
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise CommandNotFound(f"{self.name}: command not found: {args[0]}") from None
        try:
            out, err = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise CommandTimeout(f"{self.name}: {shlex.join(args)} timed out after {timeout:g}s") from None
        return CommandResult(args, proc.returncode, _decode(out), _decode(err), time.monotonic() - start)

    def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        with open(path, "rb") as fh:
            return fh.read() if max_bytes is None else fh.read(max_bytes)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def open(self, path: str) -> IO[bytes]:
        return open(path, "rb")

    def stat(self, path: str) -> FileStat:
        st = os.stat(path)
        return FileStat(st.st_size, st.st_mtime, st.st_mode, st.st_uid, st.st_gid)

    def glob(self, pattern: str) -> list[str]:
        return sorted(globmod.glob(pattern))

    def spawn(self, argv: Sequence[str], timeout: float = 3600.0) -> "Spawned":
        """Start a command whose stdin/stdout are streams (backups of large trees)."""
        args = _check_argv(argv)
        err = tempfile.TemporaryFile()
        try:
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
        except FileNotFoundError:
            err.close()
            raise CommandNotFound(f"{self.name}: command not found: {args[0]}") from None
        return _LocalSpawned(self.name, args, proc, err, time.monotonic() + timeout)

    def close(self) -> None:
        pass


class Spawned(Protocol):
    """A running command on some host: write its stdin, read its stdout, then wait for its exit status."""

    argv: tuple[str, ...]

    def read(self, n: int) -> bytes: ...  # b"" at end of output
    def write(self, data: bytes) -> None: ...
    def close_stdin(self) -> None: ...
    def wait(self) -> int: ...  # exit status; raises CommandTimeout past the deadline
    def stderr(self) -> str: ...
    def kill(self) -> None: ...


class _LocalSpawned:
    def __init__(self, host: str, argv: tuple[str, ...], proc: subprocess.Popen, err, deadline: float):
        self.host, self.argv, self._proc, self._err, self._deadline = host, argv, proc, err, deadline

    def read(self, n: int) -> bytes:
        return self._proc.stdout.read1(n)

    def write(self, data: bytes) -> None:
        self._proc.stdin.write(data)

    def close_stdin(self) -> None:
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass

    def wait(self) -> int:
        if self._proc.returncode is not None:
            return self._proc.returncode
        self.close_stdin()
        try:
            return self._proc.wait(max(0.0, self._deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise CommandTimeout(f"{self.host}: {shlex.join(self.argv)} timed out") from None
        finally:
            self._proc.stdout.close()

    def stderr(self) -> str:
        self._err.seek(0)
        return _decode(self._err.read())

    def kill(self) -> None:
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()


def _is_sudo_refusal(stderr: bytes) -> bool:
    """sudo -n itself refused (no NOPASSWD rule, not in sudoers...): its own message, nothing else ran."""
    # sshd may print its own notes first (e.g. "Could not chdir to home directory")
    return any(line.startswith(b"sudo: ") for line in stderr.splitlines())


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()


@dataclass(frozen=True)
class SSHSettings:
    address: str
    user: str = "root"
    port: int = 22
    key_file: str | None = None
    known_hosts: str | None = None  # default: ~/.ssh/known_hosts and the system file
    connect_timeout: float = 10.0
    jump: "SSHSettings | None" = None
    password: str | None = field(default=None, repr=False)
    become: bool = False  # run commands and file access through `sudo -n` (a non-root login user)


# An sftp-server started through sudo, so file reads have the same rights as commands (the path
# differs between Debian, RHEL and others). A constant script: no data is ever put into it.
_SUDO_SFTP = ("for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server "
              "/usr/libexec/sftp-server; do [ -x \"$p\" ] && exec \"$p\"; done; "
              "echo 'opsctl: no sftp-server found' >&2; exit 127")


class SSHHost:
    """A remote host reached over SSH with key authentication and verified host keys."""

    def __init__(self, name: str, settings: SSHSettings):
        self.name = name
        self.settings = settings
        self.address = settings.address
        self._lock = threading.Lock()
        self._client: paramiko.SSHClient | None = None
        self._jump_client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._sftp_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SSHHost({self.name!r}, {self.settings.user}@{self.settings.address}:{self.settings.port})"

    # -- connection -------------------------------------------------------------------------
    def _connect_client(self, s: SSHSettings, sock=None) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        if s.known_hosts:
            path = os.path.expanduser(s.known_hosts)
            if not os.path.exists(path):
                raise HostKeyError(f"{self.name}: known_hosts file {path} does not exist",
                                   hint="create it with ssh-keyscan after verifying the host's fingerprint")
            _add_known_keys(client, path, s.address, s.port)
        else:
            client.load_system_host_keys()
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        where = f"{s.user}@{s.address}:{s.port}"
        try:
            client.connect(
                s.address, port=s.port, username=s.user, key_filename=os.path.expanduser(s.key_file) if s.key_file else None,
                password=s.password, timeout=s.connect_timeout, banner_timeout=s.connect_timeout,
                auth_timeout=s.connect_timeout, sock=sock, allow_agent=s.key_file is None, look_for_keys=s.key_file is None,
                transport_factory=_transport,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"{self.name}: host key for {s.address}:{s.port} has CHANGED (got {exc.key.get_name()} "
                f"{exc.key.get_fingerprint().hex()}); refusing to connect",
                hint="if the host was reinstalled, verify the new key and update known_hosts",
            ) from None
        except paramiko.AuthenticationException as exc:
            client.close()
            raise HostAuthError(f"{self.name}: authentication failed for {where}: {exc}",
                                hint="check the ssh user and key_file in the inventory") from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise HostKeyError(f"{self.name}: host key for {s.address}:{s.port} is unknown (not in known_hosts); refusing to connect",
                                   hint="verify the fingerprint and add it with ssh-keyscan to known_hosts") from None
            raise HostUnreachable(f"{self.name}: SSH to {where} failed: {exc}") from None
        except (OSError, EOFError) as exc:
            client.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
            if isinstance(exc, socket.timeout):
                reason = f"timed out after {s.connect_timeout:g}s"
            raise HostUnreachable(f"{self.name}: cannot connect to {where}: {reason}") from None
        return client

    def _connected(self) -> paramiko.SSHClient:
        with self._lock:
            if self._client is not None:
                transport = self._client.get_transport()
                if transport is not None and transport.is_active():
                    return self._client
                self._close_locked()
            sock = None
            if self.settings.jump:
                self._jump_client = self._connect_client(self.settings.jump)
                try:
                    sock = self._jump_client.get_transport().open_channel(
                        "direct-tcpip", (self.settings.address, self.settings.port), ("127.0.0.1", 0),
                        timeout=self.settings.connect_timeout,
                    )
                except (paramiko.SSHException, OSError) as exc:
                    raise HostUnreachable(f"{self.name}: jump host cannot reach {self.settings.address}:{self.settings.port}: {exc}") from None
            self._client = self._connect_client(self.settings, sock=sock)
            return self._client

    def connect(self) -> None:
        """Open the connection now (otherwise it opens on first use)."""
        self._connected()

    def _sftp_client(self) -> paramiko.SFTPClient:
        client = self._connected()
        with self._lock:
            if self._sftp is None:
                self._sftp = self._open_sftp(client)
            return self._sftp

    def _open_sftp(self, client: paramiko.SSHClient) -> paramiko.SFTPClient:
        if not self._sudo:
            return client.open_sftp()
        chan = client.get_transport().open_session(timeout=self.settings.connect_timeout)
        chan.exec_command(shlex.join(("sudo", "-n", "sh", "-c", _SUDO_SFTP)))
        try:
            return paramiko.SFTPClient(chan)
        except (paramiko.SSHException, EOFError, OSError):
            err = b""
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(4096)
            chan.close()
            raise self._sudo_error(_decode(err)) from None

    @property
    def _sudo(self) -> bool:
        return self.settings.become and self.settings.user != "root"

    def _wrap(self, args: tuple[str, ...], timeout: float) -> str:
        """The remote command line: `timeout` so a stuck command does not outlive us, under sudo when
        becoming root (sudo outside, so `timeout` runs as root and can kill what it started)."""
        line = ("timeout", "-k", "2", f"{timeout:g}", *args)
        return shlex.join(("sudo", "-n", "--", *line) if self._sudo else line)

    def _sudo_error(self, stderr: str) -> HostAuthError:
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no output"
        return HostAuthError(f"{self.name}: sudo as {self.settings.user} failed: {last}",
                             hint="give the login user passwordless sudo (NOPASSWD), or connect as root without become")

    # -- commands ---------------------------------------------------------------------------
    def run(self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, input: bytes | None = None) -> CommandResult:
        args = _check_argv(argv)
        client = self._connected()
        start = time.monotonic()
        deadline = start + timeout
        try:
            chan = client.get_transport().open_session(timeout=self.settings.connect_timeout)
            chan.exec_command(self._wrap(args, timeout))
            if input is not None:
                chan.sendall(input)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    chan.close()
                    raise CommandTimeout(f"{self.name}: {shlex.join(args)} timed out after {timeout:g}s")
                select.select([chan], [], [], min(remaining, 0.5))
            rc = chan.recv_exit_status()
            chan.close()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise HostUnreachable(f"{self.name}: connection lost while running {args[0]}: {exc}") from None
        if rc == 124 and time.monotonic() >= deadline - 0.05:
            raise CommandTimeout(f"{self.name}: {shlex.join(args)} timed out after {timeout:g}s")
        if self._sudo and rc == 1 and not out and _is_sudo_refusal(bytes(err)):
            raise self._sudo_error(_decode(bytes(err)))
        if rc == 127 and not out:
            raise CommandNotFound(f"{self.name}: command not found: {args[0]}")
        return CommandResult(args, rc, _decode(bytes(out)), _decode(bytes(err)), time.monotonic() - start)

    def spawn(self, argv: Sequence[str], timeout: float = 3600.0) -> "Spawned":
        """Start a remote command with streamed stdin/stdout over one SSH channel."""
        args = _check_argv(argv)
        client = self._connected()
        try:
            chan = client.get_transport().open_session(timeout=self.settings.connect_timeout)
            chan.exec_command(self._wrap(args, timeout))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise HostUnreachable(f"{self.name}: cannot start {args[0]}: {exc}") from None
        return _SSHSpawned(self.name, args, chan, time.monotonic() + timeout,
                           self._sudo_error if self._sudo else None)

    # -- files ------------------------------------------------------------------------------
    # paramiko's SFTPClient is not safe for concurrent requests from several threads: short
    # operations share one client under a lock; `open()` streams get an SFTP channel of their own.
    def _sftp_call(self, fn):
        client = self._sftp_client()
        with self._sftp_lock:
            return fn(client)

    def read_file(self, path: str, max_bytes: int | None = None) -> bytes:
        def read(sftp: paramiko.SFTPClient) -> bytes:
            with sftp.open(path, "rb") as fh:
                if max_bytes is None:
                    fh.prefetch()
                    return fh.read()
                return fh.read(max_bytes)

        try:
            return self._sftp_call(read)
        except IOError as exc:
            raise _as_os_error(exc, path) from None

    def open(self, path: str) -> IO[bytes]:
        sftp = self._open_sftp(self._connected())
        try:
            fh = sftp.open(path, "rb")
        except IOError as exc:
            sftp.close()
            raise _as_os_error(exc, path) from None
        fh.prefetch()
        return _OwnedFile(fh, sftp)

    def exists(self, path: str) -> bool:
        try:
            self._sftp_call(lambda sftp: sftp.stat(path))
            return True
        except IOError:
            return False

    def stat(self, path: str) -> FileStat:
        try:
            st = self._sftp_call(lambda sftp: sftp.stat(path))
        except IOError as exc:
            raise _as_os_error(exc, path) from None
        return FileStat(st.st_size or 0, float(st.st_mtime or 0), st.st_mode or 0, st.st_uid or 0, st.st_gid or 0)

    def glob(self, pattern: str) -> list[str]:
        """Shell-style glob over SFTP (wildcards in any path component)."""
        return self._sftp_call(lambda sftp: _sftp_glob(sftp, pattern))

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        for obj in (self._sftp, self._client, self._jump_client):
            if obj is not None:
                try:
                    obj.close()
                except Exception:  # noqa: BLE001 - closing a dead connection may fail
                    pass
        self._sftp = self._client = self._jump_client = None


class _SSHSpawned:
    """A remote command on a paramiko channel. Its stderr is drained while stdout is read, so a chatty
    command never stalls on the shared channel window."""

    def __init__(self, host: str, argv: tuple[str, ...], chan, deadline: float, sudo_error=None):
        self.host, self.argv, self._chan, self._deadline = host, argv, chan, deadline
        self._err = bytearray()
        self._rc: int | None = None
        self._sudo_error = sudo_error  # set when the command runs under sudo: makes its refusal an error
        self._killed = False

    def _drain_stderr(self) -> None:
        while self._chan.recv_stderr_ready():
            self._err += self._chan.recv_stderr(65536)

    def _wait_io(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            self.kill()
            raise CommandTimeout(f"{self.host}: {shlex.join(self.argv)} timed out")
        select.select([self._chan], [], [], min(remaining, 0.5))

    def read(self, n: int) -> bytes:
        try:
            while True:
                self._drain_stderr()
                if self._chan.recv_ready():
                    return self._chan.recv(n)
                if self._chan.eof_received or self._chan.closed:
                    return b""
                self._wait_io()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"{self.host}: connection lost during {self.argv[0]}: {exc}") from None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                self._drain_stderr()
                if self._chan.send_ready():
                    sent = self._chan.send(view[:65536])
                    if sent == 0:
                        raise BrokenPipeError(f"{self.host}: {self.argv[0]} closed its input")
                    view = view[sent:]
                elif self._chan.exit_status_ready():
                    raise BrokenPipeError(f"{self.host}: {self.argv[0]} exited before reading all input")
                else:
                    self._wait_io()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            raise HostUnreachable(f"{self.host}: connection lost during {self.argv[0]}: {exc}") from None

    def close_stdin(self) -> None:
        try:
            self._chan.shutdown_write()
        except (paramiko.SSHException, OSError, EOFError):
            pass

    def wait(self) -> int:
        if self._rc is not None:
            return self._rc
        if self._killed and not self._chan.exit_status_ready():
            self._rc = -9  # hung up on: no exit status will come
            return self._rc
        self.close_stdin()
        try:
            while not self._chan.exit_status_ready():
                self._drain_stderr()
                while self._chan.recv_ready():  # output nobody reads: discard, keep the window open
                    self._chan.recv(65536)
                self._wait_io()
            self._drain_stderr()
            rc = self._chan.recv_exit_status()
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"{self.host}: connection lost during {self.argv[0]}: {exc}") from None
        finally:
            self._chan.close()
        if rc == 124 and time.monotonic() >= self._deadline - 0.05:
            raise CommandTimeout(f"{self.host}: {shlex.join(self.argv)} timed out")
        if self._sudo_error is not None and rc == 1 and _is_sudo_refusal(bytes(self._err)):
            raise self._sudo_error(self.stderr())
        self._rc = rc
        return rc

    def stderr(self) -> str:
        return _decode(bytes(self._err))

    def kill(self) -> None:
        # closing the channel makes sshd hang up the session; `timeout` on the far side ends the rest
        self._killed = True
        self._chan.close()


_known_hosts: dict[str, tuple[tuple[int, int], paramiko.HostKeys]] = {}
_known_hosts_lock = threading.Lock()


def _add_known_keys(client: paramiko.SSHClient, path: str, address: str, port: int) -> None:
    """Give the client this host's known_hosts entries; the file is parsed once per change, not per connection."""
    st = os.stat(path)
    signature = (st.st_mtime_ns, st.st_size)
    with _known_hosts_lock:
        cached = _known_hosts.get(path)
    if cached is None or cached[0] != signature:
        cached = (signature, paramiko.HostKeys(path))
        with _known_hosts_lock:
            _known_hosts[path] = cached
    name = address if port == 22 else f"[{address}]:{port}"
    for keytype, key in (cached[1].lookup(name) or {}).items():
        client.get_host_keys().add(name, keytype, key)


# AEAD ciphers first: with CTR + HMAC, paramiko compares every packet's MAC in a Python loop, which
# dominated the client CPU of a many-host fan-out; AES-GCM is authenticated inside `cryptography`.
_PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _transport(sock, **kwargs):
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    options.ciphers = _PREFERRED_CIPHERS + tuple(c for c in options.ciphers if c not in _PREFERRED_CIPHERS)
    return transport


class _OwnedFile:
    """An SFTP file that closes its own SFTP channel when closed."""

    def __init__(self, fh: paramiko.SFTPFile, sftp: paramiko.SFTPClient):
        self._fh, self._sftp = fh, sftp

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __iter__(self):
        return iter(self._fh)

    def __enter__(self) -> "_OwnedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._fh.close()
        finally:
            self._sftp.close()


def _sftp_glob(sftp: paramiko.SFTPClient, pattern: str) -> list[str]:
    parts = [p for p in pattern.split("/") if p]
    paths = ["/"]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt = []
        for base in paths:
            if not globmod.has_magic(part):
                candidate = posixpath.join(base, part)
                try:
                    st = sftp.stat(candidate)
                except IOError:
                    continue
                if last or statmod.S_ISDIR(st.st_mode or 0):
                    nxt.append(candidate)
                continue
            try:
                entries = sftp.listdir_attr(base)
            except IOError:
                continue
            for entry in entries:
                if fnmatch.fnmatchcase(entry.filename, part) and not entry.filename.startswith("."):
                    if last or statmod.S_ISDIR(entry.st_mode or 0):
                        nxt.append(posixpath.join(base, entry.filename))
        paths = nxt
    return sorted(paths)


def _as_os_error(exc: IOError, path: str) -> OSError:
    code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
    return OSError(code, os.strerror(code), path)
