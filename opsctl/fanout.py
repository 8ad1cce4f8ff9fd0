"""Bounded parallel fan-out with per-item timeouts that never block the caller or process exit."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T, R]):
    item: T
    value: R | None = None
    error: BaseException | None = None
    timed_out: bool = False
    duration: float = 0.0


def fan_out(items: Iterable[T], fn: Callable[[T], R], concurrency: int = 8, timeout: float | None = None) -> list[Outcome[T, R]]:
    """Run fn over items on at most `concurrency` daemon threads, results in input order.

    An item running longer than `timeout` is reported as timed out and its thread abandoned (a
    replacement worker keeps the pool at full strength); exceptions are captured, never raised.
    """
    items = list(items)
    outcomes: list[Outcome[T, R]] = [Outcome(item) for item in items]
    if not items:
        return outcomes
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(items)):
        todo.put(i)
    lock = threading.Condition()
    started: dict[int, float] = {}
    finished: set[int] = set()

    def worker() -> None:
        while True:
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            t0 = time.monotonic()
            with lock:
                started[i] = t0
            try:
                value, error = fn(items[i]), None
            except BaseException as exc:  # noqa: BLE001 - reported per item
                value, error = None, exc
            with lock:
                if i not in finished:
                    out = outcomes[i]
                    out.value, out.error, out.duration = value, error, time.monotonic() - t0
                    finished.add(i)
                    lock.notify_all()
                else:  # already reported as timed out: this thread was abandoned
                    return

    def spawn() -> None:
        threading.Thread(target=worker, daemon=True, name="opsctl-fanout").start()

    for _ in range(min(concurrency, len(items))):
        spawn()
    with lock:
        while len(finished) < len(items):
            now = time.monotonic()
            next_deadline = None
            if timeout is not None:
                for i, t0 in list(started.items()):
                    if i in finished:
                        continue
                    if now - t0 >= timeout:
                        outcomes[i].timed_out, outcomes[i].duration = True, now - t0
                        finished.add(i)
                        spawn()
                    else:
                        d = t0 + timeout
                        next_deadline = d if next_deadline is None else min(next_deadline, d)
            if len(finished) >= len(items):
                break
            wait = 1.0 if next_deadline is None else max(0.01, next_deadline - now)
            lock.wait(wait)
    return outcomes
