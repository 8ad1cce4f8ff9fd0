"""The one place that spawns processes for backups: streaming pipelines, credentials through a file
descriptor (never argv or environment), tool versions, dry-run."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from opsctl.errors import OpsctlError, UnavailableError
from opsctl.secrets import mask

log = logging.getLogger(__name__)
CHUNK = 1 << 20


class PipelineError(OpsctlError):
    """A process of a backup/restore pipeline failed."""


@dataclass
class Stage:
    """One process of a pipeline; `secret` (if any) is handed to it as /dev/fd/N, substituted for `{fd}` in argv."""

    argv: list[str]
    secret: str | None = None
    ok_codes: tuple[int, ...] = (0,)
    env: dict[str, str] | None = None


@dataclass
class StreamResult:
    size: int
    sha256: str
    warnings: list[str] = field(default_factory=list)


def require(*names: str) -> str:
    """The first of these executables found on PATH, else an error the user can act on."""
    for name in names:
        path = shutil.which(name)
        if path:
            return name
    raise UnavailableError(f"none of {', '.join(names)} found on PATH", hint="install the package that provides it")


def tool_version(argv: Sequence[str]) -> str:
    """First line of `tool --version` (for the manifest); empty when unavailable."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, env=child_env())
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else ""


@contextmanager
def secret_fd(secret: str) -> Iterator[int]:
    """A pipe whose read end holds `secret` (a defaults file); the child reads it at /dev/fd/N."""
    data = secret.encode()
    if len(data) > 60000:
        raise OpsctlError("credentials file too large for a pipe")
    r, w = os.pipe()
    try:
        os.write(w, data)
        os.close(w)
        w = -1
        yield r
    finally:
        if w >= 0:
            os.close(w)
        os.close(r)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: ours minus any variable holding a known secret (visible in /proc/PID/environ)."""
    env = {k: v for k, v in os.environ.items() if mask(v) == v and not k.startswith(("MYSQL_PWD", "OS_PASSWORD"))}
    env.update(extra or {})
    return env


def _argv_with_secret(stack: ExitStack, stage: Stage) -> tuple[list[str], tuple[int, ...]]:
    """The stage's argv with `{fd}` pointing at a pipe holding its secret, and the fds to pass on."""
    if stage.secret is None:
        return list(stage.argv), ()
    fd = stack.enter_context(secret_fd(stage.secret))
    return [a.replace("{fd}", f"/dev/fd/{fd}") for a in stage.argv], (fd,)


def _spawn(stack: ExitStack, stage: Stage, stdin, stdout, errfile) -> subprocess.Popen:
    argv, fds = _argv_with_secret(stack, stage)
    log.debug("spawn: %s", " ".join(argv))
    try:
        return subprocess.Popen(argv, stdin=stdin, stdout=stdout, stderr=errfile, pass_fds=fds,
                                env=child_env(stage.env), close_fds=True)
    except FileNotFoundError:
        raise UnavailableError(f"{argv[0]}: command not found", hint="install it or fix PATH") from None


def describe(stages: Sequence[Stage]) -> str:
    """The pipeline as a shell-like line (for dry-run and errors); secrets are never in argv."""
    return " | ".join(" ".join(s.argv).replace("{fd}", "/dev/fd/N") for s in stages)


def _check(procs: list[tuple[Stage, subprocess.Popen, tempfile._TemporaryFileWrapper]]) -> list[str]:
    warnings = []
    for stage, proc, err in procs:
        rc = proc.wait()
        err.seek(0)
        text = mask(err.read().decode(errors="replace").strip())
        if rc not in stage.ok_codes:
            last = text.splitlines()[-1] if text else ""
            raise PipelineError(f"{stage.argv[0]} failed (exit {rc}){': ' + last if last else ''}",
                                hint="run with --debug for the full command")
        if rc != 0 and text:
            warnings.append(f"{stage.argv[0]}: {text.splitlines()[-1]}")
    return warnings


def stream_to_file(stages: Sequence[Stage], dest: Path, progress: Callable[[int], None] | None = None,
                   source=None) -> StreamResult:
    """Run stages as a pipeline; the last one's stdout goes to `dest` (fsynced), hashed on the way.

    `source` (anything with `read(n)`, e.g. a command on another host) feeds the first stage's stdin;
    with no stages, its bytes go to `dest` as they are."""
    digest = hashlib.sha256()
    size = 0
    procs = []
    feeder = None
    with ExitStack() as stack:
        prev = subprocess.DEVNULL if source is None else subprocess.PIPE
        first = None
        for i, stage in enumerate(stages):
            err = stack.enter_context(tempfile.TemporaryFile())
            proc = _spawn(stack, stage, prev, subprocess.PIPE, err)
            if i == 0:
                first = proc
            else:
                prev.close()  # the child holds it now
            prev = proc.stdout
            procs.append((stage, proc, err))
        if source is not None and first is not None:
            feeder = _Feeder(source, first.stdin)
            reader = prev
        else:
            reader = source if source is not None else prev
        try:
            with open(dest, "wb") as out:
                while chunk := reader.read1(CHUNK) if hasattr(reader, "read1") else reader.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if progress:
                        progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if reader is not source:
                reader.close()
            if feeder is not None:
                feeder.join()
            warnings = _check(procs)
        except BaseException:
            for _, proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            raise
    return StreamResult(size, digest.hexdigest(), warnings)


class _Pump(threading.Thread):
    """Copies between a stream and a pipe in the background (`run()` of the subclass); an error it
    records is re-raised by `join()` in the caller's thread."""

    def __init__(self, src, dst):
        super().__init__(daemon=True)
        self.src, self.dst, self.error = src, dst, None
        self.start()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


class _Feeder(_Pump):
    """A readable source (e.g. a command on another host) into a pipeline's stdin."""

    def run(self) -> None:
        try:
            while chunk := self.src.read(CHUNK):
                self.dst.write(chunk)
        except BrokenPipeError:
            pass  # the reader died: its exit status says why
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in join()
            self.error = exc
        finally:
            try:
                self.dst.close()
            except BrokenPipeError:
                pass


def stream_from_file(src: Path, stages: Sequence[Stage], progress: Callable[[int], None] | None = None,
                     sink=None) -> list[str]:
    """Feed `src` into the first stage of a pipeline (e.g. decompress | mariadb). The last stage's stdout
    is discarded, or written to `sink` (anything with `write(bytes)`, e.g. a command on another host)."""
    procs = []
    with ExitStack() as stack:
        source = stack.enter_context(open(src, "rb"))
        if not stages:
            while chunk := source.read(CHUNK):
                sink.write(chunk)
                if progress:
                    progress(len(chunk))
            return []
        prev = subprocess.PIPE
        first = None
        for i, stage in enumerate(stages):
            err = stack.enter_context(tempfile.TemporaryFile())
            last = i == len(stages) - 1
            proc = _spawn(stack, stage, prev, subprocess.PIPE if not last or sink is not None else subprocess.DEVNULL, err)
            if i == 0:
                first = proc
            else:
                prev.close()
            prev = proc.stdout
            procs.append((stage, proc, err))
        drain = _Drain(prev, sink) if sink is not None else None
        try:
            try:
                while chunk := source.read(CHUNK):
                    first.stdin.write(chunk)
                    if progress:
                        progress(len(chunk))
            except BrokenPipeError:
                pass  # the reader died: its exit status says why
            finally:
                try:
                    first.stdin.close()
                except BrokenPipeError:
                    pass
            if drain is not None:
                drain.join()
            return _check(procs)
        except BaseException:
            for _, proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            raise


class _Drain(_Pump):
    """A pipeline's stdout into a writable sink (e.g. a command on another host)."""

    def run(self) -> None:
        try:
            while chunk := self.src.read1(CHUNK):
                self.dst.write(chunk)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in join()
            self.error = exc
            while self.src.read1(CHUNK):  # keep the pipeline moving so it can end
                pass
        finally:
            self.src.close()


def run_capture(stage: Stage, timeout: float = 3600, cwd: str | None = None) -> str:
    """Run one process to completion; stdout as text; a clear error on failure."""
    with ExitStack() as stack:
        err = stack.enter_context(tempfile.TemporaryFile())
        argv, fds = _argv_with_secret(stack, stage)
        log.debug("run: %s", " ".join(argv))
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=err, pass_fds=fds, timeout=timeout,
                                  env=child_env(stage.env), cwd=cwd)
        except FileNotFoundError:
            raise UnavailableError(f"{argv[0]}: command not found", hint="install it or fix PATH") from None
        if proc.returncode not in stage.ok_codes:
            err.seek(0)
            text = mask(err.read().decode(errors="replace").strip())
            last = text.splitlines()[-1] if text else ""
            raise PipelineError(f"{argv[0]} failed (exit {proc.returncode}){': ' + last if last else ''}")
        return proc.stdout.decode(errors="replace")


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()
