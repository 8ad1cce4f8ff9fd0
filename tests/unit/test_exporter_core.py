"""Exporter core: cache, refreshers with deadlines, failure isolation, staleness, fast path, masking."""

from __future__ import annotations

import gzip
import math
import subprocess
import threading
import time

import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from opsctl.exporters.collectors._families import Families
from opsctl.exporters.prometheus import CollectorError, Exporter, Source
from opsctl.secrets import register_secret


def gauge(name: str, value: float, **labels: str) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, f"help of {name}", labels=list(labels))
    g.add_metric(list(labels.values()), value)
    return g


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


def test_failing_collector_marks_itself_and_others_still_export():
    def broken():
        raise RuntimeError("database exploded")

    exp = Exporter([Source("good", lambda: [gauge("x_good", 1)]), Source("bad", broken)])
    exp.refresher.run_all_once()
    body, _ = exp.scrape()
    assert value(body, "x_good") == 1
    assert value(body, "opsctl_collector_up", collector="good", cloud="") == 1
    assert value(body, "opsctl_collector_up", collector="bad", cloud="") == 0
    assert value(body, "opsctl_collector_errors_total", collector="bad", cloud="") == 1
    assert value(body, "opsctl_collector_last_success_timestamp_seconds", collector="bad", cloud="") == 0
    assert math.isinf(value(body, "opsctl_collector_cache_age_seconds", collector="bad", cloud=""))
    assert [s.last_error for s in exp.cache.states() if s.name == "bad"] == ["RuntimeError: database exploded"]


def test_partial_families_of_a_failed_collection_replace_the_old_ones():
    calls = iter([[gauge("svc_up", 1), gauge("svc_items", 5)], CollectorError("HTTP 503", [gauge("svc_up", 0)])])

    def collect():
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    exp = Exporter([Source("svc", collect)])
    src = exp.refresher.sources[0]
    exp.refresher.run_once(src)
    assert value(exp.scrape()[0], "svc_items") == 5
    exp.refresher.run_once(src)
    body = exp.scrape()[0]
    assert value(body, "svc_up") == 0 and value(body, "svc_items") is None
    assert value(body, "opsctl_collector_up", collector="svc", cloud="") == 0


def test_slow_collector_times_out_keeps_old_data_and_never_blocks_a_scrape():
    release = threading.Event()
    first = [True]

    def slow():
        if first[0]:
            first[0] = False
            return [gauge("slow_value", 7)]
        release.wait(10)
        return [gauge("slow_value", 8)]

    exp = Exporter([Source("slow", slow, timeout=0.3)])
    src = exp.refresher.sources[0]
    assert exp.refresher.run_once(src)
    runner = threading.Thread(target=exp.refresher.run_once, args=(src,))
    runner.start()
    t0 = time.monotonic()
    body, _ = exp.scrape()  # while the collection hangs
    assert time.monotonic() - t0 < 0.1
    assert value(body, "slow_value") == 7
    runner.join(5)
    body, _ = exp.scrape()
    assert value(body, "slow_value") == 7  # the last good data stays
    assert value(body, "opsctl_collector_up", collector="slow", cloud="") == 0
    assert [s.last_error for s in exp.cache.states()] == ["timed out after 0.3s"]
    # the hung run is still going: the next tick does not pile up another one
    assert not exp.refresher.run_once(src)
    assert "still running" in exp.cache.states()[0].last_error
    release.set()


def test_data_older_than_max_cache_age_is_dropped_but_health_stays():
    exp = Exporter([Source("old", lambda: [gauge("old_value", 1)])], max_cache_age=60)
    exp.refresher.run_all_once()
    assert value(exp.scrape()[0], "old_value") == 1
    exp.cache.expire(now=time.time() + 61)
    body = exp.scrape()[0]
    assert value(body, "old_value") is None
    assert value(body, "opsctl_collector_up", collector="old", cloud="") == 1


def test_one_family_from_several_clouds_gets_one_header_and_passes_promtool(tmp_path):
    def per_cloud(cloud):
        fam = Families({"cloud": cloud})
        fam.gauge("openstack_nova_agent_state", "state", {"hostname": "c1", "service": "nova-compute"}, 1)
        return lambda: fam.families()

    exp = Exporter([Source("nova", per_cloud("east"), cloud="east"), Source("nova", per_cloud("west"), cloud="west")])
    exp.refresher.run_all_once()
    body, _ = exp.scrape()
    assert body.count(b"# TYPE openstack_nova_agent_state gauge") == 1
    assert value(body, "openstack_nova_agent_state", cloud="west", hostname="c1", service="nova-compute") == 1
    lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), lint


def test_fast_path_serves_the_same_samples_as_the_registry_and_gzip_members_decode():
    exp = Exporter([Source("a", lambda: [gauge("m_one", 1, host="h1"), gauge("m_two", 2)]),
                    Source("b", lambda: [gauge("m_one", 3, host="h2")], cloud="c2")])
    exp.refresher.run_all_once()
    plain, gz = exp.scrape(gzip_ok=False)[0], exp.scrape(gzip_ok=True)[0]
    full = exp.exposition()
    skip = ("opsctl_collector_cache_age_seconds",)
    strip = lambda d: {k: v for k, v in d.items() if k[0] not in skip}  # noqa: E731 - age moves between calls
    assert strip(samples(plain)) == strip(samples(full))
    assert gzip.decompress(gz) == plain or strip(samples(gzip.decompress(gz))) == strip(samples(plain))


def test_a_registered_secret_never_reaches_a_label_value():
    register_secret("hunter2-very-secret")
    fam = Families({"cloud": "c"})
    fam.gauge("x_state", "doc", {"reason": "disabled by hunter2-very-secret"}, 1)
    exp = Exporter([Source("s", fam.families)])
    exp.refresher.run_all_once()
    body, _ = exp.scrape()
    assert b"hunter2-very-secret" not in body and b"x_state" in body


def test_collector_exception_text_is_masked():
    register_secret("s3cr3t-token-value")

    def leak():
        raise RuntimeError("auth failed with s3cr3t-token-value")

    exp = Exporter([Source("leaky", leak)])
    exp.refresher.run_all_once()
    assert "s3cr3t-token-value" not in exp.cache.states()[0].last_error


def test_background_refresher_updates_the_cache_on_its_interval():
    counter = iter(range(1000))
    exp = Exporter([Source("tick", lambda: [gauge("tick_value", next(counter))], interval=0.05)])
    exp.refresher.start()
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (value(exp.scrape()[0], "tick_value") or 0) < 3:
            time.sleep(0.02)
        assert value(exp.scrape()[0], "tick_value") >= 3
    finally:
        exp.refresher.stop()


@pytest.mark.parametrize("path,code", [("/metrics", 200), ("/", 200), ("/healthz", 200), ("/nope", 404)])
def test_http_server_paths(path, code):
    import urllib.error
    import urllib.request

    exp = Exporter([Source("a", lambda: [gauge("http_value", 1)])])
    exp.refresher.run_all_once()
    server = exp.serve("127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                got, body = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            got, body = exc.code, b""
        assert got == code
        if path == "/metrics":
            assert b"http_value 1.0" in body
    finally:
        server.shutdown()


def test_isolated_collectors_run_in_a_child_process_that_is_restarted_if_it_dies():
    import os
    import signal

    from opsctl.exporters.cache import MirrorCache

    exp = Exporter([Source("pid", lambda: [gauge("collector_pid", os.getpid())], interval=0.2)], isolate=True)
    assert isinstance(exp.cache, MirrorCache)
    exp.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and value(exp.scrape()[0], "collector_pid") is None:
            time.sleep(0.05)
        first = value(exp.scrape()[0], "collector_pid")
        assert first and first != os.getpid()  # collected in another process
        assert value(exp.scrape()[0], "opsctl_collector_up", collector="pid", cloud="") == 1
        os.kill(int(first), signal.SIGKILL)
        while time.monotonic() < deadline and value(exp.scrape()[0], "collector_pid") in (None, first):
            time.sleep(0.05)
        assert exp.process.restarts == 1
        assert value(exp.scrape()[0], "collector_pid") not in (None, first)
    finally:
        exp.stop()
