"""Swift: the object store answers, if it is deployed (absent from the catalog is OK, not a failure)."""

from __future__ import annotations

from opsctl.checks._api import api_probe_check

API = api_probe_check("swift", "object-store", lambda conn: conn.object_store.head(conn.object_store.get_endpoint(),
                                                                                   raise_exc=False),
                      optional=True, what="Swift account HEAD")

CHECKS = [API]
