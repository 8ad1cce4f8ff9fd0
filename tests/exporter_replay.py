"""A replay OpenStack API for the exporter's tests and benchmark: recorded testbed responses, scaled up.

Real HTTP (ThreadingHTTPServer on loopback) serving Keystone (a token whose catalog points every
service back at this server), Nova, Neutron, Cinder, Glance and Placement. Every list is built by cloning
the items recorded from the real testbed (bench/recorded/testbed_api.json, see
bench/record_testbed_api.py) with new ids and host names, and is paginated like the real APIs
(`*_links` next for Nova/Cinder, `next` for Glance). Used where a cloud of 2,000 hypervisors and
20,000 servers is needed: no real one can run here.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

RECORDED = Path(__file__).resolve().parents[1] / "bench" / "recorded" / "testbed_api.json"
SERVICES = {"identity": "identity", "compute": "compute", "network": "network", "volume": "volumev3",
            "image": "image", "placement": "placement"}


def _uuid(kind: str, i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opsctl-replay/{kind}/{i}"))


@dataclass
class ReplayCloud:
    hypervisors: int = 2000
    servers: int = 20000
    volumes: int = 5000
    images: int = 200
    recorded_path: Path = RECORDED
    latency: float = 0.0  # seconds added to every response (a slow API)
    fail: set[str] = field(default_factory=set)  # services answering 503
    fail_paths: set[str] = field(default_factory=set)  # "<service> <api path>" answering 500
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    requests: int = 0

    # ------------------------------------------------------------------------------------------ data
    def build(self) -> "ReplayCloud":
        rec = json.loads(self.recorded_path.read_text())
        self.rec = rec
        r = rec["responses"]
        hosts = [f"compute-{i:05d}" for i in range(self.hypervisors)]
        self.hosts = hosts
        svc_t = {s["binary"]: s for s in r["compute /os-services"]["services"]}
        services = [dict(svc_t["nova-conductor"], id=_uuid("svc", -1), host="ctl-1"),
                    dict(svc_t["nova-scheduler"], id=_uuid("svc", -2), host="ctl-1")]
        services += [dict(svc_t["nova-compute"], id=_uuid("svc", i), host=h, zone="nova") for i, h in enumerate(hosts)]
        self.nova_services = services
        hv_t = r["compute /os-hypervisors/detail"]["hypervisors"][0]
        self.hv = []
        for i, h in enumerate(hosts):
            hv = copy.deepcopy(hv_t)
            hv.update(id=_uuid("hv", i), hypervisor_hostname=h, host_ip=f"10.{i // 250}.{i % 250}.1", running_vms=10,
                      vcpus=64, vcpus_used=20, memory_mb=262144, memory_mb_used=81920, local_gb=2000, local_gb_used=200)
            if isinstance(hv.get("service"), dict):
                hv["service"] = dict(hv["service"], host=h, id=_uuid("svc", i))
            self.hv.append(hv)
        srv_t = r["compute /servers/detail"]["servers"][0]
        statuses = ["ACTIVE"] * 95 + ["SHUTOFF"] * 3 + ["ERROR", "BUILD"]
        self.srv = []
        for i in range(self.servers):
            s = copy.deepcopy(srv_t)
            s.update(id=_uuid("srv", i), name=f"vm-{i:06d}", status=statuses[i % len(statuses)])
            s["OS-EXT-SRV-ATTR:host"] = hosts[i % len(hosts)] if hosts else None
            self.srv.append(s)
        ag_t = r["network /agents"]["agents"]
        ovs = next((a for a in ag_t if "openvswitch" in a.get("binary", "")), ag_t[0])
        self.agents = [dict(ovs, id=_uuid("agent", i), host=h) for i, h in enumerate(hosts)]
        self.agents += [dict(a, id=_uuid("agent-ctl", j), host="net-1") for j, a in enumerate(ag_t) if a is not ovs]
        cs = r["volume /os-services"]["services"]
        self.cinder_services = [dict(s, host=s["host"].replace("minios", f"storage-{k}")) for k in range(10) for s in cs
                                if s.get("binary") == "cinder-volume"] + [s for s in cs if s.get("binary") != "cinder-volume"]
        vol_t = r["volume /volumes/detail"]["volumes"][0] if r["volume /volumes/detail"]["volumes"] else {"size": 1}
        vstat = ["in-use"] * 6 + ["available"] * 3 + ["error"]
        self.vols = [dict(copy.deepcopy(vol_t), id=_uuid("vol", i), name=f"vol-{i}", status=vstat[i % len(vstat)])
                     for i in range(self.volumes)]
        img_t = r["image /images"]["images"][0]
        self.imgs = [dict(copy.deepcopy(img_t), id=_uuid("img", i), name=f"image-{i}") for i in range(self.images)]
        rp_t = r["placement /resource_providers"]["resource_providers"][0]
        self.rps = [dict(copy.deepcopy(rp_t), uuid=self.hv[i]["id"], name=h) for i, h in enumerate(hosts)]
        self.inventories = r["placement /resource_providers/ID/inventories"]
        self.usages = r["placement /resource_providers/ID/usages"]
        self.simple = {k: v for k, v in r.items()}
        return self

    # ------------------------------------------------------------------------------------------ serving
    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, service: str) -> str:
        return f"{self.base}/{service}{self.rec['endpoints'][service]}"

    def token(self) -> dict[str, Any]:
        catalog = [{"type": stype, "name": svc, "id": _uuid("service", n),
                    "endpoints": [{"id": _uuid("ep", n * 3 + k), "interface": iface, "region": "RegionOne",
                                   "region_id": "RegionOne", "url": self.endpoint(svc)}
                                  for k, iface in enumerate(("public", "internal", "admin"))]}
                   for n, (svc, stype) in enumerate(SERVICES.items())]
        project = self.rec["endpoints"]["volume"].rsplit("/", 1)[-1]
        return {"token": {"methods": ["password"], "expires_at": "2099-01-01T00:00:00.000000Z",
                          "issued_at": "2026-01-01T00:00:00.000000Z", "audit_ids": ["replay"],
                          "user": {"id": "u-replay", "name": "admin", "domain": {"id": "default", "name": "Default"}},
                          "project": {"id": project, "name": "admin", "domain": {"id": "default", "name": "Default"}},
                          "roles": [{"id": "r-admin", "name": "admin"}], "catalog": catalog}}

    def discovery(self, service: str, rest: str) -> Any | None:
        docs = self.rec["discovery"]
        doc = docs.get(f"{service} {rest or '/'}") or docs.get(f"{service} /")
        if doc is None:
            return None
        text = re.sub(r"http://127\.0\.0\.1:\d+", f"{self.base}/{service}", json.dumps(doc))
        return json.loads(text)

    def start(self) -> "ReplayCloud":
        if not hasattr(self, "rec"):
            self.build()
        self._server = _QuietServer(("127.0.0.1", self.port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def clouds_yaml(self, path: Path, name: str = "replay") -> Path:
        import yaml

        path.write_text(yaml.safe_dump({"clouds": {name: {
            "auth": {"auth_url": f"{self.base}/identity/v3", "username": "admin", "password": "replay-password",
                     "project_name": "admin", "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": "RegionOne", "identity_api_version": 3}}}))
        return path

    # ------------------------------------------------------------------------------------------ routes
    def route(self, method: str, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        if path == "/_stats":
            return 200, {"requests": self.requests}, {}
        parts = path.split("/", 2)
        service = parts[1] if len(parts) > 1 else ""
        rest = "/" + parts[2] if len(parts) > 2 else "/"
        if service not in self.rec.get("endpoints", {}):
            return 404, {"error": "no such service"}, {}
        if service in self.fail:
            return 503, {"error": "service unavailable (replay fault)"}, {}
        if method == "POST" and service == "identity" and rest.rstrip("/") == "/v3/auth/tokens":
            return 201, self.token(), {"X-Subject-Token": "replay-token"}
        prefix = self.rec["endpoints"][service]
        if prefix and rest.startswith(prefix + "/") and rest != prefix + "/":
            api = rest[len(prefix):]
        elif not prefix and rest != "/":
            api = rest
        else:
            doc = self.discovery(service, rest if rest.endswith("/") else rest + "/")
            return (300 if rest == "/" else 200), doc, {}
        return self.api(service, api.rstrip("/") or "/", query)

    def api(self, service: str, api: str, q: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        key = f"{service} {api}"
        if key in self.fail_paths:
            return 500, {"computeFault": {"code": 500, "message": "replay fault"}}, {}
        if key == "compute /os-services":
            return 200, {"services": self.nova_services}, {}
        if key == "compute /os-hypervisors/detail":
            return 200, self._page(self.hv, q, "hypervisors", service, api), {}
        if key == "compute /servers/detail":
            return 200, self._page(self.srv, q, "servers", service, api), {}
        if key == "network /agents":
            return 200, {"agents": self.agents}, {}
        if key == "volume /os-services":
            return 200, {"services": self.cinder_services}, {}
        if key == "volume /volumes/detail":
            return 200, self._page(self.vols, q, "volumes", service, api), {}
        if key == "image /images":
            page = self._page(self.imgs, q, "images", service, api)
            links = page.pop("images_links", [])
            if links:
                page["next"] = urlsplit(links[0]["href"]).path.replace(f"/{service}", "", 1) + "?" + urlsplit(links[0]["href"]).query
            return 200, page, {}
        if key == "placement /resource_providers":
            return 200, {"resource_providers": self.rps}, {}
        m = re.fullmatch(r"/resource_providers/[0-9a-f-]+/(inventories|usages)", api)
        if service == "placement" and m:
            return 200, (self.inventories if m.group(1) == "inventories" else self.usages), {}
        if key in self.simple:
            return 200, self.simple[key], {}
        return 404, {"itemNotFound": {"code": 404, "message": f"replay has no {key}"}}, {}

    def _page(self, items: list[dict], q: dict[str, list[str]], key: str, service: str, api: str) -> dict[str, Any]:
        limit = int(q.get("limit", ["1000"])[0])
        start = 0
        if "marker" in q:
            marker = q["marker"][0]
            index = getattr(self, f"_index_{key}", None)
            if index is None:
                index = {it["id"]: n for n, it in enumerate(items)}
                setattr(self, f"_index_{key}", index)
            start = index.get(marker, len(items) - 1) + 1
        page = items[start:start + limit]
        out: dict[str, Any] = {key: page}
        if start + limit < len(items) and page:
            params = {k: v[0] for k, v in q.items() if k != "marker"}
            params["marker"] = page[-1]["id"]
            out[f"{key}_links"] = [{"rel": "next", "href": f"{self.endpoint(service)}{api}?{urlencode(params)}"}]
        return out


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-request (a killed collector) is not the replay's problem


def _handler(cloud: ReplayCloud) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            parts = urlsplit(self.path)
            cloud.requests += 1
            if cloud.latency:
                import time

                time.sleep(cloud.latency)
            code, body, headers = cloud.route(method, parts.path, parse_qs(parts.query))
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    """Serve a replay cloud in this process (own process: its CPU never competes with the exporter's)."""
    import argparse
    import signal
    import sys

    ap = argparse.ArgumentParser()
    for name, default in (("hypervisors", 2000), ("servers", 20000), ("volumes", 5000), ("images", 200)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--clouds-yaml", required=True)
    ap.add_argument("--name", default="replay")
    args = ap.parse_args()
    cloud = ReplayCloud(args.hypervisors, args.servers, args.volumes, args.images).start()
    cloud.clouds_yaml(Path(args.clouds_yaml), args.name)
    print(cloud.base, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT}) if hasattr(signal, "sigwait") else None
    sys.exit(0)


if __name__ == "__main__":
    main()
