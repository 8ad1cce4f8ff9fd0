"""Benchmark `opsctl logs errors` against `grep -c -E ' (ERROR|CRITICAL) '` on the same >= 1 GB oslo.log corpus.

Both run in this process's run, on the same files, warm page cache, alternating, N rounds; the best and median
wall times are reported with the throughput ratio (target >= 0.5x grep) and the peak RSS of the opsctl run
(target < 200 MB): the largest single process (`/usr/bin/time -v`-style ru_maxrss of the process tree) and
the sum over the process tree sampled with psutil.

    python3 bench/bench_logs.py [--dir /tmp/opsctl-bench-logs] [--size-mb 1100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import resource

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from gen_oslo_corpus import generate  # noqa: E402


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_measured(argv: list[str], env: dict | None = None) -> tuple[float, bytes, int, int, float]:
    """(wall seconds, stdout, max RSS of one process in the tree (bytes), max summed RSS of the tree (bytes),
    CPU seconds (user+sys) of the whole process tree)."""
    cpu0 = _children_cpu()
    peak_sum = 0
    peak_one = 0
    stop = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def sample() -> None:
        nonlocal peak_sum, peak_one
        try:
            root = psutil.Process(proc.pid)
        except psutil.Error:
            return
        while not stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
                rss = [p.memory_info().rss for p in procs]
                peak_sum = max(peak_sum, sum(rss))
                peak_one = max(peak_one, max(rss))
            except psutil.Error:
                pass
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return wall, out, peak_one, peak_sum, _children_cpu() - cpu0


def children_maxrss_kb(argv: list[str], env: dict | None = None) -> int:
    """ru_maxrss of the largest process of the tree, as /usr/bin/time -v reports it (KiB)."""
    if os.path.exists("/usr/bin/time"):
        res = subprocess.run(["/usr/bin/time", "-v", *argv], capture_output=True, env=env)
        for line in res.stderr.decode(errors="replace").splitlines():
            if "Maximum resident set size" in line:
                return int(line.rsplit(":", 1)[1])
    return -1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/opsctl-bench-logs")
    ap.add_argument("--size-mb", type=int, default=1100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    files = sorted(glob.glob(os.path.join(args.dir, "*.log")))
    total = sum(os.path.getsize(f) for f in files)
    if total < args.size_mb * (1 << 20) * 0.95:
        print(f"generating {args.size_mb} MB corpus in {args.dir} ...", file=sys.stderr)
        files = generate(args.dir, args.size_mb << 20)
        total = sum(os.path.getsize(f) for f in files)
    state = tempfile.mkdtemp(prefix="opsctl-bench-state-")
    cfg = os.path.join(state, "opsctl.yaml")
    with open(cfg, "w") as fh:
        fh.write(f"logs:\n  state_dir: {state}\n")
    env = {**os.environ, "OPSCTL_CONFIG": cfg}
    grep = ["grep", "-c", "-E", " (ERROR|CRITICAL) ", *files]
    opsctl = [sys.executable, "-m", "opsctl", "logs", "errors", "--path", os.path.join(args.dir, "*.log"), "--format", "json"]

    load0 = os.getloadavg()[0]
    for f in files:  # warm the page cache for both
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    g_times, o_times, rss_one, rss_sum, g_cpu, o_cpu = [], [], [], [], [], []
    grep_lines = events = 0
    for _ in range(args.rounds):
        wall, out, _, _, cpu = run_measured(grep)
        g_times.append(wall)
        g_cpu.append(cpu)
        grep_lines = sum(int(line.rsplit(b":", 1)[1]) for line in out.splitlines())
        wall, out, one, tree, cpu = run_measured(opsctl, env)
        o_times.append(wall)
        o_cpu.append(cpu)
        rss_one.append(one)
        rss_sum.append(tree)
        doc = json.loads(out)
        events = doc["events"]
    maxrss_kb = children_maxrss_kb(opsctl, env)
    gb = total / 1e9
    g_best, o_best = min(g_times), min(o_times)
    g_med, o_med = statistics.median(g_times), statistics.median(o_times)
    print(f"corpus: {len(files)} files, {gb:.2f} GB; grep matched {grep_lines} lines; opsctl found {events} error events "
          f"in {doc['groups']} groups")
    print(f"grep -c -E:          best {g_best:.2f}s ({gb / g_best:.2f} GB/s), median {g_med:.2f}s")
    print(f"opsctl logs errors:  best {o_best:.2f}s ({gb / o_best:.2f} GB/s), median {o_med:.2f}s")
    print(f"throughput ratio opsctl/grep: best {g_best / o_best:.2f}x, median {g_med / o_med:.2f}x (target >= 0.5x)")
    print(f"CPU time (user+sys, whole tree): grep {min(g_cpu):.2f}s, opsctl {min(o_cpu):.2f}s on {os.cpu_count()} CPUs; "
          f"CPU-time ratio {min(g_cpu) / min(o_cpu):.2f}x")
    print(f"peak RSS: largest process {max(rss_one) / 2**20:.0f} MB (psutil), {maxrss_kb / 1024:.0f} MB (/usr/bin/time -v "
          f"max RSS); whole process tree {max(rss_sum) / 2**20:.0f} MB (target < 200 MB)")
    print(f"load average at start {load0:.1f}, at end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other work on a shared machine slows both commands, the parallel one more)")
    ok = min(g_best / o_best, g_med / o_med) >= 0.5 and max(rss_sum) < 200 * 2**20  # conservative: both must pass
    print("PASS" if ok else "BELOW TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
