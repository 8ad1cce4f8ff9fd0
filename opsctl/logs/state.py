"""State kept on disk between runs (seen error fingerprints, Elasticsearch checkpoints), written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from opsctl.errors import DataError, OpsctlError


def state_dir(path: str) -> Path:
    d = Path(path).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o750)
    except OSError as exc:
        raise OpsctlError(f"cannot create state directory {d}: {exc.strerror}",
                          hint="set logs.state_dir in the config to a writable directory") from None
    return d


def read_json(path: Path, default: Any) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise OpsctlError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError:
        raise DataError(f"state file {path} is corrupt (not JSON)",
                        hint="move it away; the next run starts from scratch") from None


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over the old file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class SeenFingerprints:
    """Fingerprints reported by earlier `logs errors` runs (for --new)."""

    def __init__(self, directory: str):
        self.path = state_dir(directory) / "seen-fingerprints.json"
        data = read_json(self.path, {})
        self.seen: dict[str, dict] = data.get("fingerprints", {}) if isinstance(data, dict) else {}

    def is_new(self, fingerprint: str) -> bool:
        return fingerprint not in self.seen

    def record(self, groups) -> None:
        now = time.time()
        for g in groups:
            entry = self.seen.setdefault(g.fingerprint, {"first_run": now, "exception": g.exception,
                                                          "message": g.normalized[:300]})
            entry["last_run"] = now
        write_json_atomic(self.path, {"version": 1, "fingerprints": self.seen})


class Checkpoints:
    """Per-file shipping position: file identity -> offset of the next byte to ship (committed after a bulk)."""

    def __init__(self, directory: str, target: str):
        name = hashlib.sha1(target.encode()).hexdigest()[:12]
        self.path = state_dir(directory) / f"es-checkpoints-{name}.json"
        data = read_json(self.path, {})
        self.files: dict[str, dict] = data.get("files", {}) if isinstance(data, dict) else {}
        self.target = target

    def offset(self, file_id: str) -> int:
        return int(self.files.get(file_id, {}).get("offset", 0))

    def complete(self, file_id: str) -> bool:
        return bool(self.files.get(file_id, {}).get("complete"))

    def commit(self, file_id: str, offset: int, **info: Any) -> None:
        self.files[file_id] = {**self.files.get(file_id, {}), **info, "offset": offset, "updated": time.time()}
        write_json_atomic(self.path, {"version": 1, "target": self.target, "files": self.files})
