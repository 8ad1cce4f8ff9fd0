"""Secrets by reference (file or environment) and masking of every known secret value.

A resolved secret registers its value with the process-wide masker; output, logs, metrics and
exported documents pass through `mask()` so the value never leaves the process in clear text.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from opsctl.errors import ConfigError

MASK = "***"
_MIN_LEN = 4  # never mask tiny strings such as "a": they would shred all output


class _Masker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if not value or len(value) < _MIN_LEN:
            return
        with self._lock:
            if value in self._values:
                return
            self._values.add(value)
            longest_first = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in longest_first))

    def mask(self, text: str) -> str:
        pattern = self._pattern
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._pattern = None


_MASKER = _Masker()

# Secrets embedded in text we did not resolve ourselves (connection URLs, CLI args, config dumps).
_INLINE_PATTERNS = [
    re.compile(r"(?P<pre>\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<secret>[^@\s]+)(?=@)", re.I),
    re.compile(
        r"(?P<pre>\b(?:password|passwd|pwd|secret|token|api_key|apikey|auth_key|"
        r"admin_password|rabbit_password|memcache_secret_key|metadata_proxy_shared_secret)"
        r"[\"']?\s*[=:]\s*[\"']?)(?P<secret>[^\s\"',;}]+)",
        re.I,
    ),
    re.compile(r"(?P<pre>X-(?:Auth|Subject)-Token:\s*)(?P<secret>\S+)", re.I),
    re.compile(r"(?P<pre>--password[= ])(?P<secret>\S+)"),
]


def register_secret(value: str | None) -> None:
    """Remember a secret value so that `mask()` hides it everywhere."""
    _MASKER.add(value)


def mask(text: str) -> str:
    """Hide every registered secret and every inline credential pattern in text."""
    if not text:
        return text
    text = _MASKER.mask(text)
    for pattern in _INLINE_PATTERNS:
        text = pattern.sub(lambda m: m.group("pre") + MASK if m.group("secret") != MASK else m.group(0), text)
    return text


def mask_obj(obj):
    """Mask all strings inside nested dicts/lists (for JSON documents)."""
    if isinstance(obj, str):
        return mask(obj)
    if isinstance(obj, dict):
        return {k: mask_obj(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [mask_obj(v) for v in obj]
    return obj


def clear_registered() -> None:
    """Forget registered secrets (tests)."""
    _MASKER.clear()


@dataclass(frozen=True)
class SecretRef:
    """A reference to a secret: `{file: PATH}` or `{env: NAME}` in config; `value` for inline (discouraged)."""

    file: str | None = None
    env: str | None = None
    value: str | None = None

    def resolve(self, key_path: str = "secret") -> str:
        if self.file:
            path = Path(self.file).expanduser()
            try:
                secret = path.read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{key_path}: cannot read secret file {path}: {exc.strerror}") from None
        elif self.env:
            if self.env not in os.environ:
                raise ConfigError(f"{key_path}: environment variable {self.env} is not set")
            secret = os.environ[self.env]
        elif self.value is not None:
            secret = self.value
        else:
            raise ConfigError(f"{key_path}: a secret needs 'file' or 'env'")
        register_secret(secret)
        return secret

    def __repr__(self) -> str:  # never show the inline value
        where = f"file={self.file!r}" if self.file else f"env={self.env!r}" if self.env else "value=***"
        return f"SecretRef({where})"


class MaskingFilter(logging.Filter):
    """Logging filter that masks secrets in every record's rendered message."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not kill logging
            message = str(record.msg)
        record.msg = mask(message)
        record.args = None
        return True
