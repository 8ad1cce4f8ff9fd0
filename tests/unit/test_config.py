import pytest
import yaml

from opsctl import config
from opsctl.errors import ConfigError


def test_defaults_without_file(monkeypatch, tmp_path):
    monkeypatch.delenv("OPSCTL_CONFIG", raising=False)
    monkeypatch.setattr(config, "DEFAULT_PATH", tmp_path / "absent.yaml")
    cfg, path = config.load(None)
    assert path is None and cfg.checks.timeout == 60


def test_every_error_is_reported_with_its_key_path(tmp_path):
    bad = {
        "inventory": {"hosts": {"cmp1": {"roles": ["compute", "kitchen"], "ssh": {"port": 70000}}}},
        "database": {"password": "inline-plaintext"},
        "checks": {"timeout": -1},
        "typo_section": {},
    }
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        config.load(str(f))
    problems = "\n".join(err.value.problems)
    assert "inventory.hosts.cmp1.roles: unknown role(s) kitchen" in problems
    assert "inventory.hosts.cmp1.ssh.port" in problems
    assert "database.password" in problems and "by reference" in problems
    assert "checks.timeout" in problems
    assert "typo_section: unknown key" in problems
    assert len(err.value.problems) == 5
    assert "inline-plaintext" not in problems


def test_yaml_syntax_error_has_location(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("checks:\n  timeout: [1,\n")
    with pytest.raises(ConfigError, match=r"c.yaml:\d+:\d+: invalid YAML"):
        config.load(str(f))


def test_secret_reference_resolves(tmp_path, monkeypatch):
    monkeypatch.setenv("DBPW", "pw-from-env")
    cfg = config.parse({"database": {"password": {"env": "DBPW"}}})
    assert cfg.database.password.resolve() == "pw-from-env"
    with pytest.raises(ConfigError) as err:
        config.parse({"database": {"password": {"env": "A", "file": "/b"}}})
    assert err.value.problems == ["database.password: give exactly one of 'file' or 'env'"]


def test_env_var_selects_file(tmp_path, monkeypatch):
    f = tmp_path / "c.yaml"
    f.write_text("checks: {timeout: 5}\n")
    monkeypatch.setenv("OPSCTL_CONFIG", str(f))
    cfg, path = config.load(None)
    assert path == f and cfg.checks.timeout == 5


def test_component_overrides_reach_the_catalog():
    from opsctl.components import CATALOG, apply_overrides

    cfg = config.parse({"components": {"nova": {"services": {"nova-compute": {"logs": ["/srv/log/nova-compute.log"]}},
                                                 "config_dirs": ["/etc/kolla/nova-compute"]}}})
    cat = apply_overrides(CATALOG, cfg.component_overrides())
    compute = {s.name: s for s in cat["nova"].services}["nova-compute"]
    assert compute.logs == ("/srv/log/nova-compute.log",)
    assert compute.processes == ("nova-compute",)  # untouched facts stay
    assert cat["nova"].config_dirs == ("/etc/kolla/nova-compute",)
    assert CATALOG["nova"].config_dirs == ("/etc/nova",)  # the catalog itself is not modified
