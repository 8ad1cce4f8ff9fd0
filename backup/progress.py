"""Progress bars (rich) for long work on a terminal; silent when stderr is not a TTY."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn, TransferSpeedColumn


class Reporter:
    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Progress | None = None

    @contextmanager
    def session(self) -> Iterator["Reporter"]:
        if not self.enabled:
            yield self
            return
        self._progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        with self._progress:
            yield self
        self._progress = None

    @contextmanager
    def task(self, description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A callback advancing one bar by n bytes (a no-op when quiet)."""
        if self._progress is None:
            yield lambda n: None
            return
        tid = self._progress.add_task(description, total=total)
        try:
            yield lambda n: self._progress.advance(tid, n)
        finally:
            self._progress.remove_task(tid)
