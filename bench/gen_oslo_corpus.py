"""Generate a realistic oslo.log corpus (several service logs) for bench_logs.py.

About 1% of the records are ERROR (most with a multi-line traceback, every line carrying the oslo prefix,
some with the unprefixed `(Background on this error ...)` line), 0.05% CRITICAL, 3% WARNING, the rest
INFO/DEBUG with request contexts. Written into /tmp (never committed). Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid

SERVICES = [("nova-api", "nova.api.openstack.requestlog"), ("nova-compute", "nova.compute.manager"),
            ("nova-conductor", "nova.conductor.manager"), ("nova-scheduler", "nova.scheduler.manager"),
            ("neutron-server", "neutron.wsgi"), ("cinder-volume", "cinder.volume.manager"),
            ("keystone", "keystone.server.flask.request_processing"), ("glance-api", "glance.api.v2.images")]
INFO_MSGS = [
    '127.0.0.1 "GET /v2.1/servers/{u}" status: 200 len: 1734 microversion: 2.88 time: 0.{n:06d}',
    "[instance: {u}] Took {n2}.{n3} seconds to spawn the instance on the hypervisor.",
    "Claim successful on node minios-{n3}",
    "Lock \"compute_resources\" acquired by \"nova.compute.resource_tracker.ResourceTracker._update_available_resource\" :: waited 0.000s",
    "Successfully synced instances from host 'compute-{n3}'.",
    "Volume {u}: being created as raw with specification: {{'status': 'creating', 'size': {n2}}}",
]
DEBUG_MSGS = ["Acquiring lock \"{u}\" by \"nova.compute.manager._locked_do_build\" inner /usr/lib/python3/dist-packages/oslo_concurrency/lockutils.py:404",
              "Running periodic task ComputeManager._poll_volume_usage run_periodic_tasks /usr/lib/python3/dist-packages/oslo_service/periodic_task.py:210"]
WARN_MSGS = ["[instance: {u}] Instance shutdown by itself. Calling the stop API. Current vm_state: active",
             "Timed out waiting for a reply to message ID {h}"]
ERRORS = [
    ("Unexpected error while reporting service status: oslo_db.exception.DBConnectionError: (pymysql.err.OperationalError) "
     "(2003, \"Can't connect to MySQL server on '10.0.{n2}.{n3}' ([Errno 111] Connection refused)\")",
     ["sqlalchemy/engine/base.py", "pymysql/connections.py", "socket.py"],
     "oslo_db.exception.DBConnectionError: (pymysql.err.OperationalError) (2003, \"Can't connect to MySQL server\")", True),
    ("[instance: {u}] Instance failed to spawn", ["nova/compute/manager.py", "nova/virt/libvirt/driver.py"],
     "libvirt.libvirtError: internal error: process exited while connecting to monitor", False),
    ("AMQP server on 10.0.0.{n3}:5672 is unreachable: [Errno 111] Connection refused. Trying again in {n2} seconds.", [], "", False),
    ("Exception during message handling", ["oslo_messaging/rpc/server.py", "nova/exception_wrapper.py"],
     "nova.exception.InstanceNotFound: Instance {u} could not be found.", False),
    ("Failed to bind port {u} on host compute-{n3} for vnic_type normal using segments [{{'id': '{u}'}}]", [], "", False),
]


def ctx(rng: random.Random) -> str:
    return f"[req-{uuid.UUID(int=rng.getrandbits(128))} {rng.getrandbits(128):032x} {rng.getrandbits(128):032x} - - default default]"


def fill(tmpl: str, rng: random.Random) -> str:
    return tmpl.format(u=uuid.UUID(int=rng.getrandbits(128)), n=rng.randrange(10**6), n2=rng.randrange(100),
                       n3=rng.randrange(1000), h=f"{rng.getrandbits(128):032x}")


def write_service(path: str, target: int, logger: str, seed: int, start: float) -> dict:
    rng = random.Random(seed)
    pid = 1000 + seed
    t = start
    counts = {"records": 0, "error_records": 0, "error_lines": 0}
    with open(path, "w", buffering=1 << 20) as out:
        size = 0
        buf: list[str] = []
        while size < target:
            t += rng.random() * 0.05
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}"
            r = rng.random()
            counts["records"] += 1
            if r < 0.0105:
                level = "CRITICAL" if r < 0.0005 else "ERROR"
                msg, frames, exc, background = ERRORS[rng.randrange(len(ERRORS))]
                lines = [f"{stamp} {pid} {level} {logger} {ctx(rng)} {fill(msg, rng)}"]
                if background:
                    lines.append("(Background on this error at: https://sqlalche.me/e/21/e3q8)")
                if frames:
                    p = f"{stamp} {pid} ERROR {logger} "
                    lines.append(p + "Traceback (most recent call last):")
                    for i in range(rng.randrange(3, 9)):
                        f = frames[i % len(frames)]
                        lines.append(p + f'  File "/usr/lib/python3/dist-packages/{f}", line {rng.randrange(2000)}, in fn{i}')
                        lines.append(p + f"    result = call_{i}(context, *args, **kwargs)")
                    lines.append(p + fill(exc, rng))
                    if background:
                        lines.append(p + "(Background on this error at: https://sqlalche.me/e/21/e3q8)")
                    lines.append(p)
                counts["error_records"] += 1
                counts["error_lines"] += len(lines)
            elif r < 0.04:
                lines = [f"{stamp} {pid} WARNING {logger} {ctx(rng)} {fill(rng.choice(WARN_MSGS), rng)}"]
            elif r < 0.30:
                lines = [f"{stamp} {pid} DEBUG {logger} {ctx(rng)} {fill(rng.choice(DEBUG_MSGS), rng)}"]
            else:
                lines = [f"{stamp} {pid} INFO {logger} {ctx(rng)} {fill(rng.choice(INFO_MSGS), rng)}"]
            text = "\n".join(lines) + "\n"
            buf.append(text)
            size += len(text)
            if len(buf) > 2000:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    counts["bytes"] = os.path.getsize(path)
    return counts


def generate(directory: str, total_bytes: int, seed: int = 42) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    per = total_bytes // len(SERVICES) + 1
    paths = []
    start = time.time() - 86400
    totals = {"records": 0, "error_records": 0, "error_lines": 0, "bytes": 0}
    for i, (svc, logger) in enumerate(SERVICES):
        path = os.path.join(directory, f"{svc}.log")
        c = write_service(path, per, logger, seed + i, start)
        for k in totals:
            totals[k] += c[k]
        paths.append(path)
    print(f"corpus: {totals['bytes'] / 1e9:.2f} GB, {totals['records']} records, {totals['error_records']} error records "
          f"({100 * totals['error_records'] / totals['records']:.2f}%), {totals['error_lines']} error lines", file=sys.stderr)
    return paths


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("directory")
    ap.add_argument("--size-mb", type=int, default=1100)
    args = ap.parse_args()
    generate(args.directory, args.size_mb << 20)
