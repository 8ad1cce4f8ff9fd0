"""Entry-point plugins (a broken one is reported, the others run) and the runner's failure handling."""

import json
import os
import subprocess
import sys
import textwrap
import time

from opsctl.checkdef import check
from opsctl.config import parse
from opsctl.components import CATALOG
from opsctl.inventory import HostSpec, Inventory
from opsctl.results import Status
from opsctl.runner import Selection, run_checks


def _site_plugins(tmp_path):
    """A site plugin distribution on PYTHONPATH: one good check module, one that fails to import."""
    (tmp_path / "site_good.py").write_text(textwrap.dedent('''
        from opsctl.checkdef import check

        @check("site.hello", needs=())
        def hello(ctx):
            """Site check."""
            yield ctx.ok("hello from a site plugin", metrics={"answer": 42})

        CHECKS = [hello]
    '''))
    (tmp_path / "site_broken.py").write_text("raise RuntimeError('plugin exploded on import')\n")
    dist = tmp_path / "opsctl_site-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: opsctl-site\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[opsctl.checks]\nsite_good = site_good:CHECKS\nsite_broken = site_broken:CHECKS\n"
    )
    return {**os.environ, "PYTHONPATH": str(tmp_path), "OPSCTL_CONFIG": ""}


def test_site_plugin_loads_and_broken_one_is_reported(tmp_path):
    env = _site_plugins(tmp_path)
    out = subprocess.run([sys.executable, "-m", "opsctl", "check", "--check", "site.*", "-f", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    doc = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert [r["check"] for r in doc["results"]] == ["site.hello"]
    assert doc["results"][0]["metrics"] == {"answer": 42}
    assert any("site_broken" in e and "plugin exploded on import" in e for e in doc["plugin_errors"])


def test_list_shows_builtin_and_site_checks(tmp_path):
    env = _site_plugins(tmp_path)
    out = subprocess.run([sys.executable, "-m", "opsctl", "check", "--list"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "site.hello" in out.stdout and "host.disk_space" in out.stdout
    assert "site_broken" in out.stdout


def _inventory(*names):
    return Inventory(tuple(HostSpec(n, frozenset({"compute"})) for n in names), "test")


def test_raising_and_hanging_checks_become_unknown_and_the_run_goes_on():
    @check("t.raises", needs=())
    def raises(ctx):
        raise ValueError("boom")
        yield  # pragma: no cover

    @check("t.hangs", needs=())
    def hangs(ctx):
        time.sleep(30)
        yield ctx.ok("never")

    @check("t.fine", needs=())
    def fine(ctx):
        yield ctx.ok("fine")

    @check("t.empty", needs=())
    def empty(ctx):
        return []

    cfg = parse({"checks": {"timeout": 1}})
    t0 = time.monotonic()
    report = run_checks([raises, hangs, fine, empty], _inventory("h1", "h2"), cfg, CATALOG)
    assert time.monotonic() - t0 < 10
    by = {(r.check, r.host): r for r in report.results}
    assert by[("t.raises", "h1")].status == Status.UNKNOWN
    assert by[("t.raises", "h1")].summary == "check failed: ValueError: boom"
    assert by[("t.hangs", "h2")].status == Status.UNKNOWN and "timed out after 1s" in by[("t.hangs", "h2")].summary
    assert by[("t.fine", "h1")].status == Status.OK
    assert not any(r.check == "t.empty" for r in report.results)  # nothing to report is not a failure
    assert report.status == Status.UNKNOWN


def test_selection_by_role_host_component_and_disabled():
    @check("a.one", roles=("compute",), needs=())
    def one(ctx):
        yield ctx.ok("one")

    @check("b.two", roles=("controller",), needs=())
    def two(ctx):
        yield ctx.ok("two")

    inv = Inventory((HostSpec("c1", frozenset({"compute"})), HostSpec("k1", frozenset({"controller"}))), "t")
    cfg = parse({})
    assert {(r.check, r.host) for r in run_checks([one, two], inv, cfg, CATALOG).results} == {("a.one", "c1"), ("b.two", "k1")}
    only_host = run_checks([one, two], inv, cfg, CATALOG, Selection(hosts=("k1",))).results
    assert [(r.check, r.host) for r in only_host] == [("b.two", "k1")]
    only_comp = run_checks([one, two], inv, cfg, CATALOG, Selection(components=("a",))).results
    assert [r.check for r in only_comp] == ["a.one"]
    disabled = run_checks([one, two], inv, parse({"checks": {"disabled": ["b.*"]}}), CATALOG).results
    assert [r.check for r in disabled] == ["a.one"]


def test_thresholds_from_config_override_defaults():
    @check("t.thr", needs=(), thresholds={"warn": 1, "crit": 2})
    def thr(ctx):
        yield ctx.ok(f"{ctx.thresholds['warn']} {ctx.thresholds['crit']}")

    cfg = parse({"checks": {"thresholds": {"t.thr": {"crit": 5}}}})
    [r] = run_checks([thr], _inventory("h"), cfg, CATALOG).results
    assert r.summary == "1 5"


def test_secrets_in_results_are_masked():
    from opsctl.secrets import register_secret

    register_secret("Very-Secret-Pw")

    @check("t.leak", needs=())
    def leak(ctx):
        yield ctx.critical("login failed with Very-Secret-Pw", details="mysql://u:Other-Pw@db/x")

    [r] = run_checks([leak], _inventory("h"), parse({}), CATALOG).results
    assert "Very-Secret-Pw" not in r.summary and "Other-Pw" not in r.details


def test_unconfigured_needs_are_skipped_with_a_note(monkeypatch, tmp_path):
    import opsctl.runner as runner

    for k in ("OS_CLOUD", "OS_AUTH_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(tmp_path / "absent-clouds.yaml"))
    monkeypatch.setattr(runner, "running_process_tokens", lambda: set())

    @check("t.cloudy", needs=("cloud",), scope="cloud")
    def cloudy(ctx):
        ctx.cloud.connection()
        yield ctx.ok("never without a cloud")

    @check("t.db", needs=("db",), scope="global")
    def db(ctx):
        yield ctx.ok("db fine")

    catalog = {"mysql": CATALOG["mysql"].__class__("mysql", CATALOG["mysql"].services, config_dirs=(str(tmp_path / "no-etc-mysql"),))}
    report = run_checks([cloudy, db], _inventory("h"), parse({}), catalog)
    assert report.results == []
    assert any("cloud checks skipped" in n for n in report.notes)
    assert any("mysql checks skipped" in n for n in report.notes)
    # configured explicitly: the db check runs
    assert [r.summary for r in run_checks([db], _inventory("h"), parse({"database": {"host": "db1"}}), catalog).results] == ["db fine"]
    # asked for by name: never silently skipped; without credentials it is UNKNOWN with the reason
    [r] = run_checks([cloudy], _inventory("h"), parse({}), catalog, Selection(checks=("t.cloudy",))).results
    assert r.status == Status.UNKNOWN and r.host == "default" and r.summary.startswith("cloud OS_* environment:")
