"""Streams between a command on a host and a local pipeline (the path remote file backups take), run with
LocalHost.spawn and real tar/zstd; the SSH side is covered in tests/integration/test_backup_remote_files.py."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from opsctl.backup import files as filesmod
from opsctl.backup.compression import codec
from opsctl.backup.proc import PipelineError, Stage, stream_from_file, stream_to_file
from opsctl.hosts import CommandTimeout, LocalHost


def test_spawn_streams_both_ways():
    proc = LocalHost().spawn(["sha256sum"])
    data = os.urandom(3_000_000)
    proc.write(data)
    proc.close_stdin()
    out = b""
    while chunk := proc.read(65536):
        out += chunk
    assert proc.wait() == 0
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_spawn_timeout_kills():
    proc = LocalHost().spawn(["sleep", "30"], timeout=0.5)
    with pytest.raises(CommandTimeout):
        proc.wait()


def test_source_feeds_pipeline_and_hash_matches_file(tmp_path):
    proc = LocalHost().spawn(["head", "-c", "2000000", "/dev/urandom"])
    dest = tmp_path / "out.zst"
    res = stream_to_file([codec("zstd", None).compress()], dest, source=proc)
    assert proc.wait() == 0
    assert res.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest() and res.size == dest.stat().st_size
    raw = subprocess.run(["zstd", "-dc", str(dest)], capture_output=True, check=True).stdout
    assert len(raw) == 2_000_000


def test_source_error_propagates(tmp_path):
    class Broken:
        def __init__(self):
            self.n = 0

        def read(self, n):
            self.n += 1
            if self.n > 3:
                raise OSError("connection lost")
            return b"x" * n

    with pytest.raises(OSError, match="connection lost"):
        stream_to_file([codec("gzip", None).compress()], tmp_path / "o.gz", source=Broken())


def test_sink_that_dies_does_not_hang(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(4_000_000))
    proc = LocalHost().spawn(["head", "-c", "10"])  # stops reading after 10 bytes
    with pytest.raises(BrokenPipeError):
        stream_from_file(src, [Stage(["cat"])], sink=proc)
    assert proc.wait() == 0


def test_archive_and_extract_through_a_host(tmp_path):
    root = tmp_path / "r"
    (root / "etc" / "svc").mkdir(parents=True)
    (root / "etc" / "svc" / "a.conf").write_text("x = 1\n")
    os.chmod(root / "etc" / "svc" / "a.conf", 0o640)
    os.chown(root / "etc" / "svc" / "a.conf", 12, 34)
    host = LocalHost()
    fs = filesmod.FileSet("config", ("/etc/svc", "/etc/other*"))
    out = filesmod.archive_on(host, fs, tmp_path / "a.tar.zst", codec("zstd", None), str(root))
    assert out.included == ["etc/svc"] and out.missing == ["/etc/other*"]
    moved = filesmod.move_aside_on(host, ["etc/svc"], str(root), stamp="T")
    assert moved == [(f"{host.name}:{root}/etc/svc", f"{host.name}:{root}/etc/svc.pre-restore-T")]
    filesmod.extract_on(host, tmp_path / "a.tar.zst", codec("zstd", None), str(root))
    st = os.stat(root / "etc" / "svc" / "a.conf")
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 12, 34)


def test_tar_failure_on_host_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(PipelineError, match="tar failed"):
        filesmod.extract_on(LocalHost(), bad, codec("none", None), str(tmp_path / "x"))
