"""The real OpenStack testbed: opsctl authenticates with openstacksdk from clouds.yaml and never shows the password."""

import logging

import pytest

from opsctl.cloud import CloudAccess, connect
from opsctl.errors import UnavailableError
from opsctl.secrets import mask


def test_authenticates_from_clouds_yaml(testbed, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(testbed.clouds_yaml))
    conn = connect("testbed", api_timeout=10)
    catalog = {s["type"] for s in conn.service_catalog}
    assert {"identity", "compute", "network", "image", "placement", "volumev3"} <= catalog
    assert conn.identity.get_project(conn.current_project_id).name == "admin"
    # the password from clouds.yaml is now masked everywhere
    assert mask("auth failed for admin/secret") == "auth failed for admin/***"


def test_authenticates_from_os_environment(testbed, monkeypatch):
    for k in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", "/nonexistent/clouds.yaml")
    env = dict(OS_AUTH_URL="http://127.0.0.1:5000/v3", OS_USERNAME="admin", OS_PASSWORD="secret", OS_PROJECT_NAME="admin",
               OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default", OS_REGION_NAME="RegionOne")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    access = CloudAccess(None, api_timeout=10)
    conn = access.connection()
    assert access.label == "default"
    assert len(list(conn.compute.services())) >= 3


def test_wrong_password_is_a_clear_error(testbed, tmp_path, monkeypatch, caplog):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(testbed.clouds_yaml.read_text().replace("password: secret", "password: Wrong-Pass-123"))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UnavailableError, match="authentication refused by Keystone"):
        connect("testbed", api_timeout=10)
    assert mask("x Wrong-Pass-123 y") == "x *** y"


def test_unknown_cloud_name(testbed, monkeypatch):
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(testbed.clouds_yaml))
    with pytest.raises(UnavailableError, match="cloud nosuchcloud"):
        connect("nosuchcloud")
