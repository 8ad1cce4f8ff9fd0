"""Runbook engine overhead, as ratios against a baseline measured in the same run.

1. A runbook of N read-only diagnostics (`true`) on the local host, through the engine (templating,
   expectation, output, audit record), against running the same N commands with subprocess directly.
2. The audit append (mask, JSON, flock, O_APPEND, 0600) against a plain unlocked append of the same line.

Usage: python3 bench/runbook_bench.py [N]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opsctl import config as configmod
from opsctl import runbook as rb
from opsctl.checkdef import check
from opsctl.components import CATALOG
from opsctl.inventory import HostSpec, Inventory
from opsctl.runbook_audit import append_audit


@check("bench.ok", scope="host")
def bench_ok(ctx):
    """Always OK."""
    yield ctx.ok("fine")


def engine_run(n: int, tmp: Path) -> float:
    steps = [{"id": f"s{i}", "diagnostic": f"step {i}", "run": ["true", "{host}"], "expect": {"rc": 0}} for i in range(n)]
    book = rb.parse_runbook({"id": "bench", "title": "bench", "symptoms": ["none"], "checks": ["bench.ok"], "steps": steps,
                             "verify": {"timeout": 1}}, "<bench>")
    config = configmod.parse({"runbooks": {"audit_log": str(tmp / "audit.log")}})
    target = HostSpec("bench", frozenset({"controller"}))
    ctx = rb.Context(config, CATALOG, Inventory((target,), "bench"), [bench_ok], out=lambda line: None)
    variables = rb.base_variables(book, config, CATALOG, target, "bench", None, {})
    t0 = time.perf_counter()
    outcome = rb.Engine(book, ctx, target, variables, yes=True).run()
    elapsed = time.perf_counter() - t0
    assert outcome.exit_code == 0, outcome
    return elapsed


def direct_run(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(["true", "bench"], capture_output=True, check=True)
    return time.perf_counter() - t0


def audit_append(n: int, path: Path) -> float:
    record = {"runbook": "bench", "steps": [{"id": "s", "output": "x" * 2000}], "result": "ok"}
    t0 = time.perf_counter()
    for _ in range(n):
        append_audit(path, record)
    return time.perf_counter() - t0


def plain_append(n: int, path: Path) -> float:
    record = {"runbook": "bench", "steps": [{"id": "s", "output": "x" * 2000}], "result": "ok"}
    t0 = time.perf_counter()
    for _ in range(n):
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")
    return time.perf_counter() - t0


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        direct_run(10), engine_run(10, tmp)  # warm up
        base = min(direct_run(n) for _ in range(3))
        eng = min(engine_run(n, tmp) for _ in range(3))
        print(f"diagnostics x{n}: direct subprocess {base * 1000 / n:.2f} ms/step, engine {eng * 1000 / n:.2f} ms/step "
              f"(incl. final re-check + audit), ratio {eng / base:.2f}")
        a = min(audit_append(n * 5, tmp / f"a{i}.log") for i in range(3))
        p = min(plain_append(n * 5, tmp / f"p{i}.log") for i in range(3))
        print(f"audit append x{n * 5}: plain {p * 1e6 / (n * 5):.1f} us/record, locked+masked+0600 {a * 1e6 / (n * 5):.1f} us/record, "
              f"ratio {a / p:.2f}")
        assert oct(os.stat(tmp / "a0.log").st_mode & 0o777) == "0o600"


if __name__ == "__main__":
    main()
