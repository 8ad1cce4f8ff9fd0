"""Record the real testbed's API responses used by the exporter's OpenStack collectors (bench/recorded/).

Usage: OS_CLIENT_CONFIG_FILE=/tmp/minios/etc/clouds.yaml python3 bench/record_testbed_api.py [cloud]
Records version documents and one page of every list the collectors read; the replay server
(tests/exporter_replay.py) scales them up. Tokens and auth data are not recorded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

import openstack

OUT = Path(__file__).parent / "recorded" / "testbed_api.json"
CALLS = {
    "compute": [("/os-services", None), ("/os-aggregates", None), ("/os-hypervisors/detail", "2.53"),
                ("/servers/detail?all_tenants=1&limit=5", None)],
    "network": [("/agents", None), ("/networks?fields=id", None), ("/subnets?fields=id", None),
                ("/routers?fields=id", None), ("/floatingips?fields=id", None)],
    "volume": [("/os-services", None), ("/volumes/detail?all_tenants=1&limit=5", None)],
    "image": [("/images?limit=5", None)],
    "placement": [("/resource_providers", "1.14")],
    "identity": [("/projects", None), ("/domains", None)],
}
PROXY = {"compute": "compute", "network": "network", "volume": "block_storage", "image": "image",
         "placement": "placement", "identity": "identity"}


def main() -> int:
    conn = openstack.connect(cloud=sys.argv[1] if len(sys.argv) > 1 else "testbed")
    session = conn.session
    record: dict = {"endpoints": {}, "discovery": {}, "responses": {}}
    for service, calls in CALLS.items():
        proxy = getattr(conn, PROXY[service])
        probe = proxy.get(calls[0][0], microversion=calls[0][1], raise_exc=False)
        endpoint = probe.url[: probe.url.index(calls[0][0].split("?")[0])]
        record["endpoints"][service] = urlsplit(endpoint).path
        base = f"{urlsplit(endpoint).scheme}://{urlsplit(endpoint).netloc}"
        for path in {"/", urlsplit(endpoint).path.rstrip("/") + "/"}:
            resp = session.get(base + path, authenticated=False, raise_exc=False, headers={"Accept": "application/json"})
            if resp.status_code < 400 or resp.status_code == 300:
                record["discovery"][f"{service} {path}"] = resp.json()
        for path, mv in calls:
            resp = proxy.get(path, microversion=mv, raise_exc=False)
            resp.raise_for_status()
            record["responses"][f"{service} {path.split('?')[0]}"] = resp.json()
        if service == "placement":
            rp = record["responses"]["placement /resource_providers"]["resource_providers"][0]["uuid"]
            for sub in ("inventories", "usages"):
                resp = proxy.get(f"/resource_providers/{rp}/{sub}", microversion="1.14", raise_exc=False)
                record["responses"][f"placement /resource_providers/ID/{sub}"] = resp.json()
    token = session.auth.get_access(session)
    record["token_catalog_types"] = sorted({e["type"] for e in token.service_catalog.catalog})
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"recorded {len(record['responses'])} responses, {len(record['discovery'])} version documents to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
