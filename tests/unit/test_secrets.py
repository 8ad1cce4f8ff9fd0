import logging

import pytest

from opsctl.errors import ConfigError
from opsctl.secrets import MASK, MaskingFilter, SecretRef, clear_registered, mask, register_secret


@pytest.fixture(autouse=True)
def _clean():
    clear_registered()
    yield
    clear_registered()


def test_registered_secret_is_masked_everywhere():
    register_secret("s3cr3t-value")
    assert mask("connect with s3cr3t-value now") == f"connect with {MASK} now"


def test_inline_patterns_are_masked_without_registration():
    text = ("transport_url = rabbit://openstack:RabbitPass1@10.0.0.1:5672/ "
            "connection=mysql+pymysql://nova:DbPass2@db/nova password=Hunter22 X-Auth-Token: gAAAAAB123")
    masked = mask(text)
    for secret in ("RabbitPass1", "DbPass2", "Hunter22", "gAAAAAB123"):
        assert secret not in masked
    assert "rabbit://openstack:***@10.0.0.1" in masked


def test_short_values_are_not_registered():
    register_secret("a")
    assert mask("a cat") == "a cat"


def test_secret_from_file_and_env(tmp_path, monkeypatch):
    f = tmp_path / "pw"
    f.write_text("from-file-pw\n")
    assert SecretRef(file=str(f)).resolve() == "from-file-pw"
    monkeypatch.setenv("OPSCTL_TEST_PW", "from-env-pw")
    assert SecretRef(env="OPSCTL_TEST_PW").resolve() == "from-env-pw"
    assert mask("from-file-pw from-env-pw") == f"{MASK} {MASK}"
    assert "from-env-pw" not in repr(SecretRef(env="OPSCTL_TEST_PW"))


def test_missing_secret_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read secret file"):
        SecretRef(file=str(tmp_path / "nope")).resolve("database.password")
    with pytest.raises(ConfigError, match="OPSCTL_NOPE is not set"):
        SecretRef(env="OPSCTL_NOPE").resolve()


def test_logging_filter_masks(caplog):
    register_secret("log-secret-1")
    logger = logging.getLogger("opsctl.test")
    handler_filter = MaskingFilter()
    record = logger.makeRecord("x", logging.ERROR, __file__, 1, "failed with %s", ("log-secret-1",), None)
    handler_filter.filter(record)
    assert record.getMessage() == f"failed with {MASK}"
