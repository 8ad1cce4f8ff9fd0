"""Compressors as pipeline stages: zstd (multi-threaded), pigz, gzip, or none."""

from __future__ import annotations

from dataclasses import dataclass

from opsctl.backup.proc import Stage, require


@dataclass(frozen=True)
class Codec:
    name: str
    suffix: str
    tool: str
    level: int

    def compress(self) -> Stage | None:
        if self.name == "none":
            return None
        if self.name == "zstd":
            return Stage(["zstd", "-q", "-c", "-T0", f"-{self.level}"])
        if self.name == "pigz":
            return Stage(["pigz", "-c", f"-{self.level}"])
        return Stage(["gzip", "-c", f"-{self.level}"])

    def decompress(self) -> Stage | None:
        if self.name == "none":
            return None
        if self.name == "zstd":
            return Stage(["zstd", "-q", "-d", "-c"])
        return Stage([self.tool, "-d", "-c"])


DEFAULT_LEVEL = {"zstd": 3, "pigz": 6, "gzip": 6, "none": 0}
SUFFIX = {"zstd": ".zst", "pigz": ".gz", "gzip": ".gz", "none": ""}


def codec(name: str, level: int | None = None, check: bool = True) -> Codec:
    """A codec by name; `check` fails early when its binary is missing."""
    tool = {"zstd": "zstd", "pigz": "pigz", "gzip": "gzip", "none": ""}[name]
    if check and tool:
        require(tool)
    return Codec(name, SUFFIX[name], tool, level or DEFAULT_LEVEL[name])


def for_file(name: str) -> Codec:
    """The codec that reads a stored file, from the manifest's compression name (gzip files read by pigz too)."""
    if name in ("gzip", "pigz"):
        try:
            require("pigz")
            return Codec("pigz", ".gz", "pigz", 6)
        except Exception:  # noqa: BLE001 - fall back to gzip
            return Codec("gzip", ".gz", "gzip", 6)
    return codec(name)
