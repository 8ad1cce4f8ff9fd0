"""Per-component backup plugins: registered through the `opsctl.backup` entry points, fed by the catalog."""

from __future__ import annotations

from opsctl.backup.plugins import DEFAULT, load_plugins, targets_for
from opsctl.components import CATALOG, apply_overrides
from opsctl.config import parse


def _targets(names, cfg=None):
    cfg = cfg or parse({})
    catalog = apply_overrides(CATALOG, cfg.component_overrides())
    targets, errors = targets_for([catalog[n] for n in names], cfg)
    assert errors == []
    return {t.component: t for t in targets}


def test_entry_points_registered():
    plugins, errors = load_plugins()
    assert errors == []
    assert {"keystone", "swift", "glance", "mysql", "rabbitmq"} <= set(plugins)


def test_databases_come_from_the_catalog():
    t = _targets(["nova", "keystone", "placement"])
    assert t["nova"].databases == ("nova_api", "nova", "nova_cell0")
    assert t["keystone"].databases == ("keystone",)


def test_keystone_keys_are_their_own_set_and_not_in_config():
    ks = _targets(["keystone"])["keystone"]
    sets = {f.name: f for f in ks.filesets}
    assert sets["keys"].paths == ("/etc/keystone/fernet-keys", "/etc/keystone/credential-keys")
    assert "etc/keystone/fernet-keys" in sets["config"].excludes


def test_swift_rings_and_builders():
    sw = _targets(["swift"])["swift"]
    rings = next(f for f in sw.filesets if f.name == "rings")
    assert "/etc/swift/*.ring.gz" in rings.paths and "/etc/swift/*.builder" in rings.paths


def test_glance_images_only_when_asked():
    assert [f.name for f in _targets(["glance"])["glance"].filesets] == ["config"]
    with_images = _targets(["glance"], parse({"backup": {"include_images": True}}))["glance"]
    assert [f.name for f in with_images.filesets] == ["config", "images"]


def test_live_datadirs_are_not_tarred():
    assert [f.name for f in _targets(["mysql"])["mysql"].filesets] == ["config"]
    assert [f.name for f in _targets(["rabbitmq"])["rabbitmq"].filesets] == ["config"]


def test_overrides_apply():
    cfg = parse({"components": {"nova": {"databases": ["nova"], "config_dirs": ["/srv/nova/etc"]}}})
    nova = _targets(["nova"], cfg)["nova"]
    assert nova.databases == ("nova",) and nova.filesets[0].paths == ("/srv/nova/etc",)


def test_unknown_component_gets_the_catalog_plugin():
    plugins, _ = load_plugins()
    assert plugins.get("nova", DEFAULT) is DEFAULT
