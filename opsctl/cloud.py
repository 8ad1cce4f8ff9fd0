"""Cloud access through openstacksdk: clouds.yaml / OS_* credentials, per-call timeouts, masked secrets."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opsctl.errors import UnavailableError
from opsctl.secrets import register_secret

AUTH_SECRET_KEYS = ("password", "token", "application_credential_secret", "secret", "passcode", "totp")


def _register_auth_secrets(conn: Any) -> None:
    try:
        auth = conn.config.config.get("auth", {}) or {}
    except AttributeError:
        return
    for key in AUTH_SECRET_KEYS:
        if auth.get(key):
            register_secret(str(auth[key]))


@dataclass
class CloudAccess:
    """A lazily opened openstacksdk connection for one cloud, shared by all checks of a run."""

    name: str | None
    api_timeout: float = 10.0
    interface: str | None = None
    region: str | None = None
    _conn: Any = field(default=None, repr=False)
    _error: Exception | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def label(self) -> str:
        return self.name or "default"

    def connection(self) -> Any:
        """The openstacksdk Connection, authenticated; raises UnavailableError once, cached."""
        with self._lock:
            if self._conn is not None:
                return self._conn
            if self._error is not None:
                raise self._error
            try:
                self._conn = connect(self.name, self.api_timeout, self.interface, self.region)
            except UnavailableError as exc:
                self._error = exc
                raise
            return self._conn

    def timed(self, fn, *args, **kwargs) -> tuple[Any, float]:
        """Call fn and return (value, seconds) for latency metrics."""
        t0 = time.monotonic()
        value = fn(*args, **kwargs)
        return value, time.monotonic() - t0


def connect(cloud: str | None, api_timeout: float = 10.0, interface: str | None = None, region: str | None = None) -> Any:
    """Open and authenticate a connection from clouds.yaml or OS_* variables."""
    import openstack
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as os_exc

    kwargs: dict[str, Any] = {"api_timeout": api_timeout}
    if interface:
        kwargs["interface"] = interface
    if region:
        kwargs["region_name"] = region
    label = cloud or "OS_* environment"
    try:
        conn = openstack.connect(cloud=cloud, **kwargs) if cloud else openstack.connect(**kwargs)
        _register_auth_secrets(conn)
        conn.authorize()
    except os_exc.ConfigException as exc:
        raise UnavailableError(f"cloud {label}: {exc}", hint="check clouds.yaml or the OS_* variables") from None
    except ks_exc.Unauthorized:
        raise UnavailableError(f"cloud {label}: authentication refused by Keystone", hint="check the credentials") from None
    except (ks_exc.ConnectFailure, ks_exc.ConnectTimeout, ks_exc.DiscoveryFailure, ks_exc.RequestTimeout) as exc:
        raise UnavailableError(f"cloud {label}: Keystone unreachable: {type(exc).__name__}") from None
    except (ks_exc.ClientException, os_exc.SDKException) as exc:
        if getattr(exc, "status_code", None) == 401 or "(HTTP 401)" in str(exc):
            raise UnavailableError(f"cloud {label}: authentication refused by Keystone", hint="check the credentials") from None
        raise UnavailableError(f"cloud {label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    return conn
